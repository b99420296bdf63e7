"""`python -m docservice` as a subprocess: its environment, its lifetime, and waiting for it."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from docservice._proto.document import DocumentServiceStub, GetDocumentRequest
from docservice.settings import Settings

__all__ = ["START_TIMEOUT", "server_env", "server_process", "wait_serving"]

START_TIMEOUT = 30.0
_SETTINGS = {name.upper() for name in Settings.model_fields}


def server_env(**settings: str) -> dict[str, str]:
    """This environment without any docservice setting (a developer's .env exports stay out),
    quiet, with one worker and the HTTP face on a free port unless told otherwise, plus
    `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    return {**env, "LOG_LEVEL": "WARNING", "WORKERS": "1", "HTTP_PORT": "0", **settings}


@asynccontextmanager
async def server_process(
    env: dict[str, str], cwd: Path, log: IO[bytes] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m docservice`, killed on exit if still running; its output goes to `log`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "docservice", cwd=cwd, env=env, stderr=log, stdout=log
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_serving(port: int, process: asyncio.subprocess.Process) -> None:
    """Until the server answers a call (NOT_FOUND for a random id)."""
    channel = Channel("127.0.0.1", port)
    stub = DocumentServiceStub(channel)
    try:
        for _ in range(int(START_TIMEOUT / 0.05)):
            assert process.returncode is None, "the server exited during start-up"
            try:
                await stub.get_document(GetDocumentRequest(id=str(uuid.uuid4())), timeout=2)
            except GRPCError as exc:
                if exc.status == Status.NOT_FOUND:
                    return
            except (OSError, StreamTerminatedError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    finally:
        channel.close()
    raise TimeoutError("the server did not start")
