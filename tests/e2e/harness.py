"""What the browser tests share: a server to test, the browser's settings, the log of what went
wrong in a page, and where screenshots go."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Page

from tests.support.processes import START_TIMEOUT, server_env, server_process
from tests.support.servers import free_port

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "NARROW",
    "TIMEOUT_MS",
    "WIDE",
    "BrowserLog",
    "ConsoleServer",
    "Screenshots",
    "console_server",
]

# Debian's Chromium (Playwright's own browser downloads are not used).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000  # every wait: page loads, clicks, expectations, API calls
WIDE = {"width": 1280, "height": 860}
NARROW = {"width": 390, "height": 844}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "e2e-artifacts"  # in .gitignore


@dataclass
class BrowserLog:
    """What a page reported as wrong: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect(self, fragment: str) -> None:
        """An error containing `fragment` is part of the test: the browser logs each response
        with an error status ("... the server responded with a status of 412 ...")."""
        self.expected.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(f in e for f in self.expected)]


class Screenshots:
    """Full-page screenshots in e2e-artifacts/, for a human to look at; with
    E2E_README_SCREENSHOT=1 also the README's picture of the console, docs/console.png."""

    async def take(self, page: Page, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)

    async def readme(self, page: Page) -> None:
        if os.environ.get("E2E_README_SCREENSHOT") == "1":
            await page.screenshot(path=ROOT / "docs" / "console.png", animations="disabled")


@dataclass
class ConsoleServer:
    url: str  # the console's (and the API's) base URL
    process: asyncio.subprocess.Process


@asynccontextmanager
async def console_server(
    home: Path, http_port: int = 0, grpc_port: int = 0
) -> AsyncIterator[ConsoleServer]:
    """`python -m docservice` on the SQLite database in `home` (its log there too), on loopback,
    once its HTTP face answers; killed at the end. Ports: free ones unless given (a restart)."""
    http_port = http_port or free_port()
    env = server_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{home / 'e2e.db'}",
        GRPC_HOST="127.0.0.1",
        GRPC_PORT=str(grpc_port or free_port()),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(http_port),
    )
    with (home / "server.log").open("ab") as log:
        async with server_process(env, home, log) as process:
            await _wait_http(http_port, process)
            yield ConsoleServer(f"http://127.0.0.1:{http_port}/", process)


async def _wait_http(port: int, process: asyncio.subprocess.Process) -> None:
    """Until the HTTP face answers (its OpenAPI document), at most START_TIMEOUT seconds."""
    deadline = time.monotonic() + START_TIMEOUT
    request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        assert process.returncode is None, "the server exited during start-up"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
            try:
                writer.write(request)
                status = await asyncio.wait_for(reader.readline(), 2)
            finally:
                writer.close()
                await writer.wait_closed()
            if status.startswith(b"HTTP/1.1 200"):
                return
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("the HTTP face did not start")
