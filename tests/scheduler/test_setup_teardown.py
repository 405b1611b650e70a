"""Setup and teardown tasks through the real scheduler (local executor), on SQLite and PostgreSQL.

Airflow's rules: a teardown runs when its work is done if one of its setups
succeeded; a failed setup fails the work that needs it (also through an
``all_done`` task); a teardown's failure does not decide the run unless
``on_failure_fail_dagrun``; clearing a work task clears its setups and teardowns.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.scheduler.user_actions import clear_task_instances
from tests.integration.helpers import (
    FAST,
    parse_and_trigger,
    run_scheduler_until_done,
    run_states,
    ti_states,
    write_dag,
)

SETUP_FAILS = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator, PythonOperator

def boom():
    raise RuntimeError("no cluster")

with DAG("st_setup_fails", schedule=None, start_date=datetime(2026, 1, 1)):
    make = PythonOperator(task_id="make", python_callable=boom).as_setup()
    work = EmptyOperator(task_id="work")
    after = EmptyOperator(task_id="after", trigger_rule="all_done")
    drop = EmptyOperator(task_id="drop").as_teardown(setups=make)
    make >> work >> after >> drop
"""

WORK_FAILS = """
from datetime import datetime
from headrace import DAG, setup, task, teardown

with DAG("st_work_fails", schedule=None, start_date=datetime(2026, 1, 1)):

    @setup
    def make():
        return "c1"

    @task
    def work(c):
        raise RuntimeError("query failed")

    @teardown
    def drop(c):
        assert c == "c1"

    c = make()
    with c >> drop(c):
        work(c)
"""

TEARDOWN_FAILS = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator, PythonOperator

def boom():
    raise RuntimeError("could not drop")

with DAG("st_teardown_fails", schedule=None, start_date=datetime(2026, 1, 1)):
    make = EmptyOperator(task_id="make")
    drop = PythonOperator(task_id="drop", python_callable=boom).as_teardown(setups=make, on_failure_fail_dagrun=True)
    make >> EmptyOperator(task_id="work") >> drop
"""


def fast(settings: Settings) -> Settings:
    return settings.with_overrides(FAST)


def test_a_failed_setup_fails_its_work_even_through_all_done_and_its_teardown(settings: Settings, db: Database) -> None:
    settings = fast(settings)
    write_dag(settings, "st.py", SETUP_FAILS)
    parse_and_trigger(settings, db, "st_setup_fails")
    run_scheduler_until_done(settings, db)
    assert ti_states(db) == {
        "make": "failed",
        "work": "upstream_failed",
        "after": "upstream_failed",  # all_done alone would run it: the setup constraint does not
        "drop": "upstream_failed",  # all_done_setup_success: no setup succeeded
    }
    assert set(run_states(db).values()) == {"failed"}


def test_teardown_runs_after_failed_work_and_the_work_decides_the_run(settings: Settings, db: Database) -> None:
    settings = fast(settings)
    write_dag(settings, "st.py", WORK_FAILS)
    parse_and_trigger(settings, db, "st_work_fails")
    run_scheduler_until_done(settings, db)
    assert ti_states(db) == {"make": "success", "work": "failed", "drop": "success"}
    assert set(run_states(db).values()) == {"failed"}  # work is a leaf: only a teardown follows it


def test_a_teardown_with_on_failure_fail_dagrun_fails_the_run(settings: Settings, db: Database) -> None:
    settings = fast(settings)
    write_dag(settings, "st.py", TEARDOWN_FAILS)
    parse_and_trigger(settings, db, "st_teardown_fails")
    run_scheduler_until_done(settings, db)
    assert ti_states(db) == {"make": "success", "work": "success", "drop": "failed"}
    assert set(run_states(db).values()) == {"failed"}


def test_clearing_a_work_task_clears_its_setup_and_teardown_and_they_run_again(
    settings: Settings, db: Database
) -> None:
    settings = fast(settings)
    write_dag(
        settings,
        "st.py",
        """
        from datetime import datetime
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("st_clear", schedule=None, start_date=datetime(2026, 1, 1)):
            make = EmptyOperator(task_id="make").as_setup()
            drop = EmptyOperator(task_id="drop").as_teardown(setups=make)
            with make >> drop:
                a = EmptyOperator(task_id="a")
                b = EmptyOperator(task_id="b")
            other = EmptyOperator(task_id="other")
        """,
    )
    parse_and_trigger(settings, db, "st_clear")
    run_scheduler_until_done(settings, db)
    assert set(ti_states(db).values()) == {"success"}
    with db.session() as session:
        run = session.scalars(select(DagRun)).one()
        cleared = clear_task_instances(session, run, ["a"], now=datetime.now(UTC))
    assert cleared.run_requeued and len(cleared.cleared) == 3
    states = ti_states(db)
    assert {t for t, s in states.items() if s is None or s == "none"} == {"make", "a", "drop"}
    assert states["b"] == states["other"] == "success"
    run_scheduler_until_done(settings, db)
    assert set(ti_states(db).values()) == {"success"}
    assert set(run_states(db).values()) == {"success"}


def test_all_done_min_one_success_runs_after_one_success_despite_failures(settings: Settings, db: Database) -> None:
    """Airflow's rule: every upstream done and one of them succeeded (failures allowed); none succeeded:
    upstream_failed; a skipped upstream skips it."""
    settings = fast(settings)
    write_dag(
        settings,
        "st.py",
        """
        from datetime import datetime
        from headrace import DAG
        from headrace.exceptions import AirflowSkipException
        from headrace.operators import EmptyOperator, PythonOperator

        def boom():
            raise RuntimeError("failed on purpose")

        def skip_it():
            raise AirflowSkipException("skipped on purpose")

        with DAG("st_min_one", schedule=None, start_date=datetime(2026, 1, 1)):
            ok = EmptyOperator(task_id="ok")
            bad = PythonOperator(task_id="bad", python_callable=boom)
            bad2 = PythonOperator(task_id="bad2", python_callable=boom)
            skipped = PythonOperator(task_id="skipped", python_callable=skip_it)
            rule = "all_done_min_one_success"
            [ok, bad] >> EmptyOperator(task_id="one_success", trigger_rule=rule)
            [bad, bad2] >> EmptyOperator(task_id="none_succeeded", trigger_rule=rule)
            [ok, skipped] >> EmptyOperator(task_id="after_a_skip", trigger_rule=rule)
        """,
    )
    parse_and_trigger(settings, db, "st_min_one")
    run_scheduler_until_done(settings, db)
    states = ti_states(db)
    assert states["one_success"] == "success"
    assert states["none_succeeded"] == "upstream_failed"
    assert states["after_a_skip"] == "skipped"
