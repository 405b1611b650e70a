"""``@asset``: a DAG with one task that produces one asset (Airflow 3's ``airflow.sdk.asset``).

.. code-block:: python

    @asset(schedule="@daily")
    def penguins_clean(context):
        ...

defines the asset ``penguins_clean`` (its URI is its name unless ``uri=`` is given) and the DAG
``penguins_clean`` with one task ``penguins_clean`` (a ``PythonOperator`` calling the function with the
context keys it names) whose outlet is the asset: each successful try records an asset event. The decorated
name is the asset (an :class:`AssetDefinition`), usable in other DAGs' schedules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headrace.authoring.assets import Asset
from headrace.authoring.dag import DAG
from headrace.authoring.operators import PythonOperator


class AssetDefinition(Asset):
    """The asset an ``@asset`` function produces; ``dag`` is the DAG that produces it."""

    dag: DAG


def asset(
    *,
    schedule: Any,
    name: str | None = None,
    uri: str | None = None,
    group: str = "asset",
    extra: dict[str, Any] | None = None,
    **dag_kwargs: Any,
) -> Callable[[Callable[..., Any]], AssetDefinition]:
    """Decorate a function into an asset and the one-task DAG that produces it (see the module docstring).

    ``schedule`` is the DAG's (a cron string, assets, None…); ``name`` defaults to the function's name, and
    names the DAG and its task too; other keyword arguments (``start_date``, ``tags``, ``catchup``…) go to
    :class:`~headrace.authoring.dag.DAG`. Raises what ``Asset`` and ``DAG`` raise for bad arguments.
    """

    def decorate(func: Callable[..., Any]) -> AssetDefinition:
        asset_name = name or func.__name__
        definition = AssetDefinition(name=asset_name, uri=uri, group=group, extra=extra)
        with DAG(asset_name, schedule=schedule, **dag_kwargs) as dag:
            PythonOperator(task_id=asset_name, python_callable=func, outlets=[definition], doc=func.__doc__)
        definition.dag = dag
        return definition

    return decorate


__all__ = ["AssetDefinition", "asset"]
