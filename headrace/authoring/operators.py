"""The standard operators: Python, Bash, Empty, BranchPython and ShortCircuit.

Import them from ``headrace.operators``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from headrace.authoring.context import call_with_context
from headrace.authoring.task import BaseOperator
from headrace.exceptions import DagDefinitionError, SkipTask
from headrace.types import Context


class EmptyOperator(BaseOperator):
    """A task that does nothing; useful to group or join dependencies."""

    ui_color = "#e8f7e4"

    def execute(self, context: Context) -> None:
        """Do nothing."""
        return None


class PythonOperator(BaseOperator):
    """Call ``python_callable(*op_args, **op_kwargs)`` plus the context keys it names.

    ``op_args``, ``op_kwargs`` and ``templates_dict`` are template fields.
    ``templates_dict`` (rendered) is passed as the ``templates_dict`` context key.
    Raises ``DagDefinitionError`` if ``python_callable`` is not callable.
    """

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"task {self.task_id!r}: python_callable must be callable")
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args or [])
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})
        self.templates_dict = templates_dict
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context: Context) -> Any:
        """Call the callable and return its result (logged unless ``show_return_value_in_logs=False``)."""
        context["templates_dict"] = self.templates_dict
        result = self.execute_callable(context)
        if self.show_return_value_in_logs:
            print(f"Done. Returned value was: {result!r}", flush=True)
        else:
            print("Done. Returned value not shown", flush=True)
        return result

    def execute_callable(self, context: Context) -> Any:
        """Call ``python_callable`` with ``op_args``, ``op_kwargs`` and the context keys it names."""
        return call_with_context(self.python_callable, self.op_args, self.op_kwargs, context)


def _as_task_ids(result: object, task_id: str) -> set[str]:
    if result is None:
        return set()
    if isinstance(result, str):
        return {result}
    if isinstance(result, Iterable):
        ids = set(result)
        if all(isinstance(i, str) for i in ids):
            return ids
    raise TypeError(f"branch callable of task {task_id!r} must return a task_id or a list of them, got {result!r}")


class BranchPythonOperator(PythonOperator):
    """Run the callable, which returns the task_id(s) to follow; skip the other direct downstream tasks.

    Raises ``TypeError`` for a result that is not a task_id or list of them, and
    ``ValueError`` naming any returned id that is not directly downstream.
    """

    def execute(self, context: Context) -> Any:
        """Call the callable, skip the direct downstream tasks it did not choose, return its result."""
        result = super().execute(context)
        chosen = _as_task_ids(result, self.task_id)
        unknown = chosen - self.downstream_task_ids
        if unknown:
            raise ValueError(
                f"branch task {self.task_id!r} chose {sorted(unknown)}, which are not directly "
                f"downstream of it (downstream: {sorted(self.downstream_task_ids)})"
            )
        to_skip = sorted(self.downstream_task_ids - chosen)
        if to_skip:
            print(f"Following branch {sorted(chosen)}; skipping {to_skip}", flush=True)
            context["ti"].skip(to_skip)
        return result


class ShortCircuitOperator(PythonOperator):
    """Run the callable; if its result is falsy, skip the downstream tasks.

    With ``ignore_downstream_trigger_rules=True`` (default) every task downstream,
    transitively, is skipped; with False only the direct downstream tasks are,
    and tasks further down follow their own trigger rules.
    """

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: Context) -> Any:
        """Call the callable; skip downstream tasks if the result is falsy. Returns the result."""
        result = super().execute(context)
        if result:
            print("Condition is truthy; downstream tasks proceed", flush=True)
            return result
        if self.ignore_downstream_trigger_rules:
            to_skip = sorted(self.get_flat_relative_ids(upstream=False))
        else:
            to_skip = sorted(self.downstream_task_ids)
        print(f"Condition is falsy; skipping {to_skip}", flush=True)
        if to_skip:
            context["ti"].skip(to_skip)
        return result


class BashOperator(BaseOperator):
    """Run ``bash -c bash_command`` in the task process; its output goes to the log.

    ``env`` replaces the environment (or is added to it with ``append_env=True``);
    ``cwd`` is the working directory. An exit code in ``skip_on_exit_code``
    (default 99) raises ``SkipTask``; any other non-zero code raises
    ``RuntimeError("Bash command failed. The command returned a non-zero exit code N.")``.
    Returns the last line of output, as Airflow pushes it to XCom.
    ``bash_command`` and ``env`` are template fields; a command ending in ``.sh``
    or ``.bash`` is read as a template file.
    """

    template_fields: Sequence[str] = ("bash_command", "env", "cwd")
    template_ext: Sequence[str] = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(
        self,
        *,
        bash_command: str,
        env: dict[str, str] | None = None,
        append_env: bool = False,
        cwd: str | None = None,
        skip_on_exit_code: int | Collection[int] | None = 99,
        output_encoding: str = "utf-8",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.cwd = cwd
        if skip_on_exit_code is None:
            self.skip_on_exit_code: frozenset[int] = frozenset()
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = frozenset({skip_on_exit_code})
        else:
            self.skip_on_exit_code = frozenset(skip_on_exit_code)
        self.output_encoding = output_encoding

    def _environment(self) -> dict[str, str]:
        if self.env is None:
            return dict(os.environ)
        return {**os.environ, **self.env} if self.append_env else dict(self.env)

    def execute(self, context: Context) -> str | None:
        """Run the command, streaming each output line to stdout; return the last line."""
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise RuntimeError(f"cwd {self.cwd!r} of task {self.task_id!r} is not a directory")
        proc = subprocess.Popen(
            ["bash", "-c", self.bash_command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=self._environment(),
        )
        last_line: str | None = None
        assert proc.stdout is not None
        with proc.stdout:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip("\n")
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                last_line = line
        code = proc.wait()
        if code in self.skip_on_exit_code:
            raise SkipTask(f"Bash command returned exit code {code}. Skipping.")
        if code != 0:
            raise RuntimeError(f"Bash command failed. The command returned a non-zero exit code {code}.")
        return last_line
