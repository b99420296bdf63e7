"""The console's browser tests: a real `python -m docservice` on SQLite, Debian's Chromium
driven by Playwright, and the HTTP API for the changes "someone else" makes meanwhile.

Collected only by `make e2e` (DOCSERVICE_E2E=1, see tests/conftest.py). Every wait is bounded
(TIMEOUT_MS, START_TIMEOUT); the servers listen on loopback only and the browser goes nowhere
else. A page's console errors and uncaught exceptions fail the test that caused them, unless the
test said it expects one (the browser logs a 412 response as an error).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import (
    APIRequestContext,
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    async_playwright,
)
from playwright.async_api import expect as expect_page

from tests.e2e.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NARROW,
    TIMEOUT_MS,
    WIDE,
    BrowserLog,
    Screenshots,
    console_server,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "narrow: the page is 390 px wide (a phone)")


@pytest.fixture(scope="session")
async def console_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The base URL of a server of its own, on a fresh SQLite database."""
    async with console_server(tmp_path_factory.mktemp("e2e-server")) as server:
        yield server.url


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    assert CHROMIUM.exists(), f"no {CHROMIUM}: apt-get install chromium (.ci/run does)"
    expect_page.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    browser = await playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=3 * TIMEOUT_MS
    )
    try:
        yield browser
    finally:
        await browser.close()


@pytest.fixture
async def api(playwright: Playwright, console_url: str) -> AsyncIterator[APIRequestContext]:
    """The HTTP API as another user, bob, calls it."""
    context = await playwright.request.new_context(
        base_url=console_url, extra_http_headers={"x-actor": "bob"}, timeout=TIMEOUT_MS
    )
    try:
        yield context
    finally:
        await context.dispose()


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    return Screenshots()


@pytest.fixture
async def page(
    browser: Browser, console_url: str, browser_log: BrowserLog, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A fresh page, 1280 px wide (390 with @pytest.mark.narrow); once the test is over, no
    console error or page error it did not expect."""
    viewport = NARROW if request.node.get_closest_marker("narrow") else WIDE
    context = await browser.new_context(base_url=console_url, viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            browser_log.errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: browser_log.errors.append(f"page error: {error}"))
    try:
        yield page
    finally:
        await context.close()
    assert not browser_log.unexpected(), browser_log.unexpected()
