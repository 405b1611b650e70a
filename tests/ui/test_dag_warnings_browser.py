"""Browser check of DAG warnings on a real ``headrace standalone`` (Chromium, Playwright).

``ui_warns`` (``tests/ui/conftest.py``) gives a task ``email_on_failure=True``
and has a ``default_args`` key no task accepts; standalone's own DAG processor
parsed it, so its ``dag_warning`` rows are real. The DAG list shows a badge
that opens the messages; the DAG's pages show them in the header.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import VIEWER, System

pytestmark = pytest.mark.browser

EMAIL = (
    "task 'notify': argument 'email_on_failure' is an Airflow operator argument headrace does not support yet; "
    "it is ignored"
)
PAGER = "default_args key 'pager_channel' is accepted by no task of DAG 'ui_warns'; it is ignored"


def test_warnings_on_the_dag_list_and_the_dag_pages(
    system: System, new_page: Callable[[tuple[str, str]], Page]
) -> None:
    assert [w["message"] for w in system.rest("GET", "/api/v1/dags/ui_warns").json()["warnings"]] == [EMAIL, PAGER]
    page = new_page(VIEWER)
    row = page.locator('tr[data-dag-id="ui_warns"]')
    badge = row.locator(".warn-badge")
    expect(badge).to_have_text(re.compile(r"2 warnings$"))
    messages = row.locator(".dag-warn-list li")
    expect(messages.first).to_be_hidden()  # closed until asked for
    expect(page.locator('tr[data-dag-id="ui_params"] .warn-badge')).to_have_count(0)
    badge.click()
    expect(messages).to_have_text([EMAIL, PAGER])
    expect(messages.first).to_be_visible()
    row.evaluate("(tr) => { tr.dataset.stale = '1'; }")
    page.locator("#only-active").uncheck()  # the list is drawn again: the open warnings stay open
    expect(page.locator('tr[data-dag-id="ui_warns"]:not([data-stale])')).to_have_count(1)
    expect(row.locator(".dag-warn-list li").first).to_be_visible()
    page.locator("#only-active").check()

    row.get_by_role("link", name="ui_warns").click()
    expect(page).to_have_url(re.compile(r"/dags/ui_warns/grid$"))
    box = page.locator("#dag-warnings")
    expect(box).to_be_visible()
    expect(box.locator("summary")).to_contain_text("2 DAG warnings")
    expect(box.locator("li")).to_have_text([EMAIL, PAGER])
    assert box.evaluate("(el) => getComputedStyle(el).backgroundColor") == "rgb(255, 248, 230)"  # amber, not red
    page.locator(".tabs").get_by_role("link", name="Graph", exact=True).click()
    expect(page.locator("#dag-warnings li")).to_have_text([EMAIL, PAGER])
    page.goto("/dags/ui_params/grid")
    expect(page.locator("#grid-wrap")).to_have_attribute("data-drawn", re.compile(r"\d+"))
    expect(page.locator("#dag-warnings")).to_have_count(0)
