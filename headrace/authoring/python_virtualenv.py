"""Run a Python function in another interpreter: ``PythonVirtualenvOperator`` (a venv built from
``requirements``) and ``ExternalPythonOperator`` (an existing interpreter, ``python=``), with
Airflow's arguments and meaning, and their branching variants. Import them from ``headrace.operators``.

The function's source is written into a script with its arguments serialized beside it
(``serializer``: ``"pickle"`` by default, ``"cloudpickle"`` or ``"dill"`` when the target
environment has them); the script runs in the other interpreter, its output goes to the try's
log, and its return value comes back the same way and is the task's XCom. So the function must be
self-contained: it imports what it uses inside its body, and it cannot see names of the DAG file.
Context keys the function names (``ds``, ``logical_date``, ``params``, …: see
:data:`SERIALIZABLE_CONTEXT_KEYS`) are passed as arguments.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from headrace.authoring.branching import skip_all_except
from headrace.authoring.context import context_kwargs
from headrace.authoring.operators import PythonOperator
from headrace.authoring.venv_cache import VenvSpec, VirtualenvError, as_lines, prepare_venv, temporary_venv, venv_python
from headrace.exceptions import DagDefinitionError, SkipTask
from headrace.types import Context

SERIALIZERS = ("pickle", "cloudpickle", "dill")
"""Airflow's ``serializer`` choices; the module must be importable in both interpreters."""

SERIALIZABLE_CONTEXT_KEYS = frozenset(
    {
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "run_id",
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "params",
        "templates_dict",
        "try_number",
        "expanded_ti_count",
        "task_instance_key_str",
    }
)
"""Context keys a function in another interpreter may ask for (plain values, not runtime objects)."""

_SCRIPT = """\
import sys
import {serializer} as _serializer

virtualenv_string_args = {string_args!r}

{source}

with open(sys.argv[1], "rb") as _file:
    _arguments = _serializer.load(_file)
_result = {name}(*_arguments["args"], **_arguments["kwargs"])
with open(sys.argv[2], "wb") as _file:
    _serializer.dump(_result, _file)
"""


def function_source(func: Callable[..., Any], task_id: str) -> str:
    """The source of ``func`` without its decorators, dedented. Raises ``DagDefinitionError`` for a lambda
    or a callable whose source cannot be read."""
    name = getattr(func, "__name__", "")
    if name == "<lambda>" or not inspect.isfunction(func):
        raise DagDefinitionError(f"task {task_id!r}: the python_callable must be a function defined with def")
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise DagDefinitionError(f"task {task_id!r}: cannot read the source of {name}: {exc}") from None
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"(async\s+)?def\s+{re.escape(name)}\b", line):
            return "\n".join(lines[i:]) + "\n"
    raise DagDefinitionError(f"task {task_id!r}: cannot find 'def {name}' in the source of the python_callable")


class _BasePythonInterpreterOperator(PythonOperator):
    """Shared by the virtualenv and external-Python operators: serialize, run the script, read the result."""

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        serializer: str | None = None,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        string_args: Iterable[str] | None = None,
        templates_dict: dict[str, Any] | None = None,
        templates_exts: list[str] | None = None,
        expect_airflow: bool | None = None,
        skip_on_exit_code: int | Collection[int] | None = None,
        env_vars: dict[str, str] | None = None,
        inherit_env: bool = True,
        use_dill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            templates_dict=templates_dict,
            **kwargs,
        )
        chosen = "dill" if use_dill and serializer is None else (serializer or "pickle")
        if chosen not in SERIALIZERS:
            raise DagDefinitionError(
                f"task {self.task_id!r}: unsupported serializer {chosen!r}; expected one of {', '.join(SERIALIZERS)}"
            )
        self.serializer = chosen
        self.source = function_source(python_callable, self.task_id)
        self.string_args = list(string_args or [])
        self.templates_exts = templates_exts
        if templates_exts is not None:  # a template field ending in one of these is read as a template file
            self.template_ext = list(templates_exts)
        self.expect_airflow = True if expect_airflow is None else bool(expect_airflow)  # Airflow's default: True
        if expect_airflow:  # given explicitly: the author expects Airflow's context objects in the function
            self._note(
                "expect_airflow",
                "changes nothing: the function gets only plain context keys (ds, logical_date, params, …), never "
                "runtime objects such as ti or macros, and needs neither headrace nor Airflow in its interpreter",
            )
        if skip_on_exit_code is None:
            self.skip_on_exit_code: frozenset[int] = frozenset()
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = frozenset({skip_on_exit_code})
        else:
            self.skip_on_exit_code = frozenset(skip_on_exit_code)
        self.env_vars = env_vars
        self.inherit_env = inherit_env

    def _note(self, argument: str, why: str) -> None:
        self.argument_notes = (*self.argument_notes, (argument, why))

    def execute_callable(self, context: Context) -> Any:
        """Run the function in the other interpreter with ``op_args``, ``op_kwargs`` and the context keys it names."""
        with self.interpreter() as python:
            return self.run_in(python, context)

    def interpreter(self) -> Any:
        """A context manager giving the interpreter path to run the function with."""
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        base = dict(os.environ) if self.inherit_env else {}
        return {**base, **(self.env_vars or {})}

    def run_in(self, python: str | Path, context: Context) -> Any:
        """Run the function with ``python``; return its result. Raises ``SkipTask`` for an exit code in
        ``skip_on_exit_code`` and ``RuntimeError`` (the function's last error line) for any other failure."""
        try:
            module = importlib.import_module(self.serializer)
        except ImportError:
            raise VirtualenvError(
                f"task {self.task_id!r}: serializer {self.serializer!r} is not installed where headrace runs"
            ) from None
        names = [p for p in inspect.signature(self.python_callable).parameters][: len(self.op_args)]
        allowed = {k: v for k, v in context.items() if k in SERIALIZABLE_CONTEXT_KEYS}
        extra = context_kwargs(self.python_callable, allowed, taken=[*self.op_kwargs, *names])
        with tempfile.TemporaryDirectory(prefix="headrace-python-") as tmp:
            folder = Path(tmp)
            script = folder / "script.py"
            script.write_text(
                _SCRIPT.format(
                    serializer=self.serializer,
                    string_args=self.string_args,
                    source=self.source,
                    name=self.python_callable.__name__,
                )
            )
            with open(folder / "input", "wb") as file:
                module.dump({"args": list(self.op_args), "kwargs": {**extra, **self.op_kwargs}}, file)
            code, last = _stream([str(python), str(script), str(folder / "input"), str(folder / "output")], self)
            if code in self.skip_on_exit_code:
                raise SkipTask(f"Process exited with code {code}. Skipping.")
            if code != 0:
                raise RuntimeError(f"Process returned non-zero exit code {code}: {last}")
            with open(folder / "output", "rb") as file:
                return module.load(file)


def _stream(command: list[str], task: _BasePythonInterpreterOperator) -> tuple[int, str]:
    """Run ``command``, copying its output to stdout (the try's log); return its exit code and last output line."""
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=task._environment()
    )
    tail: deque[str] = deque(maxlen=1)
    assert proc.stdout is not None
    with proc.stdout:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="backslashreplace").rstrip("\n")
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if line.strip():
                tail.append(line.strip())
    return proc.wait(), tail[0] if tail else "(no output)"


class PythonVirtualenvOperator(_BasePythonInterpreterOperator):
    """Run ``python_callable`` in a virtualenv with ``requirements`` installed.

    ``requirements``: pip requirement lines (a list, or one string with one per line; templated).
    ``python_version`` (``"3.11"``): the venv's interpreter, ``python3.11`` on ``PATH`` (a missing one
    fails the try naming it); None: this interpreter. ``system_site_packages`` (default True),
    ``pip_install_options`` (extra ``pip install`` arguments), ``index_urls``. With
    ``venv_cache_path`` the venv is built once per spec under that folder and reused (see
    :mod:`headrace.authoring.venv_cache`); without it a fresh venv is built for each try and removed.
    A pip failure fails the try with pip's error. ``serializer``, ``op_args``, ``op_kwargs``,
    ``string_args``, ``skip_on_exit_code``, ``env_vars``, ``inherit_env``: as in Airflow. ``expect_airflow``
    given as True is reported as a DAG warning: Airflow passes its runtime context objects to the function
    when Airflow is in the venv; headrace passes plain context keys only, whatever the venv holds. Raises
    ``DagDefinitionError`` naming the task for a lambda, an unknown serializer or ``use_airflow_context``.
    """

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs", "requirements")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        requirements: None | Iterable[str] | str = None,
        python_version: str | None = None,
        system_site_packages: bool = True,
        pip_install_options: list[str] | None = None,
        index_urls: None | Collection[str] | str = None,
        venv_cache_path: None | os.PathLike[str] | str = None,
        use_airflow_context: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(python_callable=python_callable, **kwargs)
        if use_airflow_context:
            raise DagDefinitionError(
                f"task {self.task_id!r}: use_airflow_context=True is not supported: the function gets the "
                "context keys it names as arguments instead"
            )
        self.requirements: Any = (
            list(requirements) if requirements is not None and not isinstance(requirements, str) else requirements
        )
        self.python_version = None if python_version is None else str(python_version)
        self.system_site_packages = system_site_packages
        self.pip_install_options = list(pip_install_options or [])
        self.index_urls = [index_urls] if isinstance(index_urls, str) else list(index_urls or [])
        self.venv_cache_path = None if venv_cache_path is None else str(venv_cache_path)

    def spec(self) -> VenvSpec:
        """The venv this task needs (after templates are rendered)."""
        return VenvSpec(
            requirements=as_lines(self.requirements),
            python_version=self.python_version,
            system_site_packages=self.system_site_packages,
            pip_install_options=tuple(self.pip_install_options),
            index_urls=tuple(self.index_urls),
        )

    def interpreter(self) -> Any:
        """The venv's interpreter: the cached venv's, or a temporary venv's for this try."""
        return _CachedVenv(self.spec(), self.venv_cache_path)


class _CachedVenv:
    def __init__(self, spec: VenvSpec, cache_path: str | None) -> None:
        self.spec = spec
        self.cache_path = cache_path
        self._temporary: Any = None

    def __enter__(self) -> Path:
        if self.cache_path is not None:
            venv, _ = prepare_venv(self.cache_path, self.spec)
            return venv_python(venv)
        self._temporary = temporary_venv(self.spec)
        return venv_python(self._temporary.__enter__())

    def __exit__(self, *exc: object) -> None:
        if self._temporary is not None:
            self._temporary.__exit__(*exc)


class _ExistingPython:
    def __init__(self, python: str, task_id: str) -> None:
        self.python = python
        self.task_id = task_id

    def __enter__(self) -> str:
        if not os.path.isfile(self.python) or not os.access(self.python, os.X_OK):
            raise VirtualenvError(f"task {self.task_id!r}: python {self.python!r} is not an executable file")
        return self.python

    def __exit__(self, *exc: object) -> None:
        return None


class ExternalPythonOperator(_BasePythonInterpreterOperator):
    """Run ``python_callable`` with the interpreter at ``python`` (an existing venv's ``bin/python``).

    Other arguments as :class:`PythonVirtualenvOperator` (no requirements are installed). ``expect_pendulum=True``
    changes nothing (the dates passed are stdlib datetimes) and is reported as a DAG warning. A path that
    is not an executable file fails the try naming it. Raises ``DagDefinitionError`` when ``python``
    is empty.
    """

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs", "python")

    def __init__(
        self, *, python: str, python_callable: Callable[..., Any], expect_pendulum: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(python_callable=python_callable, **kwargs)
        self.expect_pendulum = bool(expect_pendulum)
        if expect_pendulum:
            self._note(
                "expect_pendulum",
                "changes nothing: dates reach the function as stdlib datetimes, never pendulum objects",
            )
        if not python:
            raise DagDefinitionError(f"task {self.task_id!r}: python must be the path of an interpreter")
        self.python = python

    def interpreter(self) -> Any:
        """The given interpreter (checked when the try runs: it may exist only on the worker)."""
        return _ExistingPython(str(self.python), self.task_id)


class BranchPythonVirtualenvOperator(PythonVirtualenvOperator):
    """A ``PythonVirtualenvOperator`` whose function returns the task id(s) to follow (as ``BranchPythonOperator``)."""

    def execute(self, context: Context) -> Any:
        """Run the function, follow its choice and skip the other direct downstream tasks."""
        result = super().execute(context)
        skip_all_except(self, context, result)
        return result


class BranchExternalPythonOperator(ExternalPythonOperator):
    """An ``ExternalPythonOperator`` whose function returns the task id(s) to follow (as ``BranchPythonOperator``)."""

    def execute(self, context: Context) -> Any:
        """Run the function, follow its choice and skip the other direct downstream tasks."""
        result = super().execute(context)
        skip_all_except(self, context, result)
        return result


__all__ = [
    "SERIALIZABLE_CONTEXT_KEYS",
    "BranchExternalPythonOperator",
    "BranchPythonVirtualenvOperator",
    "ExternalPythonOperator",
    "PythonVirtualenvOperator",
    "VirtualenvError",
    "function_source",
]
