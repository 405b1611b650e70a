"""ExternalTaskSensor and ExternalTaskMarker through the scheduler (LocalExecutor, real supervisors), on SQLite
and PostgreSQL: the sensor reads the other DAG's runs through its supervisor (deferrable: through a real
triggerer); clearing a marker clears the marked task instances of the other DAG, recursively."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, TaskReschedule, TaskTry, XCom
from headrace.exceptions import InvalidRequest
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.user_actions import clear_task_instances
from headrace.testing import run_scheduler_until

from .helpers import DEFER_FAST, FAST, write_dag

WHEN = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def _trigger(settings: Settings, db: Database, runs: list[tuple[str, datetime]]) -> None:
    stats = DagProcessor(settings, db).refresh(datetime.now(UTC))
    assert stats.errors == 0, "DAG file failed to import"
    with db.session() as session:
        for dag_id, when in runs:
            trigger_dag(session, dag_id, logical_date=when, now=datetime.now(UTC))


def _states(db: Database, dag_id: str) -> dict[str, str]:
    with db.session() as session:
        return {
            ti.task_id: ti.state for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id))
        }


def _run_states(db: Database) -> dict[tuple[str, datetime | None], str]:
    with db.session() as session:
        return {(r.dag_id, r.logical_date): r.state for r in session.scalars(select(DagRun))}


def _all_done(db: Database) -> bool:
    states = set(_run_states(db).values())
    return bool(states) and states <= {"success", "failed"}


def _errors(db: Database, task_id: str) -> list[str | None]:
    with db.session() as session:
        return list(session.scalars(select(TaskTry.error).where(TaskTry.task_id == task_id)))


UPSTREAM = """
from headrace import DAG, TaskGroup
from headrace.operators import EmptyOperator
from headrace.sensors import FileSensor

with DAG("upstream", schedule=None):
    gate = FileSensor(task_id="gate", filepath={gate!r}, poke_interval=0.1, mode="reschedule")
    with TaskGroup("grp") as grp:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    gate >> grp >> EmptyOperator(task_id="last")
"""


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sensor_waits_for_a_task_a_group_a_dag_and_other_dates(
    settings: Settings, db: Database, tmp_path: Path, mode: str
) -> None:
    """The sensors wait while the other DAG's runs are held at a gate (opened once they have poked), then
    succeed: on a task, a task group, the whole run, a run an hour earlier (execution_delta) and the runs
    execution_date_fn names."""
    settings = settings.with_overrides(FAST)
    gate = tmp_path / "gate"
    write_dag(settings, "upstream.py", UPSTREAM.format(gate=str(gate)))
    write_dag(
        settings,
        "downstream.py",
        f"""
from datetime import timedelta
from headrace import DAG
from headrace.sensors import ExternalTaskSensor

def earlier(logical_date, dag_run):
    assert dag_run.dag_id == "downstream"  # context keys are passed by name
    return [logical_date - timedelta(hours=1), logical_date]

common = dict(external_dag_id="upstream", poke_interval=0.2, mode={mode!r}, timeout=120)
with DAG("downstream", schedule=None):
    ExternalTaskSensor(task_id="on_task", external_task_id="last", **common)
    ExternalTaskSensor(task_id="on_tasks", external_task_ids=["grp.a", "grp.b"], **common)
    ExternalTaskSensor(task_id="on_group", external_task_group_id="grp", **common)
    ExternalTaskSensor(task_id="on_dag", **common)
    ExternalTaskSensor(task_id="on_delta", external_task_id="last", execution_delta=timedelta(hours=1), **common)
    ExternalTaskSensor(task_id="on_fn", external_task_id="last", execution_date_fn=earlier, **common)
""",
    )
    _trigger(settings, db, [("upstream", WHEN), ("upstream", WHEN - timedelta(hours=1)), ("downstream", WHEN)])
    sensors = ("on_task", "on_tasks", "on_group", "on_dag", "on_delta", "on_fn")
    poked = "up_for_reschedule" if mode == "reschedule" else "running"

    def open_gate(_now: datetime) -> None:
        if not gate.exists() and all(s == poked for s in (_states(db, "downstream").get(t) for t in sensors)):
            gate.write_text("open")

    assert run_scheduler_until(settings, db, lambda: _all_done(db), each_loop=open_gate, timeout=180)
    assert gate.exists(), "the sensors never all waited"
    assert set(_run_states(db).values()) == {"success"}
    assert _states(db, "downstream") == dict.fromkeys(sensors, "success")
    with db.session() as session:
        tries = session.scalars(select(TaskTry.try_number).where(TaskTry.dag_id == "downstream")).all()
        reschedules = session.scalars(select(TaskReschedule.task_id)).all()
    assert sorted(tries) == [1] * len(sensors)  # every poke of a sensor is one try
    if mode == "reschedule":
        assert set(sensors) <= set(reschedules)  # each gave its process and slot back at least once
    else:
        assert not set(sensors) & set(reschedules)


def test_sensor_fails_soft_fails_and_skips_on_the_other_dags_states(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(
        settings,
        "broken.py",
        """
from headrace import DAG
from headrace.operators import EmptyOperator, PythonOperator

def boom():
    raise RuntimeError("boom")

with DAG("broken", schedule=None):
    PythonOperator(task_id="boom", python_callable=boom) >> EmptyOperator(task_id="after")
""",
    )
    write_dag(
        settings,
        "watcher.py",
        """
from headrace import DAG
from headrace.sensors import ExternalTaskSensor

common = dict(external_dag_id="broken", poke_interval=0.2, mode="reschedule", timeout=120)
with DAG("watcher", schedule=None):
    ExternalTaskSensor(task_id="hard", external_task_id="boom", failed_states=["failed"], **common)
    ExternalTaskSensor(task_id="soft", external_task_id="boom", failed_states=["failed"], soft_fail=True, **common)
    ExternalTaskSensor(task_id="skip", external_task_id="after", skipped_states=["upstream_failed"], **common)
    ExternalTaskSensor(task_id="dag_failed", failed_states=["failed"], **common)
    ExternalTaskSensor(task_id="missing", external_dag_id="nope", check_existence=True, mode="reschedule")
    ExternalTaskSensor(task_id="missing_task", external_dag_id="broken", external_task_id="nope",
                       check_existence=True)
""",
    )
    _trigger(settings, db, [("broken", WHEN), ("watcher", WHEN)])
    assert run_scheduler_until(settings, db, lambda: _all_done(db), timeout=180)
    assert _states(db, "watcher") == {
        "hard": "failed",
        "soft": "skipped",
        "skip": "skipped",
        "dag_failed": "failed",
        "missing": "failed",
        "missing_task": "failed",
    }
    assert _errors(db, "hard") == ["ExternalTaskFailedError: Some of the external tasks ['boom'] in DAG broken failed."]
    assert _errors(db, "dag_failed") == ["ExternalDagFailedError: The external DAG broken failed."]
    assert _errors(db, "missing") == ["ExternalDagNotFoundError: The external DAG nope does not exist."]
    assert _errors(db, "missing_task") == [
        "ExternalTaskNotFoundError: The external task nope in DAG broken does not exist."
    ]


def _ti(db: Database, dag_id: str, task_id: str) -> tuple[str, int]:
    with db.session() as session:
        ti = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id)
        ).one()
        return ti.state, ti.try_number


MARKED = """
from headrace import DAG
from headrace.operators import EmptyOperator
from headrace.sensors import ExternalTaskMarker, ExternalTaskSensor

with DAG("parent", schedule=None):
    EmptyOperator(task_id="p1") >> ExternalTaskMarker(
        task_id="mark_child", external_dag_id="child", external_task_id="wait_parent", recursion_depth={depth}
    )
    EmptyOperator(task_id="p_other")

with DAG("child", schedule=None):
    wait = ExternalTaskSensor(task_id="wait_parent", external_dag_id="parent", external_task_id="p1",
                              poke_interval=0.2, mode="reschedule")
    wait >> EmptyOperator(task_id="c2") >> ExternalTaskMarker(
        task_id="mark_grandchild", external_dag_id="grandchild", external_task_id="g1"
    )
    EmptyOperator(task_id="c_other")

with DAG("grandchild", schedule=None):
    EmptyOperator(task_id="g1") >> EmptyOperator(task_id="g2")
    EmptyOperator(task_id="g_other")
"""


@pytest.mark.parametrize("depth", [10, 1])
def test_clearing_a_marker_clears_the_marked_tasks_recursively(settings: Settings, db: Database, depth: int) -> None:
    """parent.p1 (cleared with its downstream) → child.wait_parent and its downstream → grandchild.g1 and its
    downstream; the tasks off those paths stay. recursion_depth=1 refuses to go two levels deep."""
    settings = settings.with_overrides(FAST)
    write_dag(settings, "marked.py", MARKED.format(depth=depth))
    _trigger(settings, db, [("parent", WHEN), ("child", WHEN), ("grandchild", WHEN)])
    assert run_scheduler_until(settings, db, lambda: _all_done(db), timeout=180)
    assert set(_run_states(db).values()) == {"success"}
    with db.session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == "parent")).one()
        if depth == 1:
            with pytest.raises(InvalidRequest, match="Maximum recursion depth 1 reached for ExternalTaskMarker"):
                clear_task_instances(session, run, ["p1"], include_downstream=True, now=datetime.now(UTC))
            return
        dry = clear_task_instances(session, run, ["p1"], include_downstream=True, dry_run=True, now=datetime.now(UTC))
        names = {
            (ti.dag_id, ti.task_id)
            for ti in session.scalars(select(TaskInstance).where(TaskInstance.id.in_(dry.cleared)))
        }
        assert names == {
            ("parent", "p1"),
            ("parent", "mark_child"),
            ("child", "wait_parent"),
            ("child", "c2"),
            ("child", "mark_grandchild"),
            ("grandchild", "g1"),
            ("grandchild", "g2"),
        }
        assert [r[0] for r in dry.external_runs] == ["child", "grandchild"]
        done = clear_task_instances(session, run, ["p1"], include_downstream=True, now=datetime.now(UTC))
        assert sorted(done.cleared) == sorted(dry.cleared)
    assert _ti(db, "grandchild", "g2") == ("none", 1)
    assert _ti(db, "grandchild", "g_other") == ("success", 1)
    assert set(_run_states(db).values()) == {"queued"}  # every run touched goes back to be run again
    assert run_scheduler_until(settings, db, lambda: _all_done(db), timeout=180)
    assert set(_run_states(db).values()) == {"success"}
    assert [_ti(db, d, t)[1] for d, t in (("child", "c2"), ("grandchild", "g2"), ("child", "c_other"))] == [2, 2, 1]


def test_bundled_file_sensor_example_waits_then_processes(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headrace.scheduler.start import EXAMPLE_DAGS

    monkeypatch.setenv("HEADRACE_HOME", str(settings.home))  # the example's inbox: $HEADRACE_HOME/inbox
    settings = settings.with_overrides(FAST)
    text = (EXAMPLE_DAGS / "example_file_sensor.py").read_text().replace("poke_interval=10", "poke_interval=0.2")
    write_dag(settings, "example_file_sensor.py", text)
    _trigger(settings, db, [("example_file_sensor", WHEN)])
    inbox = settings.home / "inbox"
    landed = inbox / "penguins.csv"

    def drop_file(_now: datetime) -> None:  # once the sensor waits without a process
        if not landed.exists() and _states(db, "example_file_sensor").get("wait_for_csv") == "up_for_reschedule":
            inbox.mkdir(parents=True, exist_ok=True)
            landed.write_text("species,mass\nAdelie,3700\nGentoo,5000\nAdelie,3500\n")

    assert run_scheduler_until(settings, db, lambda: _all_done(db), each_loop=drop_file, timeout=120)
    assert _states(db, "example_file_sensor") == {"wait_for_csv": "success", "process": "success"}
    assert not landed.exists()
    moved = list((inbox / "processed").glob("*/penguins.csv"))
    assert len(moved) == 1
    summary = (moved[0].parent / "summary.json").read_text()
    assert '"rows": 3' in summary and '"species=Adelie": 2' in summary


def test_bundled_penguins_downstream_example_waits_for_the_report(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headrace.scheduler.start import EXAMPLE_DAGS

    monkeypatch.setenv("HEADRACE_HOME", str(settings.home))  # where the report is written and read
    settings = settings.with_overrides(FAST)
    for name in ("example_penguins_report.py", "example_penguins_downstream.py"):
        text = (EXAMPLE_DAGS / name).read_text().replace("poke_interval=15", "poke_interval=0.2")
        write_dag(settings, name, text.replace('schedule="@daily"', "schedule=None"))
    _trigger(settings, db, [("example_penguins_downstream", WHEN), ("example_penguins_report", WHEN)])
    assert run_scheduler_until(settings, db, lambda: _all_done(db), timeout=180)
    assert set(_run_states(db).values()) == {"success"}
    with db.session() as session:
        sensor_end, report_end = (
            session.scalar(select(TaskTry.end_date).where(TaskTry.task_id == task_id))
            for task_id in ("wait_for_report", "write_report")
        )
        headline = session.scalar(select(XCom.value).where(XCom.task_id == "headline"))
    assert _states(db, "example_penguins_downstream") == {"wait_for_report": "success", "headline": "success"}
    assert sensor_end is not None and report_end is not None and report_end <= sensor_end
    assert headline is not None and "Heaviest species on average: **Gentoo**" in headline


def test_a_marker_that_has_not_run_is_rendered_when_cleared(settings: Settings, db: Database) -> None:
    """A marker whose template fields were never rendered by a try (its run not started) is rendered with the
    run's keys: ``{{ ds }}`` here names the child run of the day before by a date template."""
    write_dag(
        settings,
        "unrun.py",
        """
from headrace import DAG
from headrace.operators import EmptyOperator
from headrace.sensors import ExternalTaskMarker

with DAG("parent_unrun", schedule=None):
    EmptyOperator(task_id="p1") >> ExternalTaskMarker(
        task_id="mark", external_dag_id="child_unrun", external_task_id="c1",
        logical_date="{{ macros.ds_add(ds, -1) }}T06:00:00+00:00",
    )

with DAG("child_unrun", schedule=None):
    EmptyOperator(task_id="c1") >> EmptyOperator(task_id="c2")
""",
    )
    _trigger(settings, db, [("parent_unrun", WHEN), ("child_unrun", WHEN - timedelta(days=1)), ("child_unrun", WHEN)])
    with db.session() as session:
        parent = session.scalars(select(DagRun).where(DagRun.dag_id == "parent_unrun")).one()
        for run in session.scalars(select(DagRun)):  # finished task instances, as if the runs had run
            session.execute(
                TaskInstance.__table__.update().where(TaskInstance.dag_run_id == run.id).values(state="success")
            )
        session.flush()
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == "child_unrun")).all()
        assert len(tis) == 4, "task instances are created with the run"
        result = clear_task_instances(session, parent, ["p1"], include_downstream=True, now=datetime.now(UTC))
        cleared = session.execute(
            select(TaskInstance.dag_id, TaskInstance.task_id, DagRun.logical_date)
            .join(DagRun, DagRun.id == TaskInstance.dag_run_id)
            .where(TaskInstance.id.in_(result.cleared))
        ).all()
    assert sorted((d, t, when) for d, t, when in cleared) == [
        ("child_unrun", "c1", WHEN - timedelta(days=1)),
        ("child_unrun", "c2", WHEN - timedelta(days=1)),
        ("parent_unrun", "mark", WHEN),
        ("parent_unrun", "p1", WHEN),
    ]


def test_deferrable_sensor_waits_in_the_triggerer_then_succeeds_fails_or_times_out(
    settings: Settings, db: Database, tmp_path: Path, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """``deferrable=True``: each sensor pokes once, defers to a WorkflowTrigger (no process while the other
    DAG is held at a gate), and once the gate opens resumes and decides as a poke: success; failed_states →
    failed (skipped with soft_fail); a date with no run → the deferral's timeout, SensorTimeout."""
    settings = settings.with_overrides(DEFER_FAST)
    gate = tmp_path / "gate"
    write_dag(
        settings,
        "held.py",
        f"""
from headrace import DAG
from headrace.operators import EmptyOperator, PythonOperator
from headrace.sensors import FileSensor

def boom():
    raise RuntimeError("boom")

with DAG("held", schedule=None):
    gate = FileSensor(task_id="gate", filepath={str(gate)!r}, poke_interval=0.1, mode="reschedule")
    gate >> EmptyOperator(task_id="work")
    gate >> PythonOperator(task_id="boom", python_callable=boom)
""",
    )
    write_dag(
        settings,
        "deferring_watcher.py",
        """
from datetime import timedelta
from headrace import DAG
from headrace.sensors import ExternalTaskSensor

common = dict(external_dag_id="held", deferrable=True, poll_interval=0.2, timeout=60)
with DAG("deferring_watcher", schedule=None):
    ExternalTaskSensor(task_id="ok", external_task_id="work", **common)
    ExternalTaskSensor(task_id="hard", external_task_id="boom", failed_states=["failed"], **common)
    ExternalTaskSensor(task_id="soft", external_task_id="boom", failed_states=["failed"], soft_fail=True, **common)
    ExternalTaskSensor(task_id="never", external_dag_id="held", external_task_id="work", deferrable=True,
                       execution_delta=timedelta(days=1), timeout=1)
""",
    )
    _trigger(settings, db, [("held", WHEN), ("deferring_watcher", WHEN)])
    start_triggerer()
    waiting = ("ok", "hard", "soft")

    def open_gate(_now: datetime) -> None:
        if not gate.exists() and all(_states(db, "deferring_watcher").get(t) == "deferred" for t in waiting):
            gate.write_text("open")

    assert run_scheduler_until(settings, db, lambda: _all_done(db), each_loop=open_gate, timeout=120)
    assert gate.exists(), "the sensors never all deferred"
    assert _states(db, "deferring_watcher") == {"ok": "success", "hard": "failed", "soft": "skipped", "never": "failed"}
    assert _errors(db, "hard") == ["ExternalTaskFailedError: Some of the external tasks ['boom'] in DAG held failed."]
    never = _errors(db, "never")
    assert len(never) == 1 and never[0] is not None and "SensorTimeout" in never[0]
    with db.session() as session:
        tries = session.scalars(select(TaskTry).where(TaskTry.dag_id == "deferring_watcher")).all()
    assert sorted(t.try_number for t in tries) == [1, 1, 1, 1]  # the deferral and its resumption: one try
    for row in tries:
        assert "deferring to headrace.triggers.WorkflowTrigger" in Path(row.log_path).read_text()
