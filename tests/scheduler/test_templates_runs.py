"""The template context through the DAG processor, a real scheduler and supervised tries, on both databases.

Two runs of one DAG: the second sees the first (successful) run's dates as ``prev_*_success``. Templates
use ``macros``, the DAG's ``user_defined_macros`` and ``user_defined_filters``, Airflow's ``ds``/``ts``
filters and the keys Airflow 3's context has; a DAG with ``render_template_as_native_obj`` gets Python
objects, not text. ``headrace tasks render`` prints what the task process rendered (the rendered-templates
tab's data).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import select

from headrace.authoring.xcom import deserialize_xcom
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, XCom
from headrace.scheduler.runs import trigger_dag
from headrace.ui.task_instance import rendered_fields_of
from tests.cli.warm import WarmCli
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

TEMPLATES_DAG = """
    import os
    from datetime import datetime

    from headrace import DAG
    from headrace.operators import BashOperator, PythonOperator

    def shout(text):
        return text.upper() + "!"

    def context_keys(macros, task_instance_key_str, prev_data_interval_end_success, prev_end_date_success,
                     start_date, expanded_ti_count, ts_nodash_with_tz, test_mode):
        return {
            "ds_add": macros.ds_add("2026-01-01", -1),
            "key": task_instance_key_str,
            "prev_end": prev_data_interval_end_success,
            "prev_ended": prev_end_date_success,
            "started": start_date,
            "count": expanded_ti_count,
            "tz": ts_nodash_with_tz,
            "test_mode": test_mode,
        }

    with DAG(
        "templates_run",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        user_defined_macros={"team": "data", "plus_one": lambda n: n + 1},
        user_defined_filters={"shout": shout},
        template_searchpath=os.path.join(os.path.dirname(__file__), "scripts"),
    ):
        BashOperator(task_id="from_file", bash_command="greet.sh")  # a template file (BashOperator's .sh)
        BashOperator(
            task_id="show",
            bash_command=(
                "echo ds={{ ds }} week={{ macros.ds_add(ds, 7) }} "
                "fmt={{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }} "
                "loc={{ macros.ds_format_locale(ds, '%Y-%m-%d', 'EEEE_d_MMMM', 'nl_BE') }} "
                "key={{ task_instance_key_str }} "
                "tz={{ ts_nodash_with_tz }} end={{ data_interval_end | ds_nodash }} "
                "prev={{ prev_data_interval_start_success | ts }} "
                "prev_started={{ prev_start_date_success is not none }} "
                "team={{ team }} n={{ plus_one(1) }} shout={{ 'hi' | shout }} count={{ expanded_ti_count }} "
                "day={{ (macros.datetime(2026, 1, 2) - macros.timedelta(days=1)).day }}"
            ),
        )
        PythonOperator(task_id="keys", python_callable=context_keys)

    def kinds(values, n, when):
        return [type(values).__name__, type(n).__name__, type(when).__name__, values, n]

    with DAG("native_run", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True,
             params={"n": 3}):
        PythonOperator(
            task_id="kinds",
            python_callable=kinds,
            op_kwargs={"values": "{{ [1, 2] + [params.n] }}", "n": "{{ params.n + 1 }}",
                       "when": "{{ data_interval_start }}"},
        )
"""

FIRST = datetime(2026, 3, 1, tzinfo=UTC)
SECOND = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)


def value_of(db: Database, run_id: str, task_id: str) -> object:
    with db.read_session() as session:
        text = session.scalar(
            select(XCom.value).where(XCom.run_id == run_id, XCom.task_id == task_id, XCom.key == "return_value")
        )
    assert text is not None, f"{task_id} pushed nothing in {run_id}"
    return deserialize_xcom(text)


def render_cli(warm_cli: WarmCli, settings: Settings, *args: str, command: str = "render") -> str:
    """``headrace tasks <command> *args`` (in a child of the warm headrace, tests/cli/warm.py); its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(HEADRACE_HOME=str(settings.home), HEADRACE__DATABASE__URL=settings.database_url, COLUMNS="250")
    proc = warm_cli.run(["tasks", command, *args], env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_context_and_template_options_through_the_scheduler(
    settings: Settings, db: Database, warm_cli: WarmCli
) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "templates_run.py", TEMPLATES_DAG)
    (fast.dags_folder / "scripts").mkdir()
    (fast.dags_folder / "scripts" / "greet.sh").write_text('echo "file {{ ds }} {{ team | shout }}"\n')
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        first = trigger_dag(session, "templates_run", logical_date=FIRST, run_id="first", now=datetime.now(UTC))
        native = trigger_dag(session, "native_run", logical_date=FIRST, run_id="native", now=datetime.now(UTC))
        first_id, native_id = first.run_id, native.run_id
    run_scheduler_until_done(fast, db)
    with db.session() as session:
        second_id = trigger_dag(
            session, "templates_run", logical_date=SECOND, run_id="second", now=datetime.now(UTC)
        ).run_id
    run_scheduler_until_done(fast, db)
    with db.read_session() as session:
        runs = {
            r.run_id: (r.state, r.data_interval_end, r.end_date, r.queued_at) for r in session.scalars(select(DagRun))
        }
    assert {r[0] for r in runs.values()} == {"success"}

    assert value_of(db, first_id, "show") == (
        "ds=2026-03-01 week=2026-03-08 fmt=01/03/2026 loc=zondag_1_maart key=templates_run__show__20260301 "
        "tz=20260301T000000+0000 end=20260301 prev=None prev_started=False "
        "team=data n=2 shout=HI! count=None day=1"
    )
    assert value_of(db, second_id, "show") == (
        "ds=2026-03-02 week=2026-03-09 fmt=02/03/2026 loc=maandag_2_maart key=templates_run__show__20260302 "
        "tz=20260302T063000+0000 end=20260302 prev=2026-03-01T00:00:00+00:00 prev_started=True "
        "team=data n=2 shout=HI! count=None day=1"
    )
    keys = value_of(db, second_id, "keys")
    assert isinstance(keys, dict)
    assert keys["ds_add"] == "2025-12-31" and keys["key"] == "templates_run__keys__20260302"
    assert keys["prev_end"] == runs[first_id][1] == FIRST
    assert keys["prev_ended"] == runs[first_id][2]
    assert isinstance(keys["started"], datetime) and keys["started"] >= runs[second_id][3]
    assert keys["count"] is None and keys["test_mode"] is False and keys["tz"] == "20260302T063000+0000"
    assert value_of(db, first_id, "keys")["prev_end"] is None  # type: ignore[index]

    assert value_of(db, first_id, "from_file") == "file 2026-03-01 DATA!"  # found in template_searchpath
    assert value_of(db, native_id, "kinds") == ["list", "int", "datetime", [1, 2, 3], 4]

    # `tasks render` prints what the task process rendered (the rendered-templates tab's data)
    with db.read_session() as session:
        tab = rendered_fields_of(session, "templates_run", second_id, "show")["fields"]["bash_command"]
    printed = render_cli(warm_cli, fast, "templates_run", "show", second_id)
    assert tab.startswith("echo ds=2026-03-02 ") and "prev=2026-03-01T00:00:00+00:00" in tab
    assert f"\n{tab}\n" in printed
    with db.read_session() as session:
        tab = rendered_fields_of(session, "native_run", native_id, "kinds")["fields"]["op_kwargs"]
    assert tab in render_cli(warm_cli, fast, "native_run", "kinds", native_id)

    # `tasks test` builds the same context in the CLI's process: the previous successful run, test_mode
    printed = render_cli(warm_cli, fast, "templates_run", "keys", SECOND.isoformat(), command="test")
    assert (
        '"test_mode":true' in printed and '"prev_end":{"__hr__":"datetime","v":"2026-03-01T00:00:00+00:00"}' in printed
    )
