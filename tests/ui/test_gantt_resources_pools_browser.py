"""Browser checks of the Gantt, resources and pools pages on a real ``headrace standalone`` (Chromium, Playwright).

Fixtures (``system``, ``new_page``) come from ``tests/ui/conftest.py``. The
example DAG ``example_memory_limit`` is bundled with standalone: ``hog`` goes
over its 256 MiB ``memory_limit`` and is killed, ``modest`` stays under it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tests.ui.conftest import VIEWER, System

RUN_SECONDS = 120.0


def _run_to_end(system: System, dag_id: str) -> dict[str, Any]:
    """Trigger ``dag_id`` through the REST API and poll (deadline ``RUN_SECONDS``) until its run has finished."""
    r = system.rest("POST", f"/api/v1/dags/{dag_id}/dagRuns", json={})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        run = system.rest("GET", f"/api/v1/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}").json()
        if run["state"] in ("success", "failed"):
            return run  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']} after {RUN_SECONDS} s"
        time.sleep(0.2)  # polling another process's progress: no event to wait on


def test_resources_and_gantt_show_the_memory_hog(system: System, new_page: Callable[[tuple[str, str]], Any]) -> None:
    run = _run_to_end(system, "example_memory_limit")
    page = new_page(VIEWER)

    page.goto("/dags/example_memory_limit/resources")
    page.wait_for_selector("#res-charts canvas[data-task-id=hog]")
    # the table puts the hog first, over its limit
    first = page.locator("#resources-table tbody tr").first
    assert first.get_attribute("data-task-id") == "hog"
    cells = first.locator("td").all_inner_texts()
    assert cells[3] == "256.0"  # limit (MiB)
    assert float(cells[1]) > 256.0  # max peak (MiB) went over it
    assert re.fullmatch(r"\d+\.\d %", cells[4]) and float(cells[4].split()[0]) > 100
    assert page.locator("#res-overview").count() == 1
    assert page.locator("#res-charts canvas").count() >= 3  # overview + hog + modest (+ summary)
    assert not page.locator("#flash").is_visible()
    overview = page.evaluate("""() => {
      const chart = Chart.getChart(document.getElementById("res-overview"));
      return {heights: chart.getDatasetMeta(0).data.map(bar => bar.height),
              legend: chart.legend.legendItems.map(item => [item.text, item.fillStyle])};
    }""")
    assert min(overview["heights"]) >= 12, overview  # bars a reader can see, not ~4 px slivers
    legend = dict(overview["legend"])
    assert legend["over memory_limit"] == "#d9302c" and legend["under 80 % of memory_limit"] == "#2563eb", legend
    assert "80–100 % of memory_limit" in legend and "memory_limit" in legend

    page.goto(f"/dags/example_memory_limit/runs/{quote(run['dag_run_id'], safe='')}/gantt")
    bar = page.locator('#gantt svg g.gantt-try[data-task-id="hog"]').first
    bar.wait_for()
    assert "ended-by-supervisor" in (bar.get_attribute("class") or "")
    bar.hover()
    tip = page.locator(".gantt-tip")
    tip.wait_for(state="visible")
    assert "memory_limit_exceeded" in tip.inner_text()
    assert page.locator('#gantt svg g.gantt-try[data-task-id="modest"][data-state="success"]').count() == 1


def test_resources_of_a_task_that_never_ran_say_so(system: System, new_page: Callable[[tuple[str, str]], Any]) -> None:
    _run_to_end(system, "ui_fails")  # extract fails, load never runs
    page = new_page(VIEWER)
    page.goto("/dags/ui_fails/resources")
    card = page.locator("#chart-load")
    card.wait_for()
    assert "No tries yet" in card.inner_text()
    assert card.locator("canvas").count() == 0  # no empty chart
    assert page.locator('#chart-extract canvas[data-task-id="extract"]').count() == 1


def test_pools_page_create_edit_delete_and_viewer_refused(
    system: System, new_page: Callable[[tuple[str, str]], Any]
) -> None:
    admin = new_page(system.admin)
    admin.goto("/pools")
    admin.wait_for_selector('#pools tr[data-pool="default_pool"]')
    admin.fill("#pool-create input[name=name]", "ui_browser_pool")
    admin.fill("#pool-create input[name=slots]", "3")
    admin.fill("#pool-create input[name=description]", "made by the browser test")
    admin.click("#pool-create button[type=submit]")
    row = admin.locator('#pools tr[data-pool="ui_browser_pool"]')
    row.wait_for()
    assert row.locator("td.slots").inner_text() == "3"

    row.locator("button.edit").click()
    row.locator("input.slots-input").fill("7")
    row.locator("button.save").click()
    admin.wait_for_function(
        "() => document.querySelector('#pools tr[data-pool=\"ui_browser_pool\"] td.slots')?.textContent.trim() === '7'"
    )
    assert system.rest("GET", "/api/v1/pools/ui_browser_pool").json()["slots"] == 7

    viewer = new_page(VIEWER)
    viewer.goto("/pools")
    vrow = viewer.locator('#pools tr[data-pool="ui_browser_pool"]')
    vrow.wait_for()
    assert vrow.locator("button.edit").is_disabled() and vrow.locator("button.delete").is_disabled()
    assert viewer.locator("#pool-create button[type=submit]").is_disabled()

    admin.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.delete").click()
    row.wait_for(state="detached")
    assert system.rest("GET", "/api/v1/pools/ui_browser_pool").status_code == 404
    assert admin.locator('#pools tr[data-pool="default_pool"] button.delete').is_disabled()
