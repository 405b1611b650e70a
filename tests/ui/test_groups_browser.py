"""Task groups and edge labels in the browser: collapse and expand a group in the graph and in the grid.

A DAG file with nested groups and labels is dropped into the running
``headrace standalone``'s DAG folder; one run is triggered and ends in success
(through the real scheduler), then Chromium checks the graph (a collapsed
group is one node coloured by its aggregated state; clicking it shows its
members in a box, clicking the box's title folds it again; edge labels are
drawn) and the grid (a group row with the aggregated state; clicking it
shows the member rows, clicking again hides them).
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import System
from tests.ui.test_browser import FINISH_MS, IMG, SUCCESS_RGB

pytestmark = pytest.mark.browser

GROUPS_DAG = textwrap.dedent('''
    """Nested task groups and edge labels, for the browser test."""
    from datetime import datetime

    from headrace import DAG, Label, TaskGroup
    from headrace.operators import EmptyOperator

    with DAG(dag_id="ui_groups", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("extract", tooltip="Pull the sources") as extract:
            a = EmptyOperator(task_id="orders")
            with TaskGroup("inner") as inner:
                EmptyOperator(task_id="customers")
            a >> inner
        end = EmptyOperator(task_id="end")
        start >> Label("begin") >> extract >> Label("loaded") >> end
''')

ROW_CELL_JS = """([runId, rowId]) => {
  const g = window.hrGrid, d = g.data;
  const i = d.runs.findIndex(r => r.run_id === runId), j = g.rows.findIndex(r => r.id === rowId);
  if (i < 0 || j < 0) return null;
  const r = g.cellRect(i, j), c = document.getElementById("grid-canvas"), dpr = window.devicePixelRatio || 1;
  const px = c.getContext("2d").getImageData(Math.round((r.x + r.w / 2) * dpr), Math.round((r.y + r.h / 2) * dpr), 1, 1).data;
  const box = c.getBoundingClientRect();
  return {rgb: [px[0], px[1], px[2]], labelX: box.left + 30, y: box.top + r.y + r.h / 2};
}"""


@pytest.fixture(scope="module")
def run_id(system: System) -> str:
    (system.home / "dags" / "ui_groups.py").write_text(GROUPS_DAG)
    deadline = time.monotonic() + FINISH_MS / 1000
    while system.rest("GET", "/api/v1/dags/ui_groups").status_code != 200:
        assert time.monotonic() < deadline, "ui_groups was not parsed"
        time.sleep(0.2)  # waiting for the DAG processor's next scan: no event to wait on
    system.rest("PATCH", "/api/v1/dags/ui_groups", json={"is_paused": False})
    resp = system.rest("POST", "/api/v1/dags/ui_groups/dagRuns", json={})
    assert resp.status_code == 200, resp.text
    rid = str(resp.json()["dag_run_id"])
    while (state := system.rest("GET", f"/api/v1/dags/ui_groups/dagRuns/{rid}").json()["state"]) != "success":
        assert state != "failed" and time.monotonic() < deadline, f"run {rid} is {state}"
        time.sleep(0.2)  # polling the run's state through the API
    return rid


def test_graph_collapses_and_expands_a_group_and_shows_labels(
    system: System, run_id: str, new_page: Callable[[tuple[str, str]], Page]
) -> None:
    page = new_page(system.admin)
    page.goto(f"/dags/ui_groups/graph?run_id={quote(run_id)}")
    group = page.locator('#graph-svg g.group-node[data-group-id="extract"]')
    expect(group).to_have_attribute("data-state", "success")
    expect(page.locator("#graph-svg g.node[data-task-id]")).to_have_count(2)  # start, end
    expect(page.locator('#graph-svg g.node[data-task-id="extract.orders"]')).to_have_count(0)
    labels = page.locator("#graph-svg g.edge-label")
    expect(labels).to_have_count(2)
    assert sorted(labels.all_text_contents()) == ["begin", "loaded"]
    expect(page.locator('#graph-svg g.edge-label[data-from="start"][data-to="extract"]')).to_have_text("begin")

    group.click()
    expect(page.locator('#graph-svg g.group-cluster[data-group-id="extract"]')).to_have_count(1)
    orders = page.locator('#graph-svg g.node[data-task-id="extract.orders"]')
    expect(orders).to_have_attribute("data-state", "success")
    expect(orders.locator("text").first).to_have_text("orders")  # the group's prefix is the box's title
    inner = page.locator('#graph-svg g.group-node[data-group-id="extract.inner"]')
    expect(inner).to_have_attribute("data-state", "success")
    expect(page.locator('#graph-svg g.edge-label[data-from="start"][data-to="extract.orders"]')).to_have_text("begin")
    expect(page.locator('#graph-svg g.edge-label[data-from="extract.inner"][data-to="end"]')).to_have_text("loaded")

    inner.click()
    expect(page.locator('#graph-svg g.node[data-task-id="extract.inner.customers"]')).to_have_count(1)
    expect(page.locator('#graph-svg g.group-cluster[data-group-id="extract.inner"]')).to_have_count(1)
    page.screenshot(path=str(IMG / "graph_groups.png"))

    page.locator('#graph-svg g.group-cluster[data-group-id="extract"] text.group-title').click()
    expect(page.locator('#graph-svg g.group-cluster[data-group-id="extract"]')).to_have_count(0)
    expect(page.locator('#graph-svg g.group-node[data-group-id="extract"]')).to_have_count(1)
    expect(page.locator('#graph-svg g.node[data-task-id="extract.orders"]')).to_have_count(0)


def test_grid_group_row_expands_and_collapses(
    system: System, run_id: str, new_page: Callable[[tuple[str, str]], Page]
) -> None:
    page = new_page(system.admin)
    page.goto(f"/dags/ui_groups/grid?run_id={quote(run_id)}")
    frame = page.locator("#grid-wrap")
    expect(frame).to_have_attribute("data-rows", "start extract end")
    cell = page.evaluate(ROW_CELL_JS, [run_id, "extract"])
    assert cell is not None and cell["rgb"] == SUCCESS_RGB  # the group's aggregated state

    page.mouse.click(cell["labelX"], cell["y"])  # the group's name in the task column
    expect(frame).to_have_attribute("data-rows", "start extract extract.orders extract.inner end")
    orders = page.evaluate(ROW_CELL_JS, [run_id, "extract.orders"])
    assert orders is not None and orders["rgb"] == SUCCESS_RGB
    inner = page.evaluate(ROW_CELL_JS, [run_id, "extract.inner"])
    page.mouse.click(inner["labelX"] + 14, inner["y"])
    expect(frame).to_have_attribute(
        "data-rows", "start extract extract.orders extract.inner extract.inner.customers end"
    )
    page.mouse.move(0, 0)
    page.screenshot(path=str(IMG / "grid_groups.png"))

    page.mouse.click(cell["labelX"], cell["y"])
    expect(frame).to_have_attribute("data-rows", "start extract end")
