"""Assets in a real browser against ``headrace standalone`` (its bundled examples): the penguins pipeline's
report is an asset drawn on both DAGs' graphs, linked to its producer and consumer, and listed on the
assets page."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.ui.conftest import System

REPORT = "headrace-example://penguins/report"


def test_asset_nodes_links_and_assets_page(system: System, new_page: Callable[[tuple[str, str]], Page]) -> None:
    page = new_page(system.admin)
    page.goto("/dags/example_penguins_report/graph")
    expect(page.locator("#graph-svg g.node")).to_have_count(5)
    asset = page.locator(f'#graph-svg g.asset-node[data-asset-uri="{REPORT}"]')
    expect(asset).to_have_count(1)
    expect(page.locator('#graph-svg path.edge[data-from="write_report"]')).to_have_count(1)
    expect(page.locator("#dag-links")).to_contain_text("downstream (through assets): example_penguins_asset_consumer")

    page.goto("/dags/example_penguins_asset_consumer/graph")
    expect(page.locator(f'#graph-svg g.asset-node[data-asset-uri="{REPORT}"]')).to_have_count(1)
    expect(page.locator(f'#graph-svg path.edge[data-from="asset:{REPORT}"][data-to="digest"]')).to_have_count(1)
    expect(page.locator("#dag-links")).to_contain_text("upstream (through assets): example_penguins_report")
    page.locator("#graph-svg g.asset-node").click()
    expect(page).to_have_url(f"{system.url}/assets")

    row = page.locator("#assets tr", has_text=REPORT)
    expect(row).to_contain_text("example_penguins_report.write_report")
    expect(row).to_contain_text("example_penguins_asset_consumer")
