"""The operator's path in a real browser: Debian's headless Chromium, driven by Playwright,
opens the project's `dagster-webserver`, clicks **Materialize all** on the asset graph, waits
for the run, then reads a table's Checks tab and the migration report as an operator would.

The browser (the ``page`` fixture) and the steps shared with other UI tests: ``browser``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from consoleai_etl.demo.sample import generate
from consoleai_etl_tests.browser import open_asset, screenshot
from consoleai_etl_tests.helpers import dagster_env
from consoleai_etl_tests.webserver import (
    dagster_webserver,
    failure_messages,
    graphql,
    wait_for_run,
)

# user_roles has a primary key and foreign keys, so all five checks are defined on it.
TABLE = "user_roles"
TABLE_CHECKS = ("row_count", "checksum", "not_null", "primary_key", "foreign_keys")


@pytest.fixture
def ui(tmp_path: Path, pg_dsn: str) -> Iterator[int]:
    """The webserver over a small sample database (2k rows) and a fresh PostgreSQL database."""
    source = tmp_path / "consoleai_legacy.sqlite"
    generate(source, scale=0.02)
    with dagster_webserver(dagster_env(tmp_path, source, pg_dsn)) as port:
        yield port


def launch_from_asset_graph(page: Page, base: str) -> str:
    """Assets → View lineage → Materialize all, then the toast's View link; the run's id."""
    page.goto(f"{base}/assets")
    page.get_by_role("link", name="View lineage").click()
    materialize_all = page.get_by_role("button", name="Materialize all")
    expect(materialize_all).to_be_enabled()
    screenshot(page, "1-asset-graph")
    materialize_all.click()
    expect(page.get_by_text("Launched run")).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[-1]


def test_operator_materializes_all_and_reads_checks_and_report(page: Page, ui: int) -> None:
    base = f"http://127.0.0.1:{ui}"
    # The flag the UI reads before it covers the page with its "Join the Dagster community"
    # dialog, which would intercept every click below.
    nux = graphql(ui, "{ shouldShowNux }")["shouldShowNux"]
    assert nux is False, "dagster.yaml should turn the first-open dialog off: nux: enabled: false"

    run_id = launch_from_asset_graph(page, base)
    assert wait_for_run(ui, run_id, timeout=45) == "SUCCESS", failure_messages(ui, run_id)
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    screenshot(page, "2-run")

    open_asset(page, base, TABLE)
    page.get_by_role("tab", name="Checks").click()
    for name in TABLE_CHECKS:
        # The innermost element holding the check's name also holds its latest status.
        entry = page.locator("span", has=page.get_by_title(name, exact=True)).last
        expect(entry).to_contain_text("Succeeded")
    screenshot(page, "3-table-checks")

    open_asset(page, base, "migration_report")
    status_row = page.get_by_role("row").filter(has=page.get_by_text("status", exact=True))
    expect(status_row).to_contain_text("success")
    screenshot(page, "4-migration-report")
    page.get_by_text("[Show Markdown]").click()
    expect(page.get_by_role("dialog")).to_contain_text("Status: SUCCESS")
    # The compact chart: block-character bars in a code block (the UI renders no Mermaid).
    expect(page.get_by_role("dialog").locator("pre").first).to_contain_text("█")
    screenshot(page, "5-report-markdown")
