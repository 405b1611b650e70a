"""A mapped task's pages in Chromium against ``headrace standalone`` (fixtures in ``tests/ui/conftest.py``):
without a map index the page lists the task's instances; each index's page shows its own tries and log."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import VIEWER, System

pytestmark = pytest.mark.browser

FINISH_MS = 90_000  # the run shares 2 cores with the rest of the suite


def test_mapped_task_lists_its_indices_and_each_has_its_page(
    system: System, new_page: Callable[[tuple[str, str]], Page]
) -> None:
    r = system.rest("POST", "/api/v1/dags/ui_mapped/dagRuns", json={})
    assert r.status_code == 200, r.text
    run_id = str(r.json()["dag_run_id"])
    page = new_page(VIEWER)
    page.goto(f"/dags/ui_mapped/runs/{quote(run_id, safe='')}/tasks/show")
    rows = page.locator("#mapped-list tbody tr")
    expect(rows).to_have_count(3, timeout=FINISH_MS)
    expect(page.locator("#mapped")).to_be_visible()
    expect(rows.nth(2)).to_contain_text("success", timeout=FINISH_MS)
    expect(page.locator("#ti-facts")).to_contain_text("3 task instances")
    page.locator('#ti-tabs a[data-tab="xcom"]').click()  # XComs and rendered fields are per index: say so
    expect(page.locator("#xcoms tbody")).to_contain_text("A mapped task: each map index has its own")
    page.locator('#ti-tabs a[data-tab="rendered"]').click()
    expect(page.locator("#rendered-note")).to_contain_text("A mapped task: each map index has its own")
    page.locator('#ti-tabs a[data-tab="tries"]').click()

    rows.nth(1).locator("a").click()
    expect(page).to_have_url(f"{system.url}/dags/ui_mapped/runs/{quote(run_id, safe='')}/tasks/show?map_index=1")
    expect(page.locator("h1")).to_contain_text("show [1]")
    expect(page.locator("#ti")).to_have_attribute("data-state", "success", timeout=FINISH_MS)
    expect(page.locator('#tries tbody tr[data-try="1"]')).to_contain_text("success")
    expect(page.locator("#log")).to_contain_text("showing item 2", timeout=FINISH_MS)
    expect(page.locator("#log")).not_to_contain_text("showing item 1")
    page.locator('#ti-tabs a[data-tab="xcom"]').click()
    expect(page.locator('#xcoms tbody tr[data-key="return_value"]')).to_contain_text("2")


def test_graph_marks_a_mapped_task_with_its_count(system: System, new_page: Callable[[tuple[str, str]], Page]) -> None:
    r = system.rest("POST", "/api/v1/dags/ui_mapped/dagRuns", json={})
    assert r.status_code == 200, r.text
    run_id = str(r.json()["dag_run_id"])
    page = new_page(VIEWER)
    page.goto(f"/dags/ui_mapped/graph?run_id={quote(run_id)}")
    node = page.locator('#graph-svg g.node[data-task-id="show"]')
    expect(node).to_have_attribute("data-state", "success", timeout=FINISH_MS)
    expect(node).to_have_attribute("data-mapped", "3")
    expect(node.locator("text").nth(1)).to_have_text("@task [3]")
