"""Browser tests: the pages driven in Debian's headless Chromium by Playwright (its Python
driver only: no browser is downloaded, /usr/bin/chromium is used). Without Chromium they are
skipped, and the run says so in a banner at the end; with DISPATCHER_REQUIRE_BROWSER=1 (CI)
a missing Chromium fails them instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter
from playwright.async_api import BrowserContext, Page, async_playwright

from tests.workers.conftest import worker  # noqa: F401  (the ARQ worker fixture)

CHROMIUM = os.environ.get("DISPATCHER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("DISPATCHER_REQUIRE_BROWSER") == "1"
HERE = Path(__file__).parent
MISSING = f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
# A quiet browser on a closed network: without the background-networking switches Chromium's
# own connections (updates, sync, QUIC probes) are refused and slow everything down.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_skipped: list[str] = []


def have_chromium() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if have_chromium() or REQUIRED:
        return
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.skip(reason=f"BROWSER TESTS SKIPPED: {MISSING}"))
            _skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_sep("!", f"{len(_skipped)} BROWSER TESTS SKIPPED", red=True)
        terminalreporter.write_line(f"  {MISSING}; .ci/run installs it.", red=True, bold=True)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile per test, closed at the end."""
    if not have_chromium():
        pytest.fail(MISSING)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            yield context
        finally:
            await context.close()


class Watched:
    """A page whose script errors and console errors are kept, so a test can demand none."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # "Failed to load resource" is the browser noting a 4xx answer the page expects
        # (401 before signing in, 409 for an offer gone): not a script error.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(f"console: {message.text}")


async def front(watched: Watched) -> Page:
    """The page, brought to the front: Chromium runs a page behind another without animation
    frames, which Playwright's clicks wait for (about 2 s each)."""
    await watched.page.bring_to_front()
    return watched.page


async def open_page(browser: BrowserContext, url: str) -> Watched:
    page = await browser.new_page()
    page.set_default_timeout(5_000)
    watched = Watched(page)
    await page.goto(url)
    return watched
