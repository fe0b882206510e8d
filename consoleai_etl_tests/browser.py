"""The browser the UI tests drive: Debian's headless Chromium through Playwright, and the
steps every such test takes (find an asset as an operator does, keep a screenshot).

Screenshots land in ``consoleai_etl_tests/screenshots/`` (git-ignored). A test is skipped
only where no ``chromium`` can be found (.ci/run installs it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# Headless without a sandbox (CI runs as root) and without the background traffic (updates,
# sync, metrics) that Chromium would otherwise keep sending to a network it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """Debian's Chromium; Playwright must never download a browser of its own."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "browser test skipped: no `chromium` on PATH "
            "(install Debian's package: apt-get install -y chromium; .ci/run does)"
        )
    return path


def browser_page() -> Iterator[Page]:
    """A page of a fresh headless Chromium, closed at the end (the ``page`` fixture)."""
    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(20_000)
            expect.set_options(timeout=20_000)
            yield page
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")


def open_asset(page: Page, base: str, name: str) -> None:
    """From the asset catalog, the way an operator finds an asset: by its name, the last
    part of its key (``consoleai / public / users``; an environment's is the name alone).
    The link's text is the key twice, once hidden for measuring, so match the key's title."""
    page.goto(f"{base}/assets")
    # "\/", not "/": Playwright passes the pattern on as a JavaScript /regex/ literal.
    title = page.get_by_title(re.compile(f"^(.+ \\/ )?{re.escape(name)}$"))
    page.get_by_role("link").filter(has=title).click()
    expect(page).to_have_url(re.compile(f"/assets/(.+/)?{re.escape(name)}$"))
