"""Fixtures for the browser tests: a real ``headrace standalone`` and Debian's Chromium driven by Playwright.

``system`` starts ``headrace standalone --port 0 --no-trigger`` in a fresh
HEADRACE_HOME (SQLite) with three extra DAG files (``ui_params``, which has
params, ``ui_fails``, whose first task fails with a long error so the
second is ``upstream_failed``, and ``ui_warns``, whose author wrote Airflow
arguments headrace ignores, so it has DAG warnings, and ``ui_schema_params``, whose
params have JSON schemas), reads the printed URL and admin password, waits for ``/health`` to
answer 200 (database and scheduler up) and creates a viewer with the CLI.
``browser`` is a headless Chromium (``/usr/bin/chromium``, never a downloaded
one); ``new_page(user)`` opens a page in a fresh context already logged in
through the login form.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWER = ("vic", "viewer-password-1")
VIEWPORT = {"width": 1280, "height": 800}
STARTUP_SECONDS = 90.0

PARAMS_DAG = textwrap.dedent('''
    """A DAG with params, for the trigger form test."""
    from datetime import datetime

    from headrace import DAG
    from headrace.operators import BashOperator

    with DAG(dag_id="ui_params", schedule=None, start_date=datetime(2026, 1, 1), tags=["ui-test"],
             params={"greeting": "hello", "times": 2, "loud": False, "targets": ["eu", "us"]},
             description="Echoes its params.") as dag:
        BashOperator(task_id="say",
                     bash_command='echo "greeting={{ params.greeting }} times={{ params.times }} loud={{ params.loud }}"')
''')


SCHEMA_PARAMS_DAG = textwrap.dedent('''
    """A DAG whose params have JSON schemas, for the schema-built trigger form test."""
    from headrace import DAG, Param
    from headrace.operators import EmptyOperator

    with DAG(dag_id="ui_schema_params", schedule=None, tags=["ui-test"], params={
        "count": Param(3, type="integer", minimum=1, maximum=10, title="How many", description="rows per batch"),
        "env": Param("dev", type="string", enum=["dev", "prod"], values_display={"dev": "Development", "prod": "Live"}),
        "table": Param(type="string", description="the table to load"),
        "dry_run": Param(False, type="boolean"),
        "regions": Param(["eu"], type="array", items={"type": "string"}),
        "note": Param(None, type=["null", "string"]),
    }) as dag:
        EmptyOperator(task_id="noop")
''')


FAILS_DAG = textwrap.dedent('''
    """A DAG whose first task fails with a long error: its downstream task ends upstream_failed."""
    from datetime import datetime

    from headrace import DAG
    from headrace.operators import PythonOperator


    def extract():
        raise RuntimeError("the warehouse refused the connection: " + " ".join(f"detail-{i}" for i in range(120)))


    def load():
        print("never runs")


    with DAG(dag_id="ui_fails", schedule=None, start_date=datetime(2026, 1, 1), tags=["ui-test"]) as dag:
        PythonOperator(task_id="extract", python_callable=extract) >> PythonOperator(task_id="load", python_callable=load)
''')


WARNS_DAG = textwrap.dedent('''
    """A DAG written for Airflow: arguments headrace ignores, each a DAG warning."""
    from datetime import datetime

    from headrace import DAG
    from headrace.operators import BashOperator

    with DAG(dag_id="ui_warns", schedule=None, start_date=datetime(2026, 1, 1), tags=["ui-test"],
             default_args={"owner": "ops", "pager_channel": "#ops"}) as dag:
        BashOperator(task_id="notify", bash_command="echo hi", email_on_failure=True)
''')


MAPPED_DAG = textwrap.dedent('''
    """A mapped task: three task instances, one per item."""
    from datetime import datetime

    from headrace import DAG, task


    @task
    def show(item: int) -> int:
        print(f"showing item {item}")
        return item


    with DAG(dag_id="ui_mapped", schedule=None, start_date=datetime(2026, 1, 1), tags=["ui-test"]) as dag:
        show.expand(item=[1, 2, 3])
''')


@dataclass
class System:
    """A running ``headrace standalone``."""

    url: str
    admin: tuple[str, str]
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def rest(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """Call the REST API as the admin (HTTP Basic)."""
        return httpx.request(method, self.url + path, auth=self.admin, timeout=30, **kwargs)  # type: ignore[arg-type]


def _reader(proc: subprocess.Popen[str], lines: list[str], seen: threading.Event) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        seen.set()


def _wait_for(predicate: Callable[[], object], what: str, lines: list[str], deadline: float) -> object:
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)  # polling a subprocess' output / a socket: there is no event to wait on
    raise AssertionError(f"standalone: {what} not seen within {STARTUP_SECONDS} s; output:\n" + "\n".join(lines))


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """``headrace standalone`` on a free port with SQLite in a fresh home; stopped (SIGTERM to its group) at the end."""
    home = tmp_path_factory.mktemp("ui-home")
    (home / "dags").mkdir()
    (home / "dags" / "ui_params.py").write_text(PARAMS_DAG)
    (home / "dags" / "ui_fails.py").write_text(FAILS_DAG)
    (home / "dags" / "ui_warns.py").write_text(WARNS_DAG)
    (home / "dags" / "ui_schema_params.py").write_text(SCHEMA_PARAMS_DAG)
    (home / "dags" / "ui_mapped.py").write_text(MAPPED_DAG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update({"HEADRACE_HOME": str(home), "COLUMNS": "400", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env["HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # the tests' own DAGs run when triggered
    headrace = [sys.executable, "-m", "headrace"]
    proc = subprocess.Popen(
        [*headrace, "standalone", "--port", "0", "--no-trigger"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    seen = threading.Event()
    threading.Thread(target=_reader, args=(proc, lines, seen), daemon=True).start()
    deadline = time.monotonic() + STARTUP_SECONDS
    try:

        def printed() -> tuple[str, str, str] | None:
            text = "\n".join(lines)
            url = re.search(r"web UI\s+(http://\S+)", text)
            login = re.search(r"login\s+user (\S+) password (\S+)", text)
            if proc.poll() is not None:
                raise AssertionError("standalone exited early:\n" + text)
            return (url.group(1), login.group(1), login.group(2)) if url and login else None

        url, user, password = _wait_for(printed, "the UI URL and admin login", lines, deadline)  # type: ignore[misc]

        def healthy() -> bool:
            try:
                return httpx.get(url + "/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, "/health 200", lines, deadline)
        subprocess.run(
            [*headrace, "users", "create", VIEWER[0], "--role", "viewer", "--password", VIEWER[1]],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        sut = System(url=url, admin=(user, password), home=home, env=env, proc=proc, output=lines)
        for dag_id in ("ui_params", "ui_fails", "ui_warns", "ui_schema_params", "ui_mapped"):
            _wait_for(
                lambda: sut.rest("GET", f"/api/v1/dags/{dag_id}").status_code == 200,  # noqa: B023
                f"DAG {dag_id} parsed",
                lines,
                deadline,
            )
        yield sut
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright's sync API."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(system: System, browser: Browser) -> Iterator[Callable[[tuple[str, str]], Page]]:
    """Factory: a page (fresh context, 1280×800) logged in as ``(username, password)`` through the login form."""
    contexts: list[BrowserContext] = []

    def make(credentials: tuple[str, str]) -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=system.url)
        contexts.append(context)
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto("/")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.fill("input[name=username]", credentials[0])
        page.fill("input[name=password]", credentials[1])
        page.click("button[type=submit]")
        page.wait_for_url(system.url + "/")
        return page

    yield make
    for context in contexts:
        context.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: end-to-end test driving Debian's Chromium against headrace standalone")
