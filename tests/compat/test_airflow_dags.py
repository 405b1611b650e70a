"""The compatibility suite: Airflow-style DAG files run three ways through the real DAG processor and scheduler.

1. ``migrated``: rewritten by ``headrace migrate airflow`` (in a copy), then run;
2. ``airflow_imports``: run unchanged with ``core.airflow_imports = true``;
3. ``native``: their headrace-native twins.

Each way parses the folder with :class:`DagProcessor` (in forked children, as the scheduler does), triggers
every DAG and runs a real scheduler loop with the local executor (every try in its own supervised process,
forked by a fork server that got the settings from its environment), on SQLite and PostgreSQL.
The Airflow 2 file is not expected to run unchanged: Airflow 3 itself refuses its spellings
(``schedule_interval``, ``execution_date``); the migration is its way over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.compat.migrate import migrate_path, write_results
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagModel, DagRun, ImportError_, TaskInstance
from headrace.scheduler.runs import trigger_dag
from headrace.testing import FAST_LOOP, run_scheduler_until

from .conftest import AIRFLOW_DAGS, NATIVE_DAGS, UNSUPPORTED
from .services import compat_services

DAG_IDS = [
    "compat_airflow2_legacy",
    "compat_airflow3_taskflow",
    "compat_custom_operator",
    "compat_dag_display_name",
    "compat_depends_on_past",
    "compat_email",
    "compat_mapping",
    "compat_pendulum",
    "compat_pendulum_target",
    "compat_python_interpreters",
    "compat_remap",
    "compat_setup_teardown",
    "compat_sql",
    "compat_standard_branching",
    "compat_task_callbacks",
    "compat_task_params",
    "compat_team_a_report",
    "compat_templates",
    "compat_trigger_dagrun",
    "compat_trigger_target",
    "compat_xcom_types",
]
TASKS: dict[str, set[str] | dict[str, str]] = {
    "compat_airflow2_legacy": {"start", "announce", "echo"},
    "compat_airflow3_taskflow": {"extract", "total", "check", "report", "end"},
    # a teardown's failure does not fail the run (on_failure_fail_dagrun=False): Airflow's outcome rule
    "compat_setup_teardown": {
        "create_cluster": "success",
        "run_query": "success",
        "delete_cluster": "success",
        "make_table": "success",
        "load": "success",
        "drop_table": "failed",
    },
    "compat_team_a_report": {"greet"},
    # self.log, template_ext with a .sql file beside the DAG, Context, xcom_push, Variable.get(default_var=)
    "compat_custom_operator": {"render", "check"},
    "compat_sql": {"create", "insert", "select", "copy_to_mysql", "cleanup"},
    "compat_email": {"send_report", "send_with_the_hook"},
    "compat_templates": {"render", "from_context", "current"},
    "compat_xcom_types": {"produce", "consume"},
    # a set: every task succeeds; a dict: each task's expected state
    "compat_standard_branching": {
        **dict.fromkeys(["latest_only", "after_latest", "day_check", "any_day", "joined"], "success"),
        **dict.fromkeys(["time_check", "after_2000", "logical_check", "in_the_day"], "success"),
        **dict.fromkeys(["no_day", "before_2000", "never"], "skipped"),
    },
    "compat_trigger_dagrun": {"trigger", "check"},
    "compat_trigger_target": {"receive"},
    "compat_python_interpreters": {
        **dict.fromkeys(["venv", "external", "doubled", "plus_one", "announce", "runs"], "success"),
        "skipped_when_manual": "skipped",
    },
    "compat_dag_display_name": {"hello"},
    # pendulum dates and time zones (start_date, end_date, default_args, a timetable's, TriggerDagRunOperator's)
    "compat_pendulum": {"trigger", "check"},
    "compat_pendulum_target": {"land"},
    "compat_depends_on_past": {"extract", "load", "done"},  # the first run: nothing in the past holds them
    # on_execute_callback and on_skipped_callback push XComs that check reads
    "compat_task_callbacks": {"work": "success", "skip_me": "skipped", "check": "success"},
    # task params over the DAG's (each task asserts what it sees: {{ params.x }} and context["params"])
    "compat_task_params": {"echo", "own", "grp.check"},
    # the first run (test_remap.py clears it and runs it again with a shorter list)
    "compat_remap": {"items", "square", "check"},
    "compat_mapping": {
        "files",
        "size",
        "total",
        "pairs",
        "add",
        "check_sums",
        "echo",
        "per_file.upper",
        "per_file.check_upper",
    },
}
"""dag_id → the tasks that must all succeed, or task_id → the state each must end in; the run must succeed."""


def run_folder(
    settings: Settings, db: Database, timeout: float = 180
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Parse the DAGs folder, trigger every DAG it defines, run the scheduler until those runs end (at most
    ``timeout`` seconds).

    Returns ``({fileloc name: import error}, {dag_id: {task_id: state}})`` with the run's own state under
    the key ``"<run>"``.
    """
    migrate(db)
    now = datetime.now(UTC)
    processor = DagProcessor(settings, db)
    processor.refresh(now)
    with db.session() as session:
        errors = {Path(e.fileloc).name: e.message for e in session.scalars(select(ImportError_))}
        dag_ids = sorted(session.scalars(select(DagModel.dag_id).where(DagModel.is_active.is_(True))))
        for model in session.scalars(select(DagModel)):
            model.is_paused = False
        runs = {d: trigger_dag(session, d, now=now).id for d in dag_ids}

    def ended() -> bool:
        with db.read_session() as session:
            states = session.scalars(select(DagRun.state).where(DagRun.id.in_(list(runs.values()))))
            return all(s in ("success", "failed") for s in states)

    with compat_services(settings, db):  # SMTP server, connections and variable of compat_sql / compat_email
        if not run_scheduler_until(settings, db, ended, processor=processor, timeout=timeout):
            with db.read_session() as session:
                open_runs = sorted(
                    session.scalars(select(DagRun.dag_id).where(DagRun.state.not_in(["success", "failed"])))
                )
            raise AssertionError(f"runs not ended after {timeout:g} s: {open_runs}")
    processor.close()
    results: dict[str, dict[str, str]] = {}
    with db.read_session() as session:
        for dag_id, run_pk in runs.items():
            rows = session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == run_pk)
            )
            by_task: dict[str, set[str]] = {}
            for task_id, state in rows:  # a mapped task has one task instance per map index
                by_task.setdefault(task_id, set()).add(str(state))
            results[dag_id] = {task_id: "/".join(sorted(states)) for task_id, states in by_task.items()}
            results[dag_id]["<run>"] = str(session.scalar(select(DagRun.state).where(DagRun.id == run_pk)))
    return errors, results


def expected_states(dag_id: str) -> dict[str, str]:
    """``{task_id: state}`` the DAG's run must end with (TASKS: a set means every task a success)."""
    tasks = TASKS[dag_id]
    return dict(tasks) if isinstance(tasks, dict) else dict.fromkeys(tasks, "success")


def succeeded(results: dict[str, dict[str, str]]) -> list[str]:
    """The DAGs whose run succeeded with every task in its expected state (each task checks its own inputs)."""
    return sorted(
        dag_id
        for dag_id, states in results.items()
        if states.pop("<run>", None) == "success" and states == expected_states(dag_id)
    )


ALLOW_DAG_CLASSES = {"allowed_deserialization_classes": "headrace.* headrace_dag_*"}
"""xcom_types.py pulls its own dataclass and pydantic model: allowed by the setting, as Airflow needs
``AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES`` for them."""


def fast(settings: Settings, **core: object) -> Settings:
    return settings.with_overrides({**FAST_LOOP, "core": {**FAST_LOOP["core"], **ALLOW_DAG_CLASSES, **core}})


def test_migrated_by_the_command(settings: Settings, db: Database, tmp_path: Path) -> None:
    shutil.rmtree(settings.dags_folder)
    results = migrate_path(AIRFLOW_DAGS)
    assert [f for r in results for f in r.findings] == []
    write_results(AIRFLOW_DAGS, results, settings.dags_folder)
    errors, runs = run_folder(fast(settings), db)
    assert errors == {}
    assert succeeded(runs) == DAG_IDS


SEQUENTIAL_FILES = ["airflow2_legacy.py", "airflow3_taskflow.py", "mapping.py", "templates.py", "xcom_types.py"]
"""The files the sequential way runs: an interpreter per try, one at a time, is minutes for the whole folder;
these cover the import mapping in a fresh interpreter (TaskFlow, mapping, templates, XCom types)."""


def run_unchanged(settings: Settings, db: Database, executor: str) -> None:
    """The Airflow files, unchanged with ``core.airflow_imports``, run by ``executor``; checks what ended how."""
    shutil.rmtree(settings.dags_folder)
    shutil.copytree(AIRFLOW_DAGS, settings.dags_folder)
    if executor == "sequential":
        for path in Path(settings.dags_folder).glob("*.py"):
            if path.name not in SEQUENTIAL_FILES:
                path.unlink()
    # the sequential way starts an interpreter per try, one at a time: ~150 s at a load of 10 on 2 cores
    errors, runs = run_folder(
        fast(settings, airflow_imports=True, executor=executor), db, timeout=400 if executor == "sequential" else 180
    )
    # Airflow 3 refuses the Airflow 2 file's spellings too; headrace says which argument
    assert list(errors) == ["airflow2_legacy.py"]
    assert "schedule_interval" in errors["airflow2_legacy.py"]
    expected = [d for d in DAG_IDS if d != "compat_airflow2_legacy"]
    if executor == "sequential":
        expected = ["compat_airflow3_taskflow", "compat_mapping", "compat_team_a_report", "compat_templates"]
        expected += ["compat_xcom_types"]
    assert succeeded(runs) == expected


@pytest.mark.timeout(480)
def test_unchanged_with_airflow_imports(settings: Settings, db: Database) -> None:
    """Tries forked by the fork server (the local executor), on SQLite and PostgreSQL."""
    run_unchanged(settings, db, "local")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.timeout(480)
def test_unchanged_with_airflow_imports_each_try_in_its_own_interpreter(settings: Settings, db: Database) -> None:
    """The sequential executor: every try in a fresh interpreter, which installs the import mapping itself.

    What is tested is the interpreter's start, not SQL: one database (the local way above, and the
    sequential executor's own tests, run on both). An interpreter per try, one at a time, costs half a
    minute or more here.
    """
    run_unchanged(settings, db, "sequential")


def test_native_twins(settings: Settings, db: Database) -> None:
    shutil.rmtree(settings.dags_folder)
    shutil.copytree(NATIVE_DAGS, settings.dags_folder)
    errors, runs = run_folder(fast(settings), db)
    assert errors == {}
    assert succeeded(runs) == DAG_IDS


def test_unsupported_features_are_import_errors_that_name_them(settings: Settings, db: Database) -> None:
    shutil.copy(UNSUPPORTED / "s3_sensor.py", settings.dags_folder)
    DagProcessor(fast(settings, airflow_imports=True), db).refresh(datetime.now(UTC))
    with db.session() as session:
        messages = list(session.scalars(select(ImportError_.message)))
    assert messages == ["NotSupported: airflow.providers.amazon: headrace does not support the amazon provider yet"]


def test_tasks_test_runs_an_airflow_file_unchanged(settings: Settings, db: Database) -> None:
    """`headrace tasks test` imports the DAG file in the CLI's own process: the mapping is installed there too."""
    shutil.rmtree(settings.dags_folder)
    shutil.copytree(AIRFLOW_DAGS, settings.dags_folder)
    migrate(db)
    DagProcessor(fast(settings, airflow_imports=True), db).refresh(datetime.now(UTC))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(settings.to_env(), HEADRACE__CORE__AIRFLOW_IMPORTS="true")
    proc = subprocess.run(
        [sys.executable, "-m", "headrace", "tasks", "test", "compat_team_a_report", "greet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello team a" in proc.stdout + proc.stderr
