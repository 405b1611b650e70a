"""`headrace migrate airflow`: the diff, the untranslated constructs, --write / --out, idempotency (real CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.compat.migrate import migrate_path, migrate_source
from tests.cli.warm import WarmCli

from .conftest import AIRFLOW_DAGS, UNSUPPORTED

Headrace = Callable[..., subprocess.CompletedProcess[str]]
"""``headrace(tmp_path, *args)``: ``headrace migrate airflow *args`` with HEADRACE_HOME in ``tmp_path``."""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(HEADRACE_HOME=str(tmp_path / "home"), COLUMNS="250")
    return env


@pytest.fixture
def headrace(warm_cli: WarmCli) -> Headrace:
    """The command in a child of the warm ``headrace`` (tests/cli/warm.py); ``test_a_missing_path_is_refused``
    runs it through ``python -m headrace`` itself."""

    def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return warm_cli.run(["migrate", "airflow", *args], _env(tmp_path), timeout=120)

    return run


def counts(folder: Path) -> tuple[int, int]:
    """(files importing airflow, Python files) in ``folder``: what the command changes, of what it reads."""
    files = list(folder.rglob("*.py"))
    return sum("from airflow" in p.read_text() or "import airflow" in p.read_text() for p in files), len(files)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "dags"
    shutil.copytree(AIRFLOW_DAGS, copy)
    return copy


def test_the_default_shows_a_diff_and_changes_nothing(tmp_path: Path, folder: Path, headrace: Headrace) -> None:
    before = {p: p.read_text() for p in folder.rglob("*.py")}
    proc = headrace(tmp_path, str(folder))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "--- a/airflow2_legacy.py\n+++ b/airflow2_legacy.py\n" in out
    for removed, added in [
        ("-from airflow import DAG", "+from headrace import DAG"),
        (
            "-from airflow.operators.dummy import DummyOperator",
            "+from headrace.operators import BashOperator, EmptyOperator, PythonOperator",
        ),
        (
            '-    schedule_interval="@daily",  # Airflow 2\'s argument',
            '+    schedule="@daily",  # Airflow 2\'s argument',
        ),
        (
            "-    start_date=days_ago(2),",
            "+    start_date=(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)),",
        ),
        ('-    start = DummyOperator(task_id="start")', '+    start = EmptyOperator(task_id="start")'),
        (
            '-    say = PythonOperator(task_id="announce", python_callable=announce, provide_context=True)',
            '+    say = PythonOperator(task_id="announce", python_callable=announce)',
        ),
        ("{{ execution_date }}", "{{ logical_date }}"),
        ('-    when = context["execution_date"]', '+    when = context["logical_date"]'),
        ("-from airflow.sdk import DAG, task", "+from headrace import DAG, task"),
        ("-from airflow.utils.trigger_rule import TriggerRule", "+from headrace import TriggerRule"),
        ("-from airflow.sdk import dag, task", "+from headrace import dag, task"),
    ]:
        assert removed in out and added in out, (removed, added)
    assert "+from datetime import UTC, datetime, timedelta" in out
    # comments are kept, on the lines they were on
    assert " # TaskFlow and the DAG from the Task SDK, as Airflow 3 writes them\n" in out
    assert "    # Airflow 2 code reads the removed context key; Airflow 3 calls it logical_date\n" in out
    changed, total = counts(folder)
    assert f"{changed} of {total} files changed; 0 constructs not translated" in proc.stderr
    assert {p: p.read_text() for p in folder.rglob("*.py")} == before


def test_untranslatable_constructs_are_reported_with_file_line_and_reason(tmp_path: Path, headrace: Headrace) -> None:
    proc = headrace(tmp_path, str(UNSUPPORTED))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        "s3_sensor.py:5: airflow.providers.amazon.aws.operators.s3: headrace does not support the amazon provider yet",
        "s3_sensor.py:6: airflow.sdk.Metadata: headrace does not support asset event metadata (Metadata: set "
        "the extra through outlet_events) yet",
        "s3_sensor.py:10: sla=: SLAs were removed in Airflow 3 (use deadline alerts: DAG(deadline=...))",
        "s3_sensor.py:11: template context key 'prev_ds' was removed in Airflow 3: "
        "use prev_data_interval_start_success or the previous run's data interval",
        "1 of 1 files changed; 4 constructs not translated",
    ]
    # what can be translated still is; what cannot stays on its airflow import
    assert "-from airflow.sdk import DAG, Metadata\n" in proc.stdout
    assert "+from headrace import DAG\n+from airflow.sdk import Metadata\n" in proc.stdout
    assert "+from headrace.sensors import ExternalTaskSensor\n" in proc.stdout


def test_write_rewrites_in_place_and_a_second_run_changes_nothing(
    tmp_path: Path, folder: Path, headrace: Headrace
) -> None:
    changed, total = counts(folder)
    proc = headrace(tmp_path, str(folder), "--write")
    assert proc.returncode == 0, proc.stderr
    assert f"migrated {changed} of {total} files; wrote {changed} files in place" in proc.stdout
    after = {p: p.read_text() for p in folder.rglob("*.py")}
    imports = [line for text in after.values() for line in text.splitlines() if line.startswith(("from ", "import "))]
    assert imports and not [line for line in imports if "airflow" in line]
    again = headrace(tmp_path, str(folder))
    assert again.returncode == 0 and again.stdout == ""
    assert f"0 of {total} files changed" in again.stderr
    assert {p: p.read_text() for p in folder.rglob("*.py")} == after


def test_a_migrated_file_still_reports_what_it_left(tmp_path: Path, headrace: Headrace) -> None:
    """Once migrated, a file no longer mentions airflow: the report still covers it (it names headrace and a DAG)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "prev.py").write_text(
        textwrap.dedent(
            """\
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.bash import BashOperator

            with DAG("prev", schedule=None):
                BashOperator(task_id="t", bash_command="echo {{ prev_ds }}")
            """
        )
    )
    finding = (
        "prev.py:5: template context key 'prev_ds' was removed in Airflow 3: "
        "use prev_data_interval_start_success or the previous run's data interval"
    )
    first = headrace(tmp_path, str(dags), "--write")
    assert first.returncode == 0, first.stderr
    assert "airflow" not in (dags / "prev.py").read_text()
    assert first.stderr.splitlines()[0] == finding
    for _ in range(2):  # each later run reports the same, and changes nothing
        again = headrace(tmp_path, str(dags))
        assert again.returncode == 0 and again.stdout == ""
        assert again.stderr.splitlines() == [finding, "0 of 1 files changed; 1 construct not translated"]


def test_out_writes_a_migrated_copy_and_leaves_the_files(tmp_path: Path, folder: Path, headrace: Headrace) -> None:
    before = {p.relative_to(folder): p.read_text() for p in folder.rglob("*") if p.is_file()}
    out = tmp_path / "migrated"
    proc = headrace(tmp_path, str(folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {p.relative_to(folder): p.read_text() for p in folder.rglob("*") if p.is_file()} == before
    copied = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    assert copied == set(before)  # the helpers and the README too
    assert "from headrace import dag, task" in (out / "team_a" / "report.py").read_text()
    assert (out / "common" / "helpers.py").read_text() == before[Path("common/helpers.py")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--write", "--out", "elsewhere"], "give --write (in place) or --out DIR (a copy), not both"),
        (["--out", "{folder}/inside"], "is inside"),
    ],
)
def test_bad_usage_is_refused_and_writes_nothing(
    tmp_path: Path, folder: Path, args: list[str], message: str, headrace: Headrace
) -> None:
    before = {p: p.read_text() for p in folder.rglob("*.py")}
    proc = headrace(tmp_path, str(folder), *[a.format(folder=folder) for a in args])
    assert proc.returncode == 1
    assert message in proc.stderr
    assert {p: p.read_text() for p in folder.rglob("*.py")} == before
    assert not (folder / "inside").exists()


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "headrace", "migrate", "airflow", str(tmp_path / "nowhere")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr


def test_rewrites_keep_formatting_and_handle_aliases_modules_and_templates() -> None:
    source = textwrap.dedent("""\
        import datetime
        from airflow.decorators import dag, task as af_task  # the decorators
        from airflow.operators.bash import (
            BashOperator,
        )
        from airflow.utils.dates import days_ago


        @dag(schedule_interval=None, start_date=days_ago(1), concurrency=4)
        def legacy():
            @af_task
            def show(**context):
                return context.get("next_execution_date")

            BashOperator(
                task_id="t",
                bash_command="echo {{ next_ds }} {{ dag_run.execution_date }} {{ macros.ds_add(next_ds_nodash, 1) }}",
            )


        legacy()
    """)
    migrated, findings = migrate_source(source, "legacy.py")
    assert findings == []
    assert "import datetime\nfrom headrace import dag, task as af_task  # the decorators\n" in migrated
    assert "from headrace.operators import BashOperator\n" in migrated
    assert "days_ago" not in migrated
    assert (
        "@dag(schedule=None, start_date=(datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, "
        "microsecond=0) - datetime.timedelta(days=1)), max_active_tasks=4)"
    ) in migrated
    assert 'return context.get("data_interval_end")' in migrated
    assert (
        "echo {{ data_interval_end | ds }} {{ dag_run.logical_date }} {{ macros.ds_add((data_interval_end | ds_nodash), 1) }}"
        in migrated
    )
    assert migrate_source(migrated, "legacy.py") == (migrated, [])  # idempotent


def test_what_stays_is_reported_at_its_line() -> None:
    source = textwrap.dedent("""\
        import airflow.operators.bash
        from airflow.models import *
        from airflow.utils.dates import days_ago

        start = days_ago(1, hour=6)
        DAG = dict(schedule_interval="@daily", schedule="@hourly")
        value = context["prev_ds"]
        x = 1; from airflow.sdk import DAG
    """)
    migrated, findings = migrate_source(source, "f.py")
    reasons = [(f.line, f.reason.split(":")[0]) for f in findings]
    assert reasons == [
        (1, "`import airflow.operators.bash`"),
        (2, "`from airflow.models import *`"),
        (5, "days_ago() with more than a number of days"),
        (7, "context key 'prev_ds' was removed in Airflow 3"),
        (8, "`from airflow.sdk import …` shares its line with other statements"),
    ]
    # a call still uses it: the import goes to headrace's days_ago (same meaning), reported above
    assert "from headrace.compat.dates import days_ago" in migrated


def test_files_without_airflow_are_not_touched_and_bad_python_is_reported(tmp_path: Path) -> None:
    (tmp_path / "native.py").write_text("from headrace import DAG\n")
    (tmp_path / "broken.py").write_text("from airflow.sdk import DAG\ndef (:\n")
    results = {r.name: r for r in migrate_path(tmp_path)}
    assert not results["native.py"].changed and results["native.py"].findings == []
    assert not results["broken.py"].changed
    assert [str(f).split(":")[:2] for f in results["broken.py"].findings] == [["broken.py", "2"]]


def test_callables_asking_for_removed_context_keys_are_reported() -> None:
    source = textwrap.dedent("""\
        from airflow.sdk import task
        def f(execution_date, next_ds=None, **kwargs):
            return kwargs["dag_run"].execution_date
        @task
        def g(ds, prev_ds=None):
            return ds
    """)
    migrated, findings = migrate_source(source, "p.py")
    assert migrated.startswith("from headrace import task\n")
    assert [(f.line, f.reason.split(":")[0]) for f in findings] == [
        (2, "parameter 'execution_date'"),
        (2, "parameter 'next_ds'"),
        (3, "`.execution_date` (of a DAG run or task instance) was removed in Airflow 3"),
        (5, "parameter 'prev_ds'"),
    ]
    assert "name it logical_date" in findings[0].reason


def test_names_headrace_lacks_stay_and_are_reported_by_feature() -> None:
    source = textwrap.dedent("""\
        from airflow.models import DagRun, Variable, Frobnicator
        from airflow.sdk import Context
    """)
    migrated, findings = migrate_source(source, "m.py")
    assert migrated == textwrap.dedent("""\
        from headrace import Variable
        from airflow.models import DagRun, Frobnicator
        from headrace.types import Context
    """)
    assert [str(f) for f in findings] == [
        "m.py:1: airflow.models.DagRun: headrace does not support reading the metadata database from DAG files "
        "(DagRun) yet",
        "m.py:1: airflow.models.Frobnicator: headrace does not implement this name",
    ]


def test_airflow_1_10_module_names_and_subdags() -> None:
    source = textwrap.dedent("""\
        from airflow.operators.bash_operator import BashOperator
        from airflow.operators.dummy_operator import DummyOperator
        from airflow.operators.subdag import SubDagOperator
        first = DummyOperator(task_id="a")
    """)
    migrated, findings = migrate_source(source, "old.py")
    assert migrated == textwrap.dedent("""\
        from headrace.operators import BashOperator, EmptyOperator
        from airflow.operators.subdag import SubDagOperator
        first = EmptyOperator(task_id="a")
    """)
    assert [str(f) for f in findings] == [
        "old.py:3: airflow.operators.subdag: headrace does not support SubDAGs (removed in Airflow 3: use task groups) yet"
    ]
