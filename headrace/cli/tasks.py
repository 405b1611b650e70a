"""``headrace tasks …``: list a DAG's tasks, show task instance states, render their templates, clear them,
test one task."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring.context import PreviousRun, RunInfo, build_context, current_context
from headrace.authoring.mapped import MappedOperator
from headrace.authoring.secrets import install_secrets_runtime
from headrace.authoring.task import BaseOperator
from headrace.authoring.xcom import deserialize_xcom, serialize_xcom, xcoms_for_result
from headrace.authoring.xcom_backend import BaseXCom, resolve_xcom_backend
from headrace.authoring.xcom_serde import AllowedClasses, set_allowed_classes
from headrace.cli.common import AppState, app_state, console, dag_label, fmt_bytes, fmt_time, parse_date, styled
from headrace.cli.task_logs import find_run, logs_cmd
from headrace.crypto import Encryptor
from headrace.dagfiles.loader import load_dags, prepare_dag_imports
from headrace.dagfiles.serialization import SerializedDag
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, TaskInstance, TaskTry, XCom
from headrace.exceptions import (
    DagNotFound,
    DagRunNotFound,
    HeadraceError,
    InvalidRequest,
    RescheduleTask,
    SkipTask,
)
from headrace.scheduler.past import past_reason
from headrace.scheduler.user_actions import clear_task_instances, run_dag
from headrace.secrets_store import DatabaseSecrets, stored_secrets_masker
from headrace.storage.stores import Stores
from headrace.storage.xcoms import XComObjects, is_reference
from headrace.types import Context

app = typer.Typer(
    help="List tasks, show task instance states and logs, render their templates, clear them, test one task.",
    no_args_is_help=True,
)
app.command("logs")(logs_cmd)


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
    table = Table(title=f"tasks of {dag_label(dag_id, sdag.dag_display_name)}")
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


def _ti_name(ti: TaskInstance) -> str:
    """``task_id``, ``task_id[3]`` for a mapped index, followed by its label (rendered ``map_index_template``)."""
    if ti.map_index < 0:
        return ti.task_id
    return f"{ti.task_id}[{ti.map_index}]" + (f" {ti.rendered_map_index}" if ti.rendered_map_index else "")


@app.command("states-for-dag-run")
def states_for_dag_run(ctx: typer.Context, dag_id: str, run_id: str) -> None:
    """Show every task instance of a DAG run with its latest try (a mapped index with its label, if any)."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        if run is None:
            raise DagRunNotFound(f"DAG {dag_id!r} has no run {run_id!r}; see `headrace dags list-runs {dag_id}`")
        label = dag_label(dag_id, session.scalar(select(DagModel.dag_display_name).where(DagModel.dag_id == dag_id)))
        rows = session.execute(
            select(TaskInstance, TaskTry)
            .outerjoin(
                TaskTry,
                (TaskTry.task_instance_id == TaskInstance.id) & (TaskTry.try_number == TaskInstance.try_number),
            )
            .where(TaskInstance.dag_run_id == run.id)
            .order_by(
                TaskInstance.start_date.is_(None), TaskInstance.start_date, TaskInstance.task_id, TaskInstance.map_index
            )
        ).all()
    table = Table(title=f"{label} / {run_id}: {run.state}")
    for column in ("task_id", "state", "try", "end reason", "started", "ended", "host", "pid", "peak RSS", "CPU s"):
        table.add_column(column, overflow="fold")
    for ti, tt in rows:
        table.add_row(
            _ti_name(ti),
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

    def __init__(
        self,
        db: Database,
        dag_id: str,
        run_id: str,
        task_id: str,
        max_bytes: int,
        backend: type[BaseXCom],
        map_index: int = -1,
        xcoms: XComObjects | None = None,
    ) -> None:
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, task_id
        self._xcoms = xcoms
        """Reads values kept in ``core.xcom_objectstorage_path`` (None: not set)."""
        self.try_number, self.max_tries = 1, 0
        self.map_index = map_index
        self.pushed: dict[str, str] = {}
        self._db = db
        self._max_bytes = max_bytes
        self._backend = backend

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = serialize_xcom(
            value,
            self._max_bytes,
            task_id=self.task_id,
            key=key,
            backend=self._backend,
            dag_id=self.dag_id,
            run_id=self.run_id,
            map_index=self.map_index,
        )

    def _pull_one(self, task_id: str, key: str, dag_id: str, map_indexes: int | None) -> Any:
        """The value (a mapped task's: the list of its values by map index, unless ``map_indexes`` names one)."""
        with self._db.session() as session:
            stmt = select(XCom.map_index, XCom.value).where(
                XCom.dag_id == dag_id, XCom.run_id == self.run_id, XCom.task_id == task_id, XCom.key == key
            )
            if map_indexes is not None:
                stmt = stmt.where(XCom.map_index == map_indexes)
            rows: dict[int, str] = {i: text for i, text in session.execute(stmt.order_by(XCom.map_index))}
        if self._xcoms is not None and any(is_reference(t) for t in rows.values()):  # in the object store
            rows = {i: self._xcoms.resolve(text) for i, text in rows.items()}
        if map_indexes is None and any(i >= 0 for i in rows):
            return [self._deserialize(text, key, task_id, dag_id) for i, text in rows.items() if i >= 0]
        text = next(iter(rows.values()), None)
        return None if text is None else self._deserialize(text, key, task_id, dag_id)

    def _deserialize(self, text: str, key: str, task_id: str, dag_id: str) -> Any:
        return deserialize_xcom(text, self._backend, key=key, task_id=task_id, dag_id=dag_id, run_id=self.run_id)

    def xcom_pull(
        self,
        task_ids: str | Sequence[str] | None = None,
        key: str = "return_value",
        dag_id: str | None = None,
        map_indexes: int | None = None,
    ) -> Any:
        ids = [self.task_id] if task_ids is None else task_ids
        if isinstance(ids, str):
            return self._pull_one(ids, key, dag_id or self.dag_id, map_indexes)
        return [self._pull_one(t, key, dag_id or self.dag_id, map_indexes) for t in ids]

    def skip(self, task_ids: Iterable[str]) -> None:
        console.print(f"[magenta]would skip: {', '.join(sorted(task_ids))}[/]")

    def external_task_states(
        self,
        dag_id: str,
        logical_dates: Sequence[datetime],
        *,
        task_ids: Sequence[str] | None = None,
        task_group_id: str | None = None,
        check_existence: bool = False,
    ) -> dict[str, Any]:
        """An ExternalTaskSensor's read of another DAG's runs, as a supervisor answers it."""
        from headrace.supervisor.external_requests import get_external_task_states  # pydantic: only `tasks test`
        from headrace.supervisor.protocol import GetExternalTaskStates

        answer = get_external_task_states(
            self._db,
            GetExternalTaskStates(
                dag_id=dag_id,
                logical_dates=list(logical_dates),
                task_ids=None if task_ids is None else list(task_ids),
                task_group_id=task_group_id,
                check_existence=check_existence,
            ),
        )
        return {"runs": answer.runs, "group_task_ids": answer.group_task_ids, "missing": answer.missing}


def _find_run(db: Database, dag_id: str, when_or_run_id: str | None) -> tuple[DagRun | None, datetime]:
    """The DAG run named by a run id or a logical date (None if there is none) and its logical date."""
    with db.read_session() as session:
        if when_or_run_id is not None:
            run = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == when_or_run_id)
            ).one_or_none()
            if run is not None:
                session.expunge(run)
                return run, run.logical_date or run.queued_at or datetime.now(UTC)
        try:
            when = parse_date(when_or_run_id, what="logical date or run id") or datetime.now(UTC)
        except HeadraceError:
            raise DagRunNotFound(
                f"{when_or_run_id!r} is neither a run id of DAG {dag_id!r} nor an ISO logical date; "
                f"see `headrace dags list-runs {dag_id}`"
            ) from None
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == when)).first()
        if run is not None:
            session.expunge(run)
        return run, when


def _runtime_task(
    state: AppState,
    db: Database,
    dag_id: str,
    task_id: str,
    when_or_run_id: str | None,
    map_index: int = -1,
    test_mode: bool = False,
) -> tuple[BaseOperator, Context, _LocalTI]:
    """Import the DAG's file in this process and build the task's context for a DAG run.

    The run is the DAG's run with that run id or logical date if there is one (its dates and conf), else one
    made up at that logical date (default now). A mapped task is built for ``map_index`` (its arguments
    resolved, XComs read from that run). Raises DagNotFound, TaskNotFound, DagRunNotFound, InvalidRequest
    (a mapped task without ``--map-index``, or an index it does not have).
    """
    model, _ = _dag_model(db, dag_id)
    prepare_dag_imports(state.settings)  # the DAGs folder on sys.path, core.airflow_imports
    dags = {d.dag_id: d for d in load_dags(model.fileloc)}
    if dag_id not in dags:
        raise DagNotFound(f"{model.fileloc} no longer defines DAG {dag_id!r}")
    dag = dags[dag_id]
    task = dag.get_task(task_id)
    run, when = _find_run(db, dag_id, when_or_run_id)
    with db.read_session() as session:  # the context's prev_*_success, as the supervisor reads them
        previous = queries.previous_success_run(session, dag_id, run.logical_date if run is not None else when)
        if previous is not None:
            session.expunge(previous)
    if run is not None:
        info = RunInfo.from_run(run, previous)
    else:
        info = RunInfo(
            dag_id,
            f"test__{when.isoformat()}",
            when,
            when,
            when,
            run_type="manual",
            conf={},
            previous_success=None if previous is None else PreviousRun.from_run(previous),
        )
    backend = resolve_xcom_backend(state.settings.get_str("core", "xcom_backend"))
    set_allowed_classes(
        AllowedClasses.from_config(
            state.settings.get_str("core", "allowed_deserialization_classes"),
            state.settings.get_str("core", "allowed_deserialization_classes_regexp"),
        )
    )
    stores = Stores(state.settings, db)
    ti = _LocalTI(
        db,
        dag_id,
        info.run_id,
        task_id,
        state.settings.get("core", "xcom_max_size"),
        backend,
        map_index,
        XComObjects(stores) if stores.xcoms_url else None,
    )
    # Variable.get / Connection.get (and {{ var }} / {{ conn }} templates) read the DB directly here.
    install_secrets_runtime(DatabaseSecrets(db, Encryptor.from_settings(state.settings)))
    overrides = state.settings.get_bool("core", "dag_run_conf_overrides_params")
    context = build_context(dag, task, info, ti, test_mode=test_mode, conf_overrides_params=overrides)
    if isinstance(task, MappedOperator):
        if map_index < 0:
            raise InvalidRequest(f"task {task_id!r} is mapped: give the task instance's --map-index")
        try:
            task = task.unmap_for(context)
        except (IndexError, TypeError) as exc:
            raise InvalidRequest(f"task {task_id!r} at --map-index {map_index}: {exc}") from None
        context["task"] = task
    elif map_index >= 0 and not task.is_mapped:
        raise InvalidRequest(f"task {task_id!r} is not mapped; leave --map-index out")
    return task, context, ti


@app.command("render")
def render_cmd(
    ctx: typer.Context,
    dag_id: str,
    task_id: str,
    logical_date_or_run_id: str | None = typer.Argument(None, help="A run id of the DAG or an ISO date; default now."),
    map_index: int = typer.Option(-1, "--map-index", help="The map index of a mapped task's instance."),
) -> None:
    """Print the task's template fields rendered for a DAG run, as Airflow's ``tasks render`` (runs nothing).

    The DAG file is imported here and the fields rendered with that run's context (an existing run with
    that run id or logical date gives its conf and data interval). Secrets stored as variables and
    connections are shown as ***.
    """
    from headrace.supervisor.protocol import rendered_field_text  # pydantic: only this command needs it

    state = app_state(ctx)
    db = state.migrated_db()
    task, context, _ = _runtime_task(state, db, dag_id, task_id, logical_date_or_run_id, map_index)
    task.render_template_fields(context)
    with db.read_session() as session:
        masker = stored_secrets_masker(session, Encryptor.from_settings(state.settings))
    if not task.template_fields:
        print(f"# task {task_id} ({type(task).__name__}) has no template fields")
    for name in task.template_fields:
        rule = "# " + "-" * 58
        print(
            f"{rule}\n# property: {name}\n{rule}\n{masker.mask(rendered_field_text(getattr(task, name), sys.maxsize))}\n"
        )


@app.command("state")
def state_cmd(
    ctx: typer.Context,
    dag_id: str,
    task_id: str,
    run_id: str = typer.Argument(
        ..., metavar="RUN_ID|LOGICAL_DATE", help="A run id of the DAG or its ISO logical date."
    ),
    map_index: int = typer.Option(-1, "--map-index", help="The map index of a mapped task's instance."),
) -> None:
    """Print the state of the task instance of TASK in a DAG run (``none`` if not scheduled yet), as Airflow's.

    The run is named by its run id or by its logical date. A task instance the DAG's previous run holds
    (``depends_on_past``) gets a second line on stderr: ``waiting: <why>``.
    """
    db = app_state(ctx).migrated_db()
    with db.read_session() as session:
        run = find_run(session, dag_id, run_id)
        found: dict[int, str] = {
            index: ti_state
            for index, ti_state in session.execute(
                select(TaskInstance.map_index, TaskInstance.state).where(
                    TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id
                )
            )
        }
        sdag = run_dag(session, run)
        if not found:
            sdag.get_task(task_id)  # TaskNotFound unless the run's DAG has it
        ti_state = found.get(map_index)
        held = past_reason(session, sdag, run.id, task_id) if ti_state in (None, "none") else None
    if map_index not in found and any(i >= 0 for i in found):
        raise InvalidRequest(
            f"task {task_id!r} is mapped ({len(found)} task instances, map indexes 0-{max(found)}): give --map-index"
            if map_index < 0
            else f"task {task_id!r} has no task instance at --map-index {map_index} (map indexes 0-{max(found)})"
        )
    print(ti_state or "none")
    if held is not None:  # stdout stays the state alone, as Airflow prints it; the reason goes to stderr
        print(f"waiting: {held}", file=sys.stderr)


@app.command("test")
def test_cmd(
    ctx: typer.Context,
    dag_id: str,
    task_id: str,
    logical_date: str | None = typer.Argument(None, help="ISO date; default now."),
    map_index: int = typer.Option(-1, "--map-index", help="The map index of a mapped task's instance."),
) -> None:
    """Run one task in this process, ignoring dependencies and recording nothing (as Airflow's).

    XComs it pulls come from an existing DAG run with the same logical date, if
    there is one. Exit code 1 if the task fails.
    """
    state = app_state(ctx)
    db = state.migrated_db()
    task, context, ti = _runtime_task(state, db, dag_id, task_id, logical_date, map_index, test_mode=True)
    task.render_template_fields(context)
    start = time.perf_counter()
    try:
        with current_context(context):
            if task.pre_execute_hook is not None:  # @task.run_if / skip_if, as in a scheduled try
                task.pre_execute_hook(context)
            from headrace.supervisor.task_process import run_callbacks  # here: inspecting commands never load it

            run_callbacks(task, "execute", context)
            result = task.execute(context)
        for key, value in xcoms_for_result(task, result):
            ti.xcom_push(key, value)
    except SkipTask as exc:
        console.print(f"{task_id}: {styled('skipped')} ({exc})")
        return
    except RescheduleTask as exc:  # a sensor in reschedule mode whose poke found its condition unmet
        console.print(f"{task_id}: {styled('up_for_reschedule')} (the condition is not met yet; {exc})")
        return
    except Exception as exc:  # noqa: BLE001 - whatever the task's code raised is its failure, shown here
        console.print_exception(max_frames=8)
        console.print(f"{task_id}: {styled('failed')} after {time.perf_counter() - start:.2f} s: {exc}")
        raise typer.Exit(1) from None
    console.print(f"{task_id}: {styled('success')} in {time.perf_counter() - start:.2f} s")
    for key, text in ti.pushed.items():
        console.print(f"  XCom {key} = {text[:500]}")


def _described(session: Session, ti_ids: list[int]) -> list[tuple[str, str, str, str]]:
    """``(dag_id, run_id, task id[map index], state)`` of task instances ``ti_ids``, in the order given."""
    if not ti_ids:
        return []
    found = {
        pk: (row_dag, run_id, f"{task_id}[{index}]" if index >= 0 else task_id, ti_state)
        for pk, row_dag, run_id, task_id, index, ti_state in session.execute(
            select(
                TaskInstance.id,
                TaskInstance.dag_id,
                TaskInstance.run_id,
                TaskInstance.task_id,
                TaskInstance.map_index,
                TaskInstance.state,
            ).where(TaskInstance.id.in_(ti_ids))
        )
    }
    return [found[pk] for pk in ti_ids if pk in found]


@app.command("clear")
def clear_cmd(
    ctx: typer.Context,
    dag_id: str,
    task_regex: str | None = typer.Option(
        None, "--task-regex", "-t", help="Only tasks whose id matches this regular expression (re.search)."
    ),
    downstream: bool = typer.Option(False, "--downstream", "-d", help="Also clear their downstream tasks."),
    upstream: bool = typer.Option(False, "--upstream", "-u", help="Also clear their upstream tasks."),
    only_failed: bool = typer.Option(False, "--only-failed", "-f", help="Only failed and upstream_failed ones."),
    start_date: str | None = typer.Option(None, "--start-date", "-s", help="Runs with logical date ≥ this (ISO)."),
    end_date: str | None = typer.Option(None, "--end-date", "-e", help="Runs with logical date ≤ this (ISO)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Clear without asking."),
    map_index: list[int] | None = typer.Option(
        None, "--map-index", help="Only these map indexes of mapped tasks (repeat it for several); default all."
    ),
) -> None:
    """Clear task instances so the scheduler runs them again (as Airflow's ``tasks clear``).

    Lists the task instances it would clear (a dry run), then asks unless --yes. Queued and running
    ones are not cleared (listed with the reason); a finished DAG run goes back to queued.
    """
    try:
        pattern = re.compile(task_regex) if task_regex is not None else None
    except re.error as exc:
        raise InvalidRequest(f"--task-regex {task_regex!r} is not a regular expression: {exc}") from None
    start = parse_date(start_date, what="--start-date")
    end = parse_date(end_date, what="--end-date")
    if start is not None and end is not None and end < start:
        raise InvalidRequest(f"--end-date {end_date} is before --start-date {start_date}")
    db = app_state(ctx).migrated_db()
    _dag_model(db, dag_id)  # DagNotFound for an unknown DAG
    now = datetime.now(UTC)

    def clear_all(session: Session, dry_run: bool) -> list[tuple[str, str, str, str, str]]:
        """``(dag_id, run_id, task_id, state, what)`` of every task instance cleared, or not cleared and why
        (other DAGs' ones too, reached through ExternalTaskMarkers)."""
        stmt = select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.logical_date, DagRun.id)
        if start is not None:
            stmt = stmt.where(DagRun.logical_date >= start)
        if end is not None:
            stmt = stmt.where(DagRun.logical_date <= end)
        rows: list[tuple[str, str, str, str, str]] = []
        for run in session.scalars(stmt):
            task_ids = list(run_dag(session, run).tasks)
            if pattern is not None:
                task_ids = [t for t in task_ids if pattern.search(t)]
                if not task_ids:
                    continue
            result = clear_task_instances(
                session,
                run,
                task_ids,
                include_upstream=upstream,
                include_downstream=downstream,
                only_failed=only_failed,
                dry_run=dry_run,
                now=now,
                map_indexes=map_index or None,
            )
            rows += [(*row, "clear") for row in _described(session, result.cleared)]
            rows += [
                (n.dag_id or dag_id, n.run_id or run.run_id, n.task_id, n.state, f"not cleared: {n.reason}")
                for n in result.not_cleared
            ]
        return rows

    with db.read_session() as session:
        planned = clear_all(session, dry_run=True)
    to_clear = [r for r in planned if r[4] == "clear"]
    if not planned:
        console.print("nothing to clear")
        return
    other_dags = any(r[0] != dag_id for r in planned)
    table = Table(title=f"task instances of {dag_id} to clear ({len(to_clear)})")
    for column in (["dag_id"] if other_dags else []) + ["run_id", "task_id", "state", "not cleared because"]:
        table.add_column(column, overflow="fold")
    for row_dag, run_id, task_id, ti_state, what in planned:
        cells = [run_id, task_id, styled(ti_state), what.removeprefix("not cleared: ") if what != "clear" else ""]
        table.add_row(*([row_dag] if other_dags else []), *cells)
    console.print(table)
    if not to_clear:
        console.print("nothing to clear")
        return
    if not yes and not typer.confirm(f"Clear these {len(to_clear)} task instance(s)?", default=False):
        console.print("cancelled; nothing cleared")
        raise typer.Exit(1)
    with db.session() as session:
        done = clear_all(session, dry_run=False)
    cleared = sum(1 for r in done if r[4] == "clear")
    console.print(f"cleared {cleared} task instance(s)")
    for row_dag, run_id, task_id, ti_state, what in done:
        if what != "clear":
            where = f"{row_dag} " if row_dag != dag_id else ""
            console.print(f"[yellow]{where}{run_id} {task_id} ({ti_state}): {what}[/]")
