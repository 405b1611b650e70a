"""``headrace tasks …``: list a DAG's tasks, show task instance states, test one task."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select

from headrace.authoring.context import RunInfo, build_context
from headrace.authoring.secrets import install_secrets_runtime
from headrace.authoring.xcom import deserialize_xcom, serialize_xcom, xcoms_for_result
from headrace.cli.common import app_state, console, fmt_bytes, fmt_time, parse_date, styled
from headrace.crypto import Encryptor
from headrace.dagfiles.loader import load_dags, prepare_dag_imports
from headrace.dagfiles.serialization import SerializedDag
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, TaskInstance, TaskTry, XCom
from headrace.exceptions import DagNotFound, DagRunNotFound, SkipTask
from headrace.secrets_store import DatabaseSecrets

app = typer.Typer(help="List tasks, show task instance states, test one task.", no_args_is_help=True)


def _dag_model(db: Database, dag_id: str) -> tuple[DagModel, SerializedDag]:
    with db.session() as session:
        model = session.get(DagModel, dag_id)
        if model is None:
            raise DagNotFound(f"no DAG with dag_id {dag_id!r}; see `headrace dags list`")
        version = queries.current_version(session, model)
        if version is None:
            raise DagNotFound(
                f"DAG {dag_id!r} has no parsed version; is its file still there? see `headrace dags list`"
            )
        return model, SerializedDag.from_dict(version.serialized)


@app.command("list")
def list_cmd(ctx: typer.Context, dag_id: str) -> None:
    """List a DAG's tasks in dependency order, with their upstream tasks and settings."""
    db = app_state(ctx).migrated_db()
    _, sdag = _dag_model(db, dag_id)
    table = Table(title=f"tasks of {dag_id}")
    for column in ("task_id", "operator", "upstream", "trigger rule", "retries", "memory limit", "pool"):
        table.add_column(column, overflow="fold")
    for task_id in sdag.task_ids:
        t = sdag.get_task(task_id)
        table.add_row(
            t.task_id,
            t.operator,
            ", ".join(sorted(t.upstream_task_ids)) or "-",
            t.trigger_rule,
            str(t.retries),
            fmt_bytes(t.memory_limit),
            t.pool,
        )
    console.print(table)


@app.command("states-for-dag-run")
def states_for_dag_run(ctx: typer.Context, dag_id: str, run_id: str) -> None:
    """Show every task instance of a DAG run with its latest try."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        if run is None:
            raise DagRunNotFound(f"DAG {dag_id!r} has no run {run_id!r}; see `headrace dags list-runs {dag_id}`")
        rows = session.execute(
            select(TaskInstance, TaskTry)
            .outerjoin(
                TaskTry,
                (TaskTry.task_instance_id == TaskInstance.id) & (TaskTry.try_number == TaskInstance.try_number),
            )
            .where(TaskInstance.dag_run_id == run.id)
            .order_by(TaskInstance.start_date.is_(None), TaskInstance.start_date, TaskInstance.task_id)
        ).all()
    table = Table(title=f"{dag_id} / {run_id}: {run.state}")
    for column in ("task_id", "state", "try", "end reason", "started", "ended", "host", "pid", "peak RSS", "CPU s"):
        table.add_column(column, overflow="fold")
    for ti, tt in rows:
        table.add_row(
            ti.task_id,
            styled(ti.state),
            str(ti.try_number),
            ti.end_reason or "-",
            fmt_time(ti.start_date),
            fmt_time(ti.end_date),
            tt.hostname if tt else "-",
            str(tt.pid) if tt and tt.pid else "-",
            fmt_bytes(tt.peak_rss_bytes if tt else None),
            f"{tt.cpu_seconds:.2f}" if tt and tt.cpu_seconds is not None else "-",
        )
    console.print(table)


class _LocalTI:
    """The RuntimeTI of ``tasks test``: XComs kept in memory, reads fall back to the DB run if any."""

    def __init__(self, db: Database, dag_id: str, run_id: str, task_id: str, max_bytes: int) -> None:
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, task_id
        self.try_number, self.max_tries = 1, 0
        self.pushed: dict[str, str] = {}
        self._db = db
        self._max_bytes = max_bytes

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = serialize_xcom(value, self._max_bytes, task_id=self.task_id, key=key)

    def _pull_one(self, task_id: str, key: str, dag_id: str) -> Any:
        with self._db.session() as session:
            text = session.scalar(
                select(XCom.value).where(
                    XCom.dag_id == dag_id, XCom.run_id == self.run_id, XCom.task_id == task_id, XCom.key == key
                )
            )
        return None if text is None else deserialize_xcom(text)

    def xcom_pull(
        self, task_ids: str | Sequence[str] | None = None, key: str = "return_value", dag_id: str | None = None
    ) -> Any:
        ids = [self.task_id] if task_ids is None else task_ids
        if isinstance(ids, str):
            return self._pull_one(ids, key, dag_id or self.dag_id)
        return [self._pull_one(t, key, dag_id or self.dag_id) for t in ids]

    def skip(self, task_ids: Iterable[str]) -> None:
        console.print(f"[magenta]would skip: {', '.join(sorted(task_ids))}[/]")


@app.command("test")
def test_cmd(
    ctx: typer.Context,
    dag_id: str,
    task_id: str,
    logical_date: str | None = typer.Argument(None, help="ISO date; default now."),
) -> None:
    """Run one task in this process, ignoring dependencies and recording nothing (as Airflow's).

    XComs it pulls come from an existing DAG run with the same logical date, if
    there is one. Exit code 1 if the task fails.
    """
    state = app_state(ctx)
    db = state.migrated_db()
    model, _ = _dag_model(db, dag_id)
    prepare_dag_imports(state.settings)  # the DAGs folder on sys.path, core.airflow_imports
    dags = {d.dag_id: d for d in load_dags(model.fileloc)}
    if dag_id not in dags:
        raise DagNotFound(f"{model.fileloc} no longer defines DAG {dag_id!r}")
    dag = dags[dag_id]
    task = dag.get_task(task_id)
    when = parse_date(logical_date) or datetime.now(UTC)
    with db.session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == when)).first()
        run_id = run.run_id if run else f"test__{when.isoformat()}"
        conf = dict(run.conf) if run else {}
    info = RunInfo(dag_id, run_id, when, when, when, run_type="manual", conf=conf)
    ti = _LocalTI(db, dag_id, run_id, task_id, state.settings.get("core", "xcom_max_size"))
    # Variable.get / Connection.get (and {{ var }} / {{ conn }} templates) read the DB directly here.
    install_secrets_runtime(DatabaseSecrets(db, Encryptor.from_settings(state.settings)))
    context = build_context(dag, task, info, ti)
    task.render_template_fields(context)
    start = time.perf_counter()
    try:
        result = task.execute(context)
        for key, value in xcoms_for_result(task, result):
            ti.xcom_push(key, value)
    except SkipTask as exc:
        console.print(f"{task_id}: {styled('skipped')} ({exc})")
        return
    except Exception as exc:  # noqa: BLE001 - whatever the task's code raised is its failure, shown here
        console.print_exception(max_frames=8)
        console.print(f"{task_id}: {styled('failed')} after {time.perf_counter() - start:.2f} s: {exc}")
        raise typer.Exit(1) from None
    console.print(f"{task_id}: {styled('success')} in {time.perf_counter() - start:.2f} s")
    for key, text in ti.pushed.items():
        console.print(f"  XCom {key} = {text[:500]}")
