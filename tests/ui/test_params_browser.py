"""The trigger form built from the params' JSON schemas, in Debian's Chromium against a real ``headrace standalone``.

``ui_schema_params`` (``tests/ui/conftest.py``) has an integer with bounds, a
title and a description, an enum with ``values_display``, a string without
default (required), a boolean, an array and a nullable string. A value the
API refuses is shown beside its field and creates no run; a valid form
creates the run with the values typed as their schemas say.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import System

pytestmark = pytest.mark.browser

RUNS = "/api/v1/dags/ui_schema_params/dagRuns"


def run_count(system: System) -> int:
    total: int = system.rest("GET", RUNS).json()["total_entries"]
    return total


def test_the_form_follows_the_schemas(system: System, new_page: Callable[[tuple[str, str]], Page]) -> None:
    page = new_page(system.admin)
    page.goto("/dags/ui_schema_params/trigger")
    names = page.locator("[data-param]").evaluate_all("(els) => els.map((el) => el.dataset.param)")
    assert names == ["count", "env", "table", "dry_run", "regions", "note"]  # as declared, not sorted
    count = page.locator('[data-param="count"]')
    expect(count).to_have_attribute("type", "number")
    expect(count).to_have_attribute("min", "1")
    expect(count).to_have_attribute("max", "10")
    expect(count).to_have_value("3")
    field = page.locator("label.param-field", has=count)
    expect(field).to_contain_text("How many")  # the title labels it, the name is shown beside
    expect(field).to_contain_text("rows per batch")
    env = page.locator('select[data-param="env"]')
    expect(env.locator("option")).to_have_text(["Development", "Live"])
    expect(env).to_have_value('"dev"')
    table = page.locator('[data-param="table"]')
    expect(table).to_have_attribute("aria-required", "true")
    expect(page.locator("label.param-field", has=table).locator("abbr.required")).to_have_text("*")
    expect(page.locator('input[type="checkbox"][data-param="dry_run"]')).not_to_be_checked()
    expect(page.locator('textarea[data-param="regions"]')).to_have_value('[\n  "eu"\n]')
    expect(page.locator('[data-param="note"]')).to_have_attribute("data-nullable", "true")


def test_a_refused_value_shows_beside_its_field_and_creates_no_run(
    system: System, new_page: Callable[[tuple[str, str]], Page]
) -> None:
    before = run_count(system)
    page = new_page(system.admin)
    page.goto("/dags/ui_schema_params/trigger")
    page.fill('[data-param="table"]', "users")
    page.fill('[data-param="count"]', "11")
    page.click("#trigger-submit")
    beside = page.locator('[data-error-for="count"]')
    expect(beside).to_have_text("11 is greater than the maximum 10")
    expect(page.locator('[data-param="count"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#trigger-error")).to_contain_text("param 'count': 11 is greater than the maximum 10")
    expect(page).to_have_url(re.compile(r"/dags/ui_schema_params/trigger$"))
    assert run_count(system) == before

    page.fill('[data-param="count"]', "4")  # fixed; now the required param is left empty
    page.fill('[data-param="table"]', "")
    page.click("#trigger-submit")
    expect(page.locator('[data-error-for="table"]')).to_have_text("no value given and the param has no default")
    expect(beside).to_be_hidden()
    assert run_count(system) == before

    page.fill('[data-param="table"]', "users")  # a bad value in the conf box is shown at the conf box
    page.fill("#conf", '{"env": "qa"}')
    page.click("#trigger-submit")
    expect(page.locator('[data-error-for="conf"]')).to_have_text('param env: "qa" is not one of ["dev", "prod"]')
    assert run_count(system) == before


def test_a_valid_form_creates_the_run_with_typed_values(
    system: System, new_page: Callable[[tuple[str, str]], Page]
) -> None:
    page = new_page(system.admin)
    page.goto("/dags/ui_schema_params/trigger")
    page.fill('[data-param="table"]', "users")
    page.fill('[data-param="count"]', "7")
    page.select_option('select[data-param="env"]', label="Live")
    page.check('[data-param="dry_run"]')
    page.fill('[data-param="regions"]', '["eu", "us"]')
    page.click("#trigger-submit")
    expect(page).to_have_url(re.compile(r"/dags/ui_schema_params/grid\?run_id="))
    run_id = page.url.split("run_id=", 1)[1]
    conf = system.rest("GET", f"{RUNS}/{run_id}").json()["conf"]
    assert conf == {"count": 7, "env": "prod", "table": "users", "dry_run": True, "regions": ["eu", "us"], "note": None}
