"""PythonVirtualenvOperator, ExternalPythonOperator, @task.virtualenv / external_python / bash and
@task.run_if / skip_if through the scheduler (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, ImportError_, TaskInstance, TaskTry, XCom
from headrace.scheduler.runs import trigger_dag
from tests.authoring.tiny_wheel import make_wheel

from .helpers import FAST, run_scheduler_until_done, write_dag

DAG_FILE = """
from datetime import datetime

from headrace import DAG, XComArg, task
from headrace.operators import ExternalPythonOperator, PythonVirtualenvOperator

WHEELS = {wheels!r}
CACHE = {cache!r}
HOST_PYTHON = {host_python!r}
PIP = ["--no-index", "--find-links", WHEELS]


def with_tiny(n, ds=None):
    import sys

    import tinypkg

    print("running in", sys.prefix)
    return {{"value": tinypkg.VALUE + n, "ds": ds, "prefix": sys.prefix}}


def exits(code):
    import sys

    sys.exit(code)


def add(a, b):
    return a + b


with DAG("interpreters", schedule=None, start_date=datetime(2024, 1, 1)):
    venv = PythonVirtualenvOperator(
        task_id="venv",
        python_callable=with_tiny,
        op_args=[1],
        requirements=["tinypkg==0.1"],
        pip_install_options=PIP,
        venv_cache_path=CACHE,
        system_site_packages=False,
    )

    @task.virtualenv(requirements="tinypkg==0.1", pip_install_options=PIP, venv_cache_path=CACHE, system_site_packages=False)
    def decorated(previous):
        import tinypkg

        return previous["value"] + tinypkg.VALUE

    decorated(XComArg(venv))
    PythonVirtualenvOperator(
        task_id="bad_requirement",
        python_callable=add,
        op_args=[1, 2],
        requirements=["tinypkg==9.9"],
        pip_install_options=PIP,
        venv_cache_path=CACHE,
    )
    PythonVirtualenvOperator(task_id="no_interpreter", python_callable=add, op_args=[1, 2], python_version="2.9")
    PythonVirtualenvOperator(
        task_id="exit_skips", python_callable=exits, op_args=[42], skip_on_exit_code=42, system_site_packages=False
    )
    PythonVirtualenvOperator(task_id="exit_fails", python_callable=exits, op_args=[3], system_site_packages=False)
    ExternalPythonOperator(task_id="external", python=HOST_PYTHON, python_callable=add, op_kwargs={{"a": 2, "b": 3}})

    @task.external_python(python="/nonexistent/bin/python")
    def missing_python():
        return 1

    missing_python()

    @task.bash(env={{"WHO": "world"}}, append_env=True)
    def greet(word):
        return "echo " + word + " $WHO {{{{ ds }}}}"

    greet("hello")

    @task.bash
    def empty_command():
        return ""

    empty_command()

    @task.run_if(lambda context: context["params"].get("go", False), skip_message="not asked to go")
    @task
    def only_if_go():
        return "ran"

    only_if_go()

    @task.skip_if(lambda context: (context["ds"] == "2024-03-01", "skipped on March 1st"))
    @task.bash
    def unless_march_first():
        return "echo not skipped"

    unless_march_first()

    @task.skip_if(lambda context: False)
    @task
    def kept():
        return "kept"

    kept()
"""


def test_tasks_in_other_interpreters_and_conditions(settings: Settings, db: Database, tmp_path: Path) -> None:
    settings = settings.with_overrides(FAST)
    wheels, cache = tmp_path / "wheels", tmp_path / "venvs"
    make_wheel(wheels)
    write_dag(
        settings,
        "interpreters.py",
        DAG_FILE.format(wheels=str(wheels), cache=str(cache), host_python=sys.executable),
    )
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        assert list(session.scalars(select(ImportError_.message))) == []
        for model in session.scalars(select(DagModel)):
            model.is_paused = False
        run_pk = trigger_dag(
            session, "interpreters", now=datetime.now(UTC), logical_date=datetime(2024, 3, 1, tzinfo=UTC)
        ).id
    run_scheduler_until_done(settings, db, timeout=180)

    with db.read_session() as session:
        states = dict(
            session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == run_pk)
            ).all()
        )
        errors = dict(session.execute(select(TaskTry.task_id, TaskTry.error)).all())
        logs = dict(session.execute(select(TaskTry.task_id, TaskTry.log_path)).all())
        xcoms = dict(
            session.execute(
                select(XCom.task_id, XCom.value).where(XCom.dag_run_id == run_pk, XCom.key == "return_value")
            ).all()
        )
    assert states == {
        "venv": "success",
        "decorated": "success",
        "bad_requirement": "failed",
        "no_interpreter": "failed",
        "exit_skips": "skipped",
        "exit_fails": "failed",
        "external": "success",
        "missing_python": "failed",
        "greet": "success",
        "empty_command": "failed",
        "only_if_go": "skipped",
        "unless_march_first": "skipped",
        "kept": "success",
    }
    assert '"value":43' in xcoms["venv"] and '"ds":"2024-03-01"' in xcoms["venv"]
    assert str(cache) in xcoms["venv"]  # it ran in the cached venv
    assert xcoms["decorated"] == "85"  # 43 + 42: the XComArg resolved, the cached venv reused
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1
    assert xcoms["external"] == "5"
    assert xcoms["greet"] == '"hello world 2024-03-01"'
    assert xcoms["kept"] == '"kept"'
    assert "No matching distribution found for tinypkg==9.9" in (errors["bad_requirement"] or "")
    assert "no interpreter python2.9" in (errors["no_interpreter"] or "")
    assert "non-zero exit code 3" in (errors["exit_fails"] or "")
    assert "/nonexistent/bin/python" in (errors["missing_python"] or "")
    assert "must be a non-empty string" in (errors["empty_command"] or "")
    assert "not asked to go" in Path(logs["only_if_go"]).read_text()
    assert "skipped on March 1st" in Path(logs["unless_march_first"]).read_text()
