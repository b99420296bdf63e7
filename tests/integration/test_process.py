"""`python -m docservice` as a real process: start-up checks and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from sqlalchemy.engine import make_url

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    GetDocumentRequest,
    UpdateDocumentRequest,
)
from tests.support.processes import START_TIMEOUT, server_env, server_process, wait_serving
from tests.support.servers import free_port


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRPC_PORT", "not-a-port"),
        ("DB_TYPE", "oracle"),
        ("LOG_LEVEL", "chatty"),
        ("MAX_TITLE_LENGTH", "0"),
    ],
)
def test_bad_setting_fails_at_start_with_clear_message(
    name: str, value: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docservice"],
        env=server_env(**{name: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert result.returncode != 0
    assert "invalid settings" in result.stderr and name.lower() in result.stderr
    assert "Traceback" not in result.stderr


async def _wait_for_lock_waiter(connection: asyncpg.Connection) -> None:
    for _ in range(200):
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the update never waited for the lock")


async def _first_refusal(port: int, document_id: str) -> BaseException:
    """Call on fresh connections until the server (once it has seen the signal) refuses."""
    for _ in range(200):
        channel = Channel("127.0.0.1", port)
        try:
            await DocumentServiceStub(channel).get_document(GetDocumentRequest(id=document_id))
        except (GRPCError, OSError, StreamTerminatedError) as exc:
            return exc
        finally:
            channel.close()
        await asyncio.sleep(0.02)
    raise AssertionError("new calls were still served after SIGTERM")


@pytest.fixture
async def server(
    postgres_url: str, tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    env = server_env(DB_TYPE="postgres", DATABASE_URL=postgres_url, GRPC_PORT=str(port))
    async with server_process(env, tmp_path) as process:
        yield process, port


async def test_sigterm_lets_running_calls_finish_and_refuses_new_ones(
    server: tuple[asyncio.subprocess.Process, int], postgres_url: str
) -> None:
    process, port = server
    channel = Channel("127.0.0.1", port)
    stub = DocumentServiceStub(channel)
    await wait_serving(port, process)
    document = await stub.create_document(CreateDocumentRequest(title="slow", author="t"))

    # Hold the document's row lock in another session so that the update blocks in flight.
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    blocker = await asyncpg.connect(dsn)
    try:
        locking = blocker.transaction()
        await locking.start()
        await blocker.execute("SELECT 1 FROM documents WHERE id = $1 FOR UPDATE", document.id)
        update = asyncio.ensure_future(
            stub.update_document(UpdateDocumentRequest(id=document.id, content="done"))
        )
        await _wait_for_lock_waiter(blocker)
        assert not update.done()
        process.send_signal(signal.SIGTERM)

        refused = await _first_refusal(port, document.id)
        if isinstance(refused, GRPCError):
            assert refused.status == Status.UNAVAILABLE
        assert not update.done()
        await locking.rollback()
    finally:
        await blocker.close()

    updated = await asyncio.wait_for(update, 10)
    assert updated.document.content == "done" and updated.document.version == 2
    assert await asyncio.wait_for(process.wait(), 15) == 0
    channel.close()
