"""The code view, the task instance's XCom and rendered-templates tabs, and the variables and connections
pages in Chromium against ``headrace standalone`` (fixtures in ``tests/ui/conftest.py``), as an operator and
as a viewer. Every page must work under the CSP (no inline script): a console error fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import VIEWER, System

pytestmark = pytest.mark.browser

OPERATOR = ("opal", "operator-password-1")
FINISH_MS = 90_000  # the run shares 2 cores with the rest of the suite
NewPage = Callable[[tuple[str, str]], Page]


def _cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headrace", *args],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.fixture(scope="module")
def operator(system: System) -> tuple[str, str]:
    _cli(system, "users", "create", OPERATOR[0], "--role", "operator", "--password", OPERATOR[1])
    return OPERATOR


@pytest.fixture(scope="module")
def params_run(system: System) -> str:
    """The run_id of a ``ui_params`` run with conf greeting=hey (pages wait for it to finish)."""
    r = system.rest("POST", "/api/v1/dags/ui_params/dagRuns", json={"conf": {"greeting": "hey"}})
    assert r.status_code == 200, r.text
    return str(r.json()["dag_run_id"])


@pytest.fixture
def page_of(new_page: NewPage) -> Iterator[Callable[[tuple[str, str]], Page]]:
    """Like ``new_page``, and fails the test if the page logs a console error (a CSP refusal, a JS error)."""
    errors: list[str] = []

    def make(user: tuple[str, str]) -> Page:
        page = new_page(user)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page

    yield make
    assert errors == []


@pytest.mark.parametrize("who", ["operator", "viewer"])
def test_code_view(system: System, page_of: NewPage, operator: tuple[str, str], who: str) -> None:
    page = page_of(operator if who == "operator" else VIEWER)
    page.goto("/dags/ui_params/grid")
    page.click("nav.tabs >> text=Code")
    expect(page).to_have_url(f"{system.url}/dags/ui_params/code")
    code = page.locator("#code .source")
    expect(code).to_contain_text("from headrace.operators import BashOperator")
    assert page.locator("#code span.kn").count() >= 3  # keywords highlighted (from / import)
    # the Pygments colours apply (static/source.css): a keyword is not drawn in the text colour
    keyword = page.locator("#code span.k, #code span.kn").first
    for text_colour in ("rgb(29, 35, 48)", "rgb(0, 0, 0)"):  # waits for the stylesheet (read at once, it could lag)
        expect(keyword).not_to_have_css("color", text_colour)
    page.click("#code a[href='#L-3']")
    expect(page).to_have_url(f"{system.url}/dags/ui_params/code#L-3")


@pytest.mark.parametrize("who", ["operator", "viewer"])
def test_xcom_and_rendered_tabs(
    system: System, page_of: NewPage, operator: tuple[str, str], params_run: str, who: str
) -> None:
    page = page_of(operator if who == "operator" else VIEWER)
    page.goto(f"/dags/ui_params/runs/{quote(params_run, safe='')}/tasks/say")
    expect(page.locator("#ti")).to_have_attribute("data-state", "success", timeout=FINISH_MS)
    page.click("#ti-tabs >> text=XCom")
    expect(page).to_have_url(f"{system.url}/dags/ui_params/runs/{quote(params_run, safe='')}/tasks/say#xcom")
    row = page.locator('#xcoms tr[data-key="return_value"]')
    expect(row).to_contain_text("greeting=hey times=2 loud=False")
    expect(page.locator("#tries")).to_be_hidden()
    page.click("#ti-tabs >> text=Rendered templates")
    field = page.locator('pre.rendered-field[data-field="bash_command"]')
    expect(field).to_have_text('echo "greeting=hey times=2 loud=False"')
    expect(page.locator("#rendered-note")).to_contain_text("As try 1 rendered them")
    page.reload()  # the tab is kept in the URL
    expect(page.locator('pre.rendered-field[data-field="bash_command"]')).to_be_visible()
    page.click("#ti-tabs >> text=Tries & log")
    expect(page.locator("#tries")).to_be_visible()


def test_variables_page_operator_edits_viewer_reads(
    system: System, page_of: NewPage, operator: tuple[str, str]
) -> None:
    page = page_of(operator)
    page.on("dialog", lambda d: d.accept())
    page.goto("/variables")
    page.fill("#variable-form input[name=key]", "ui_api_token")
    page.fill("#variable-form textarea[name=value]", "tok-browser-secret-99")
    page.fill("#variable-form input[name=description]", "for the browser test")
    page.click("#variable-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("Variable ui_api_token created")
    row = page.locator('#variables tr[data-key="ui_api_token"]')
    expect(row.locator("code.value")).to_have_text("***")  # a sensitive key is masked in the list
    assert "tok-browser-secret-99" not in page.content()
    row.locator("button.edit").click()
    expect(page.locator("#variable-form textarea[name=value]")).to_have_value("tok-browser-secret-99")  # operator
    expect(page.locator("#variable-form input[name=key]")).to_have_attribute("readonly", "")
    page.fill("#variable-form textarea[name=value]", "tok-browser-secret-100")
    page.click("#variable-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("Variable ui_api_token saved")
    assert _cli(system, "variables", "get", "ui_api_token").stdout.strip() == "tok-browser-secret-100"

    viewer = page_of(VIEWER)
    viewer.goto("/variables")
    vrow = viewer.locator('#variables tr[data-key="ui_api_token"]')
    expect(vrow.locator("code.value")).to_have_text("***")
    expect(vrow.locator("button.edit")).to_be_disabled()
    expect(vrow.locator("button.delete")).to_be_disabled()
    expect(viewer.locator("#variable-form button[type=submit]")).to_be_disabled()
    assert "tok-browser-secret" not in viewer.content()

    row.locator("button.delete").click()
    expect(page.locator("#flash")).to_contain_text("Variable ui_api_token deleted")
    expect(row).to_have_count(0)
    assert system.rest("GET", "/api/v1/variables/ui_api_token").status_code == 404


def test_connections_page_operator_edits_viewer_reads(
    system: System, page_of: NewPage, operator: tuple[str, str]
) -> None:
    page = page_of(operator)
    page.on("dialog", lambda d: d.accept())
    page.goto("/connections")
    form = page.locator("#connection-form")
    form.locator("input[name=conn_id]").fill("ui_warehouse")
    form.locator("input[name=conn_type]").fill("postgres")
    form.locator("input[name=host]").fill("db.example")
    form.locator("input[name=port]").fill("5432")
    form.locator("input[name=login]").fill("etl")
    form.locator("input[name=password]").fill("pw-browser-secret-7")
    form.locator("textarea[name=extra]").fill('{"region": "eu", "api_key": "k-browser-secret-8"}')
    form.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("Connection ui_warehouse saved")
    row = page.locator('#connections tr[data-conn-id="ui_warehouse"]')
    expect(row.locator("td.password")).to_have_text("***")
    expect(row.locator("code.extra")).to_have_text('{"api_key":"***","region":"eu"}')
    assert "pw-browser-secret-7" not in page.content() and "k-browser-secret-8" not in page.content()

    # Edit the host only: the empty password field and the untouched masked extra are not sent back.
    row.locator("button.edit").click()
    expect(form.locator("input[name=password]")).to_have_value("")
    form.locator("input[name=host]").fill("db2.example")
    form.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("Connection ui_warehouse saved")
    expect(row).to_contain_text("db2.example")
    stored = json.loads(_cli(system, "connections", "get", "ui_warehouse", "--reveal").stdout)
    assert stored["host"] == "db2.example" and stored["password"] == "pw-browser-secret-7"
    assert stored["extra"] == {"region": "eu", "api_key": "k-browser-secret-8"}

    # Bad extra: a clear message, nothing changed.
    row.locator("button.edit").click()
    form.locator("textarea[name=extra]").fill("{not json")
    form.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("extra is not valid JSON")

    viewer = page_of(VIEWER)
    viewer.goto("/connections")
    vrow = viewer.locator('#connections tr[data-conn-id="ui_warehouse"]')
    expect(vrow.locator("td.password")).to_have_text("***")
    expect(vrow.locator("button.edit")).to_be_disabled()
    expect(vrow.locator("button.delete")).to_be_disabled()
    expect(viewer.locator("#connection-form button[type=submit]")).to_be_disabled()
    assert "browser-secret" not in viewer.content()

    page.locator("#connection-form button.cancel").click()
    row.locator("button.delete").click()
    expect(page.locator("#flash")).to_contain_text("Connection ui_warehouse deleted")
    expect(row).to_have_count(0)
