"""depends_on_past / wait_for_downstream / ignore_first_depends_on_past (Airflow's PrevDagrunDep), SQLite and PG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from headrace import DAG
from headrace.config import Settings
from headrace.dagfiles.serialization import SerializedDag
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersion, TaskTry
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.past import past_reason
from headrace.scheduler.readiness import examine_runs
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI
from tests.integration.helpers import FAST, parse_and_trigger, run_scheduler_until_done, write_dag

from .conftest import NOW, move_ti, store_dags, tis

D1, D2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)


def _trigger(db: Database, dag_id: str, when: datetime) -> str:
    with db.session() as session:
        run = trigger_dag(session, dag_id, logical_date=when, now=NOW)
        start_queued_runs(session, NOW)
        return run.run_id


def _examine(db: Database) -> None:
    with db.session() as session:
        examine_runs(session, NOW, cache=DagCache())


def _reason(db: Database, run_id: str, task_id: str) -> str | None:
    with db.session() as session:
        run = session.scalars(select(DagRun).where(DagRun.run_id == run_id)).one()
        version = session.get(DagVersion, run.dag_version_id)
        assert version is not None
        return past_reason(session, SerializedDag.from_dict(version.serialized), run.id, task_id)


def test_a_task_waits_for_itself_and_its_downstream_in_the_previous_run(settings: Settings, db: Database) -> None:
    with DAG("past", max_active_runs=2) as dag:
        EmptyOperator(task_id="a", wait_for_downstream=True) >> EmptyOperator(task_id="b")
    assert dag.get_task("a").depends_on_past  # wait_for_downstream implies it, as in Airflow
    store_dags(settings, db, dag)
    first, second = _trigger(db, "past", D1), _trigger(db, "past", D2)
    _examine(db)
    assert tis(db, first)["a"].state == TI.SCHEDULED  # the first run has no previous run
    assert tis(db, second)["a"].state == TI.NONE
    assert _reason(db, second, "a") == f"depends_on_past: task 'a' is 'scheduled' in the previous run {first!r}, " + (
        "not success or skipped"
    )
    move_ti(db, tis(db, first)["a"].id, TI.SUCCESS)
    _examine(db)
    assert tis(db, second)["a"].state == TI.NONE
    assert "wait_for_downstream: the downstream tasks b of 'a'" in (_reason(db, second, "a") or "")
    move_ti(db, tis(db, first)["b"].id, TI.SKIPPED)
    _examine(db)
    assert tis(db, second)["a"].state == TI.SCHEDULED and _reason(db, second, "a") is None


def test_a_failed_past_holds_and_a_task_without_the_flag_runs(settings: Settings, db: Database) -> None:
    with DAG("past2", max_active_runs=2) as dag:
        EmptyOperator(task_id="a", depends_on_past=True)
        EmptyOperator(task_id="free")
    store_dags(settings, db, dag)
    first, second = _trigger(db, "past2", D1), _trigger(db, "past2", D2)
    move_ti(db, tis(db, first)["a"].id, TI.FAILED)
    _examine(db)
    assert (tis(db, second)["a"].state, tis(db, second)["free"].state) == (TI.NONE, TI.SCHEDULED)


def test_ignore_first_depends_on_past_lets_a_new_task_run(settings: Settings, db: Database) -> None:
    with DAG("past3", max_active_runs=2) as v1:
        EmptyOperator(task_id="old")
    store_dags(settings, db, v1)
    first = _trigger(db, "past3", D1)
    with DAG("past3", max_active_runs=2) as v2:
        EmptyOperator(task_id="old")
        EmptyOperator(task_id="new", depends_on_past=True, ignore_first_depends_on_past=True)
        EmptyOperator(task_id="strict", depends_on_past=True)
    store_dags(settings, db, v2, now=NOW + timedelta(seconds=1))
    second = _trigger(db, "past3", D2)
    _examine(db)
    assert "new" not in tis(db, first)
    assert tis(db, second)["new"].state == TI.SCHEDULED
    assert tis(db, second)["strict"].state == TI.NONE
    assert _reason(db, second, "strict") == (
        f"depends_on_past: task 'strict' has no task instance in the previous run {first!r} yet"
    )


DAG_FILE = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("past_loop", schedule="@daily", start_date=datetime(2024, 1, 1), end_date=datetime(2024, 1, 3),
         catchup=True, max_active_runs=3):
    EmptyOperator(task_id="a", depends_on_past=True, wait_for_downstream=True) >> EmptyOperator(task_id="b")
"""


def test_runs_of_a_depends_on_past_dag_go_one_after_another_through_the_scheduler(
    settings: Settings, db: Database
) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(settings, "past_loop.py", DAG_FILE)
    parse_and_trigger(settings, db, "past_loop")  # a manual run too: not a "previous run" of a catchup DAG
    run_scheduler_until_done(settings, db, timeout=120)
    with db.session() as session:
        states = {r.run_id: r.state for r in session.scalars(select(DagRun))}
        tries = {(t.run_id, t.task_id): t for t in session.scalars(select(TaskTry))}
    assert len(states) == 4 and set(states.values()) == {"success"}
    scheduled = sorted(r for r in states if r.startswith("scheduled__"))
    for before, after in zip(scheduled, scheduled[1:]):  # a waited for a and b of the run before
        assert tries[(after, "a")].start_date >= tries[(before, "b")].end_date


def test_wait_for_past_depends_before_skipping_holds_a_trigger_rule_skip(settings: Settings, db: Database) -> None:
    """Airflow's flag: a task instance its trigger rule would skip waits for depends_on_past first; without
    the flag it is skipped at once (and a flag without depends_on_past changes nothing)."""
    with DAG("past_skip", max_active_runs=2) as dag:
        up = EmptyOperator(task_id="up")
        up >> EmptyOperator(task_id="waits", depends_on_past=True, wait_for_past_depends_before_skipping=True)
        up >> EmptyOperator(task_id="plain", depends_on_past=True)
        up >> EmptyOperator(task_id="no_past", wait_for_past_depends_before_skipping=True)
    store_dags(settings, db, dag)
    first, second = _trigger(db, "past_skip", D1), _trigger(db, "past_skip", D2)
    move_ti(db, tis(db, first)["up"].id, TI.SUCCESS)
    move_ti(db, tis(db, second)["up"].id, TI.SKIPPED)
    _examine(db)
    now = tis(db, second)
    assert (now["plain"].state, now["no_past"].state) == (TI.SKIPPED, TI.SKIPPED)
    assert now["waits"].state == TI.NONE  # 'waits' is only scheduled in the first run: held
    assert "depends_on_past: task 'waits' is 'scheduled'" in (_reason(db, second, "waits") or "")
    move_ti(db, tis(db, first)["waits"].id, TI.SUCCESS)
    _examine(db)
    assert tis(db, second)["waits"].state == TI.SKIPPED


BRANCH_DAG = """
from datetime import datetime
from headrace import DAG, task
from headrace.operators import BashOperator

with DAG("past_branch", schedule="@daily", start_date=datetime(2024, 1, 1), end_date=datetime(2024, 1, 2),
         catchup=True, max_active_runs=2):
    @task.branch
    def pick(ds=None):
        return ["slow"] if ds == "2024-01-01" else []  # the second run's branch skips 'slow'

    slow = BashOperator(
        task_id="slow",
        bash_command="sleep {{ 2 if ds == '2024-01-01' else 0 }}",
        depends_on_past=True,
        wait_for_past_depends_before_skipping=True,
    )
    pick() >> slow
"""


def test_a_branch_skip_waits_for_past_depends_through_the_scheduler(settings: Settings, db: Database) -> None:
    """The second run's branch skips 'slow' while the first run's 'slow' still runs: the skip is recorded as
    Airflow's skipmixin_key XCom and done by the scheduler once the first run's 'slow' has succeeded."""
    from headrace.dagfiles.processor import DagProcessor
    from headrace.db.models import TaskInstance, XCom

    settings = settings.with_overrides(FAST)
    write_dag(settings, "past_branch.py", BRANCH_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    run_scheduler_until_done(settings, db, timeout=120)
    with db.session() as session:
        runs = {r.id: r for r in session.scalars(select(DagRun))}
        assert {r.state for r in runs.values()} == {"success"} and len(runs) == 2
        first, second = sorted(runs.values(), key=lambda r: r.logical_date)
        slow = {t.dag_run_id: t for t in session.scalars(select(TaskInstance).where(TaskInstance.task_id == "slow"))}
        assert slow[first.id].state == TI.SUCCESS and slow[second.id].state == TI.SKIPPED
        assert slow[second.id].try_number == 0  # never ran
        # skipped only once the past let it go: the first 'slow' sleeps 2 s, so a skip that did not wait comes
        # well before its start + 2 s (the scheduler pass that skips takes its time before it reads the success,
        # so the skip's time may precede the first 'slow''s recorded end by the pass's length)
        assert slow[second.id].end_date >= slow[first.id].start_date + timedelta(seconds=1.5)
        marks = session.scalars(select(XCom.value).where(XCom.key == "skipmixin_key", XCom.dag_run_id == second.id))
        assert list(marks) == ['{"skipped": ["slow"]}']
