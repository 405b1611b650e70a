"""DAG files: collecting the DAGs a file defines, and serializing them for the scheduler."""

from __future__ import annotations

from types import ModuleType

from headrace.authoring.dag import DAG, DagContext


def collect_dags(module: ModuleType) -> list[DAG]:
    """Return the DAGs an imported DAG file defines, in definition order, each once.

    Found: every ``DAG`` in the module's globals, plus every DAG the module
    created with ``with DAG(...)`` or by calling an ``@dag`` function at top
    level even if it was not assigned (as Airflow does). Registrations of that
    module are consumed, so importing the same file again starts afresh.
    """
    registered = DagContext.take_registered(module.__name__)
    found: list[DAG] = []
    seen: set[int] = set()
    for value in [*vars(module).values(), *registered]:
        if isinstance(value, DAG) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


__all__ = ["collect_dags"]
