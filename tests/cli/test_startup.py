"""Start-up: each command imports what it needs and nothing more (no timing here: benchmarks/startup_latency.py)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace.cli.common import head_revision_from_files
from headrace.cli.main import COMMANDS, load_command
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.migrate import head_revision

SERVER = {"fastapi", "uvicorn", "starlette", "alembic", "headrace.api", "headrace.ui", "headrace.webapp"}
"""Never needed to list or trigger DAGs."""
DATABASE = {"sqlalchemy", "psycopg", "headrace.db"}
RUNTIME = {"headrace.executors", "headrace.scheduler.loop", "headrace.supervisor.supervise"}
PARSING = {"headrace.dagfiles.processor", "headrace.dagfiles.parsing", "headrace.dagfiles.loader", "psutil"}
"""Parsing DAG files and supervising processes: never needed to list or trigger DAGs."""
RENDERING = {"jinja2", "croniter", "pydantic"}
"""Loaded on first use: templates, cron schedules, and (Typer 0.29's) parameter coercion."""
AUTHORING = {"headrace.authoring", "headrace.operators"}

ONE_DAG = """
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("startup_demo", schedule=None):
    EmptyOperator(task_id="only")
"""


def modules_loaded(env: dict[str, str], tmp_path: Path, *args: str) -> set[str]:
    """The modules ``headrace args`` had imported when it exited (it must exit 0)."""
    out = tmp_path / "modules.txt"
    code = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: open({str(out)!r}, "w").write("\\n".join(sys.modules)))
        sys.argv = ["headrace", *{list(args)!r}]
        from headrace.cli.main import main
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return set(out.read_text().split())


def loaded(modules: set[str], packages: set[str]) -> set[str]:
    """The members of ``packages`` (or their submodules) among ``modules``."""
    return {p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)}


def test_help_imports_no_database_or_server(cli_env: dict[str, str], tmp_path: Path) -> None:
    modules = modules_loaded(cli_env, tmp_path, "--help")
    assert loaded(modules, SERVER | DATABASE | RUNTIME | {"headrace.scheduler", "headrace.cli.dags"}) == set()


def test_list_and_trigger_import_no_server_or_runtime(
    cli_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    (settings.dags_folder / "startup_demo.py").write_text(textwrap.dedent(ONE_DAG))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).dags == 1
    listing = modules_loaded(cli_env, tmp_path, "dags", "list")
    assert "sqlalchemy" in listing
    assert loaded(listing, SERVER | RUNTIME | PARSING | RENDERING | AUTHORING | {"headrace.scheduler"}) == set()
    triggering = modules_loaded(cli_env, tmp_path, "dags", "trigger", "startup_demo")
    assert "headrace.scheduler.runs" in triggering
    assert loaded(triggering, SERVER | RUNTIME | PARSING | RENDERING) == set()


def test_authoring_api_loads_on_first_use() -> None:
    """``import headrace`` alone loads no authoring code; ``from headrace import DAG`` does, and gets the class."""
    code = textwrap.dedent("""
        import sys
        import headrace
        before = {m for m in sys.modules if m.startswith("headrace.authoring")}
        from headrace import DAG, task
        from headrace.authoring.dag import DAG as Real
        assert DAG is Real and callable(task), (DAG, task)
        try:
            from headrace import NoSuchName  # noqa: F401
        except ImportError as exc:
            print("refused:", exc)
        print(sorted(before))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "refused: cannot import name 'NoSuchName' from 'headrace'" in proc.stdout
    assert proc.stdout.strip().endswith("[]"), proc.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_listing_is_each_commands_own(name: str) -> None:
    """``headrace --help`` shows COMMANDS' lines without importing the commands: they must not drift."""
    own = inspect.cleandoc(load_command(name).help or "").split("\n\n")[0].replace("\n", " ")
    assert COMMANDS[name][1] == own


def test_quick_schema_check_agrees_with_alembic() -> None:
    assert head_revision_from_files() == head_revision()


def test_inspecting_commands_import_no_server_or_runtime(
    cli_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    """``dags show``, ``dags next-execution``, ``tasks state`` and ``pools list`` read the DB, nothing more."""
    (settings.dags_folder / "startup_demo.py").write_text(textwrap.dedent(ONE_DAG))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).dags == 1
    assert modules_loaded(cli_env, tmp_path, "dags", "trigger", "startup_demo", "-r", "r1")
    for args in (
        ("dags", "show", "startup_demo"),
        ("dags", "next-execution", "startup_demo"),
        ("tasks", "state", "startup_demo", "only", "r1"),
        ("pools", "list"),
    ):
        modules = modules_loaded(cli_env, tmp_path, *args)
        assert loaded(modules, SERVER | RUNTIME | {"pydantic"}) == set(), args
