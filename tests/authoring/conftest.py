"""Shared helpers: an in-memory RuntimeTI and a context builder for running operators directly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from headrace.authoring.context import RunInfo, build_context
from headrace.authoring.dag import DAG, DagContext
from headrace.authoring.task import BaseOperator
from headrace.authoring.xcom import deserialize_xcom, serialize_xcom, xcoms_for_result
from headrace.types import Context


class MemoryTI:
    """A RuntimeTI that keeps XComs (serialized, as the real one does) and skips in memory."""

    def __init__(self, store: dict[tuple[str, str], str], skipped: set[str], dag_id: str, task_id: str) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = "manual__2024-01-02T00:00:00+00:00"
        self.try_number = 1
        self.max_tries = 0
        self._store = store
        self.skipped = skipped

    def xcom_push(self, key: str, value: Any) -> None:
        self._store[(self.task_id, key)] = serialize_xcom(value, 48 * 1024, task_id=self.task_id, key=key)

    def xcom_pull(
        self, task_ids: str | Sequence[str] | None = None, key: str = "return_value", dag_id: str | None = None
    ) -> Any:
        if isinstance(task_ids, str):
            text = self._store.get((task_ids, key))
            return None if text is None else deserialize_xcom(text)
        return [self.xcom_pull(t, key) for t in (task_ids or [])]

    def skip(self, task_ids: Iterable[str]) -> None:
        self.skipped.update(task_ids)


RUN = RunInfo(
    dag_id="d",
    run_id="manual__2024-01-02T00:00:00+00:00",
    logical_date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    data_interval_start=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_end=datetime(2024, 1, 3, tzinfo=UTC),
    run_type="manual",
    conf={},
)


class Runner:
    """Runs tasks of one DAG run in-process, in topological order, sharing XComs and skips."""

    def __init__(self, dag: DAG, run: RunInfo = RUN) -> None:
        self.dag = dag
        self.run = run
        self.store: dict[tuple[str, str], str] = {}
        self.skipped: set[str] = set()

    def context(self, task: BaseOperator) -> Context:
        ti = MemoryTI(self.store, self.skipped, self.dag.dag_id, task.task_id)
        return build_context(self.dag, task, self.run, ti)

    def run_task(self, task_id: str) -> Any:
        task = self.dag.get_task(task_id)
        ctx = self.context(task)
        task.render_template_fields(ctx)
        result = task.execute(ctx)
        for key, value in xcoms_for_result(task, result):
            ctx["ti"].xcom_push(key, value)
        return result

    def run_all(self) -> dict[str, Any]:
        results = {}
        for task in self.dag.topological_order():
            if task.task_id not in self.skipped:
                results[task.task_id] = self.run_task(task.task_id)
        return results

    def pull(self, task_id: str, key: str = "return_value") -> Any:
        text = self.store.get((task_id, key))
        return None if text is None else deserialize_xcom(text)


@pytest.fixture(autouse=True)
def _clean_dag_context() -> Any:
    yield
    DagContext._stack.clear()
    DagContext._autoregistered.clear()


@pytest.fixture
def runner() -> type[Runner]:
    """The Runner class: ``runner(dag).run_all()``."""
    return Runner
