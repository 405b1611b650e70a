"""The task instance page in Chromium against ``headrace standalone`` (fixtures in ``tests/ui/conftest.py``).

``ui_fails`` is run once for the module: ``extract`` fails with a long error
and ``load`` ends ``upstream_failed``. The page must answer 404 for a run that
does not exist, fit its tries table in a 1280 px window with the error clamped
to two lines, never show a process start before the try started, and name the
upstream task that failed.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.ui.conftest import VIEWER, VIEWPORT, System

pytestmark = pytest.mark.browser

FINISH_MS = 90_000  # the run shares 2 cores with the rest of the suite


@pytest.fixture(scope="module")
def failed_run(system: System) -> str:
    """The run_id of a ``ui_fails`` run (triggered here; pages wait for it to finish)."""
    r = system.rest("POST", "/api/v1/dags/ui_fails/dagRuns", json={})
    assert r.status_code == 200, r.text
    return str(r.json()["dag_run_id"])


def _ti_url(run_id: str, task_id: str) -> str:
    return f"/dags/ui_fails/runs/{quote(run_id, safe='')}/tasks/{task_id}"


def _finished_ti(page: Page, run_id: str, task_id: str, state: str) -> None:
    page.goto(_ti_url(run_id, task_id))
    expect(page.locator("#ti")).to_have_attribute("data-state", state, timeout=FINISH_MS)


def test_a_run_that_does_not_exist_is_an_html_404(system: System, new_page: Callable[[tuple[str, str]], Page]) -> None:
    page = new_page(system.admin)
    response = page.goto("/dags/ui_fails/runs/no_such_run/tasks/extract")
    assert response is not None and response.status == 404
    expect(page.locator("#error-message")).to_contain_text("no run 'no_such_run'")
    assert page.locator("#ti-clear").count() == 0 and page.locator("#ti-mark-success").count() == 0
    response = page.goto("/dags/ui_fails/runs/no_such_run/gantt")  # the Gantt says the same with 404
    assert response is not None and response.status == 404


def test_tries_table_fits_1280_px_with_the_error_on_two_lines(
    system: System, new_page: Callable[[tuple[str, str]], Page], failed_run: str
) -> None:
    assert VIEWPORT["width"] == 1280
    page = new_page(VIEWER)
    _finished_ti(page, failed_run, "extract", "failed")
    row = page.locator('#tries tbody tr[data-try="1"]')
    expect(row).to_contain_text("failed")
    log_button = row.locator("button.show-log")
    box = log_button.bounding_box()
    assert box is not None and box["x"] + box["width"] <= VIEWPORT["width"], box
    assert page.evaluate("() => document.documentElement.scrollWidth") <= VIEWPORT["width"]
    table = page.locator("#tries").bounding_box()
    assert table is not None and table["x"] + table["width"] <= VIEWPORT["width"], table

    error = row.locator(".try-error")
    full = system.rest(
        "GET", f"/api/v1/dags/ui_fails/dagRuns/{quote(failed_run, safe='')}/taskInstances/extract/tries"
    ).json()["tries"][0]["error"]
    assert "detail-119" in full
    assert error.get_attribute("title") == full  # the full text on hover
    lines = page.evaluate(
        """(el) => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)""",
        error.element_handle(),
    )
    assert lines <= 2.05, lines
    error.click()  # expands to the whole error
    expect(error).to_have_attribute("aria-expanded", "true")
    expanded = page.evaluate(
        "(el) => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)",
        error.element_handle(),
    )
    assert expanded > 2.5, expanded


def test_process_start_is_never_shown_before_the_try_started(
    system: System, new_page: Callable[[tuple[str, str]], Page], failed_run: str
) -> None:
    page = new_page(VIEWER)
    _finished_ti(page, failed_run, "extract", "failed")
    # psutil's create_time adds a whole-second boot time (btime in /proc/stat): a stored start can read up to 1 s
    # early. Make this try's record read 0.9 s before the try started, as such a machine would.
    with sqlite3.connect(system.home / "headrace.db") as conn:
        (start,) = conn.execute(
            "SELECT strftime('%s', start_date) + (strftime('%f', start_date) % 1) FROM task_try "
            "WHERE dag_id = 'ui_fails' AND run_id = ? AND task_id = 'extract'",
            (failed_run,),
        ).fetchone()
        conn.execute(
            "UPDATE task_try SET process_start_time = ? WHERE dag_id = 'ui_fails' AND run_id = ? "
            "AND task_id = 'extract'",
            (float(start) - 0.9, failed_run),
        )
    page.reload()
    cell = page.locator('#tries tbody tr[data-try="1"] td.process-start')
    expect(cell).not_to_be_empty()
    shown, started = page.evaluate("""() => {
      const tr = document.querySelector('#tries tbody tr[data-try="1"]');
      return [Date.parse(tr.querySelector('td.process-start').dataset.time),
              Date.parse(tr.querySelector('td.start').dataset.time)];
    }""")
    assert shown >= started, (shown, started)  # ms since the epoch of what the two cells show
    expect(cell).to_have_attribute("title", re.compile(r"whole second"))  # and why


def test_upstream_failed_names_the_upstream_task(
    system: System, new_page: Callable[[tuple[str, str]], Page], failed_run: str
) -> None:
    page = new_page(VIEWER)
    _finished_ti(page, failed_run, "load", "upstream_failed")
    facts = page.locator("#ti-facts")
    expect(facts).to_contain_text("Upstream failed")
    expect(facts.locator('a[data-upstream="extract"]')).to_have_text("extract")
    expect(facts).to_contain_text("failed")
    body = page.locator("#tries tbody")
    expect(body).to_contain_text("No tries: upstream task extract failed")
    facts.locator('a[data-upstream="extract"]').click()
    expect(page).to_have_url(system.url + _ti_url(failed_run, "extract"))


def test_clear_confirms_with_the_list_of_what_it_would_clear(
    system: System, new_page: Callable[[tuple[str, str]], Page], failed_run: str
) -> None:
    """Clear first asks the API for a dry run: the confirmation lists the task instances (with the downstream
    box on, as in Airflow: extract and load), and dismissing it clears nothing."""
    page = new_page(system.admin)
    _finished_ti(page, failed_run, "extract", "failed")
    messages: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.dismiss()

    def wait_for_dialogs(n: int) -> None:
        for _ in range(200):  # up to 20 s; waiting in Playwright lets it deliver the dialog events
            if len(messages) >= n:
                return
            page.wait_for_timeout(100)
        raise AssertionError(f"no confirmation dialog #{n}: {messages}")

    page.on("dialog", dismiss)
    expect(page.locator("#ti-clear")).to_be_enabled()
    page.click("#ti-clear")
    wait_for_dialogs(1)
    assert messages[0].startswith("Clear 2 task instance(s)?"), messages
    assert messages[0].splitlines()[-2:] == ["extract", "load"]
    page.uncheck("#ti-clear-downstream")
    page.click("#ti-clear")
    wait_for_dialogs(2)
    assert messages[1].startswith("Clear 1 task instance(s)?") and messages[1].splitlines()[-1] == "extract"
    page.reload()
    expect(page.locator("#ti")).to_have_attribute("data-state", "failed")  # nothing was cleared


def test_run_clear_confirms_with_the_count(
    system: System, new_page: Callable[[tuple[str, str]], Page], failed_run: str
) -> None:
    """The grid's Clear asks for a dry run first and says how many task instances it would clear."""
    page = new_page(system.admin)
    _finished_ti(page, failed_run, "extract", "failed")  # the run has ended
    messages: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(f"/dags/ui_fails/grid?run_id={quote(failed_run, safe='')}")
    expect(page.locator("#clear-run")).to_be_enabled()
    page.click("#clear-run")
    for _ in range(200):  # up to 20 s; waiting in Playwright lets it deliver the dialog event
        if messages:
            break
        page.wait_for_timeout(100)
    assert messages and messages[0].startswith(f"Clear 2 task instance(s) of run {failed_run}?"), messages
    assert "ExternalTaskMarkers" not in messages[0]  # no other DAG is reached
