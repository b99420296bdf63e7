"""The one way a test runs a docservice app in its own process (for a subprocess, see
processes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from docservice.app import App, create_app
from docservice.settings import Settings

__all__ = ["running_app"]


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[App]:
    """`create_app` and `start`; `stop` (graceful, bounded by the settings) when the block ends.

    Built inside the running loop, as grpclib binds its server to the current loop.
    """
    if "http_port" not in settings.model_fields_set:  # a free port, never the default 8080
        settings = settings.model_copy(update={"http_port": 0})
    app = await create_app(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
