"""End to end: DAG files parsed, scheduled and run by real supervisors through the LocalExecutor."""

from __future__ import annotations

from headrace.config import Settings
from headrace.db.engine import Database
from tests.pgbouncer import WITH_PGBOUNCER

from .helpers import FAST, parse_and_trigger, run_scheduler_until_done, run_states, ti_states, tries_per_ti, write_dag


@WITH_PGBOUNCER
def test_dag_file_runs_to_success(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(
        settings,
        "etl.py",
        """
        from headrace import DAG
        from headrace.operators import BashOperator, PythonOperator

        def extract():
            return [1, 2, 3]

        def total(ti):
            return sum(ti.xcom_pull(task_ids="extract"))

        with DAG("etl"):
            e = PythonOperator(task_id="extract", python_callable=extract)
            t = PythonOperator(task_id="total", python_callable=total)
            b = BashOperator(task_id="echo", bash_command="echo done")
            e >> t >> b
    """,
    )
    run_id = parse_and_trigger(settings, db, "etl")
    run_scheduler_until_done(settings, db)
    assert run_states(db) == {run_id: "success"}
    assert ti_states(db) == {"extract": "success", "total": "success", "echo": "success"}
    assert tries_per_ti(db) == {"extract": [1], "total": [1], "echo": [1]}


@WITH_PGBOUNCER
def test_retry_then_success(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(
        settings,
        "flaky.py",
        """
        from headrace import DAG
        from headrace.operators import PythonOperator

        def flaky(ti):
            if ti.try_number < 2:
                raise RuntimeError("first try fails")

        with DAG("flaky"):
            PythonOperator(task_id="flaky", python_callable=flaky, retries=1, retry_delay=0.1)
    """,
    )
    run_id = parse_and_trigger(settings, db, "flaky")
    run_scheduler_until_done(settings, db)
    assert run_states(db) == {run_id: "success"}
    assert tries_per_ti(db) == {"flaky": [1, 2]}


RULES = {
    # upstream: ok (success), bad (failed), skip (skipped)
    "all_success": "upstream_failed",
    "all_failed": "skipped",
    "all_done": "success",
    "all_skipped": "skipped",
    "one_success": "success",
    "one_failed": "success",
    "one_done": "success",
    "none_failed": "upstream_failed",
    "none_failed_min_one_success": "upstream_failed",
    "none_skipped": "skipped",
    "always": "success",
}


@WITH_PGBOUNCER
def test_every_trigger_rule(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(
        settings,
        "rules.py",
        f"""
        from headrace import DAG, SkipTask
        from headrace.operators import EmptyOperator, PythonOperator

        def fail():
            raise ValueError("bad")

        def skip():
            raise SkipTask("skip me")

        with DAG("rules"):
            ok = EmptyOperator(task_id="ok")
            bad = PythonOperator(task_id="bad", python_callable=fail)
            # "skip" ends after "bad", so no rule sees a skip before the failure (Airflow decides
            # all_success as soon as one upstream is skipped, which would make the outcome a race).
            skipper = PythonOperator(task_id="skip", python_callable=skip, trigger_rule="all_done")
            bad >> skipper
            ups = [ok, bad, skipper]
            for rule in {sorted(RULES)!r}:
                ups >> EmptyOperator(task_id=rule, trigger_rule=rule)
    """,
    )
    run_id = parse_and_trigger(settings, db, "rules")
    run_scheduler_until_done(settings, db)
    states = ti_states(db)
    assert {rule: states[rule] for rule in RULES} == RULES
    assert (states["ok"], states["bad"], states["skip"]) == ("success", "failed", "skipped")
    assert run_states(db) == {run_id: "failed"}  # leaves upstream_failed
