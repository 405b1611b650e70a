"""``core.airflow_imports``: DAG files' ``airflow.*`` imports get headrace's implementations.

:func:`install_airflow_imports` puts an :class:`AirflowFinder` first on
``sys.meta_path``. It provides every module of
:data:`headrace.compat.airflow_names.MODULES` (and the packages above them,
``airflow``, ``airflow.operators`` …) as a module whose attributes are
looked up in that table when the DAG file imports them: ``from
airflow.providers.standard.operators.bash import BashOperator`` gives
``headrace.operators.BashOperator``. What headrace does not implement raises
:class:`~headrace.compat.airflow_names.NotSupported`, an ``ImportError``
that names the feature (``airflow.sdk.TaskGroup: task groups (TaskGroup) is
not supported by headrace yet``), whether the module is unknown (``import
airflow.providers.amazon.aws.operators.s3``) or only the name.

It is installed in the processes that import DAG files: the DAG processor
(its parse children inherit it), the fork server (the supervisors and task
processes it forks inherit it) and ``python -m headrace.supervisor``. It is
refused when a real ``airflow`` package is importable: two different
objects under one name would be worse than either.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from headrace.compat.airflow_names import MODULES, PACKAGES, NotSupported, resolve, unsupported_module_feature
from headrace.config import Settings
from headrace.exceptions import ConfigError


class AirflowModule(ModuleType):
    """An ``airflow.*`` module provided by headrace: its attributes come from the mapping table."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        submodule = f"{self.__name__}.{name}"
        if submodule in PACKAGES:
            return importlib.import_module(submodule)
        if self.__name__ not in MODULES:
            raise NotSupported(submodule, unsupported_module_feature(submodule) or f"the name {submodule}")
        try:
            value = resolve(self.__name__, name)
        except AttributeError:
            raise NotSupported(submodule, f"{name} of {self.__name__}") from None
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(MODULES.get(self.__name__, {}))


class AirflowFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads every ``airflow`` module from the mapping table; refuses the rest with the feature."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec for a mapped ``airflow.*`` module; None for non-Airflow modules.

        Raises :class:`NotSupported` (a ``ModuleNotFoundError`` would let a
        real package shadow us; an ``ImportError`` naming the feature says why).
        """
        if fullname != "airflow" and not fullname.startswith("airflow."):
            return None
        feature = unsupported_module_feature(fullname)
        if feature is not None:
            raise NotSupported(fullname, feature)
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """A fresh :class:`AirflowModule` named as the spec."""
        module = AirflowModule(spec.name, f"headrace's stand-in for {spec.name} (core.airflow_imports)")
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the attributes are looked up on use."""
        module.__path__ = []  # a package: its submodules are found by this finder too


def real_airflow_origin() -> str | None:
    """Where a real ``airflow`` package would be imported from, or None (ignoring our finder)."""
    for finder in sys.meta_path:
        if isinstance(finder, AirflowFinder):
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec("airflow", None)
        if spec is not None:
            return str(spec.origin or (list(spec.submodule_search_locations or []) or ["?"])[0])
    return None


def installed() -> bool:
    """Whether this process has the finder on ``sys.meta_path``."""
    return any(isinstance(f, AirflowFinder) for f in sys.meta_path)


def install_airflow_imports(settings: Settings) -> bool:
    """Install the finder if ``core.airflow_imports`` is true; return whether it is installed now.

    Raises ``ConfigError`` when the setting is on and a real ``airflow``
    package is importable (the message says where it is and what to do).
    Idempotent: a second call installs nothing more.
    """
    if not settings.get_bool("core", "airflow_imports"):
        return False
    if installed():
        return True
    origin = real_airflow_origin()
    if origin is not None:
        raise ConfigError(
            f"core.airflow_imports is true, but a real airflow package is importable ({origin}): "
            "uninstall it from this environment, or set core.airflow_imports = false "
            "(or run `headrace migrate airflow` on the DAG files)",
            key="core.airflow_imports",
        )
    sys.meta_path.insert(0, AirflowFinder())
    return True


def uninstall_airflow_imports() -> None:
    """Take the finder off ``sys.meta_path`` and forget the ``airflow`` modules it provided (for tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AirflowFinder)]
    for name in [n for n, m in sys.modules.items() if isinstance(m, AirflowModule)]:
        del sys.modules[name]
