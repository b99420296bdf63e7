"""The change feed across processes, restarts and limits: two servers on one store, a server
killed mid-stream and resumed elsewhere, SIGTERM, a PostgreSQL restart under a watcher, the
watcher cap, heartbeats, and a consumer that does not read."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentEvent,
    DocumentServiceStub,
    UpdateDocumentRequest,
    WatchDocumentsRequest,
    WatchDocumentsResponse,
)
from tests.support.apps import running_app
from tests.support.backends import backend_settings
from tests.support.processes import server_env, server_process, wait_serving
from tests.support.servers import PostgresServer, free_port

DEADLINE = 30.0
WATCH = "/document.DocumentService/WatchDocuments"


class Watcher:
    """A WatchDocuments stream read into a list by a task of its own."""

    def __init__(self, port: int, **request: Any) -> None:
        self.channel = Channel("127.0.0.1", port)
        self.request = WatchDocumentsRequest(**request)
        self.messages: list[WatchDocumentsResponse] = []
        self.ended: BaseException | None = None
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        opened = asyncio.Event()

        async def read() -> None:
            try:
                async with self.channel.request(
                    WATCH, Cardinality.UNARY_STREAM, WatchDocumentsRequest, WatchDocumentsResponse
                ) as stream:
                    await stream.send_message(self.request, end=True)
                    async for message in stream:
                        self.messages.append(message)
                        opened.set()
            except (GRPCError, StreamTerminatedError, OSError) as exc:
                self.ended = exc
            finally:
                opened.set()
                self.finished.set()

        self._task = asyncio.create_task(read())
        await asyncio.wait_for(opened.wait(), DEADLINE)  # the first heartbeat came
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.channel.close()

    @property
    def events(self) -> list[DocumentEvent]:
        return [m.event for m in self.messages if m.event is not None]

    @property
    def token(self) -> str:
        return self.messages[-1].resume_token

    async def wait_for(self, count: int) -> list[DocumentEvent]:
        for _ in range(int(DEADLINE / 0.02)):
            if len(self.events) >= count:
                return self.events
            if self.finished.is_set():
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.events)} of {count} events came ({self.ended!r})")


async def write(port: int, author: str, count: int) -> set[tuple[str, int]]:
    """`count` writes through the server on `port`: creates and updates of one document."""
    channel = Channel("127.0.0.1", port)
    stub = DocumentServiceStub(channel)
    try:
        made = await stub.create_document(
            CreateDocumentRequest(title="t", author=author, content="0"), timeout=DEADLINE
        )
        written = {(made.id, 1)}
        for i in range(1, count):
            if i % 3:
                response = await stub.update_document(
                    UpdateDocumentRequest(id=made.id, content=str(i)), timeout=DEADLINE
                )
                assert response.document is not None
                written.add((made.id, response.document.version))
            else:
                other = await stub.create_document(
                    CreateDocumentRequest(title="t", author=author, content=str(i)),
                    timeout=DEADLINE,
                )
                written.add((other.id, 1))
        return written
    finally:
        channel.close()


def in_order_once(events: list[DocumentEvent]) -> set[tuple[str, int]]:
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences)), "not strictly increasing"
    pairs = [(e.document_id, e.version) for e in events]
    assert len(pairs) == len(set(pairs)), "an event came twice"
    return set(pairs)


@contextlib.asynccontextmanager
async def store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, str]]:
    """Environment settings of one store that several server processes share."""
    settings = backend_settings(backend, tmp_path, request)
    env = {"DB_TYPE": backend, "FEED_POLL_SECONDS": "0.1"}
    if backend == "mongo":
        yield {
            **env,
            "MONGO_URL": settings.mongo_url,
            "MONGO_DB": settings.mongo_db,
            "MONGO_TIMEOUT_MS": str(settings.mongo_timeout_ms),
        }
    else:
        yield {**env, "DATABASE_URL": settings.database_url}


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mongo"])
async def test_two_servers_a_kill_and_a_sigterm_lose_no_event(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A watcher on server A sees the writes made through server B; A is SIGKILLed, B goes on
    writing, A restarts and the watcher resumes from its last token: every write exactly once,
    in order. Then B gets SIGTERM: its watcher is told where to resume, and resumes on A."""
    author = f"proc-{uuid.uuid4().hex[:8]}"
    where = f'author = "{author}"'
    port_a, port_b = free_port(), free_port()
    async with contextlib.AsyncExitStack() as stack:
        log = stack.enter_context((tmp_path / "servers.log").open("ab"))
        shared = await stack.enter_async_context(store(backend, tmp_path, request))
        env_a = server_env(**shared, GRPC_PORT=str(port_a))
        env_b = server_env(**shared, GRPC_PORT=str(port_b))
        # One after the other: the first migrates the store.
        a = await stack.enter_async_context(server_process(env_a, tmp_path, log))
        await wait_serving(port_a, a)
        b = await stack.enter_async_context(server_process(env_b, tmp_path, log))
        await wait_serving(port_b, b)

        async with Watcher(port_a, filter=where) as watcher:
            first = await write(port_b, author, 20)
            assert in_order_once(await watcher.wait_for(len(first))) == first
            token = watcher.events[-1].resume_token

        a.kill()
        await a.wait()
        second = await write(port_b, author, 15)
        restarted = await stack.enter_async_context(server_process(env_a, tmp_path, log))
        await wait_serving(port_a, restarted)
        resumed = await stack.enter_async_context(Watcher(port_a, filter=where, resume_token=token))
        assert in_order_once(await resumed.wait_for(len(second))) == second

        async with Watcher(port_b, filter=where) as on_b:
            b.send_signal(signal.SIGTERM)
            await asyncio.wait_for(on_b.finished.wait(), DEADLINE)
            assert await b.wait() == 0
            assert on_b.ended is None  # ended cleanly, not cut
            last = on_b.messages[-1]
            assert last.event is None and last.resume_token
        third = await write(port_a, author, 5)
        async with Watcher(port_a, filter=where, resume_token=last.resume_token) as again:
            assert in_order_once(await again.wait_for(len(third))) == third
        assert in_order_once(await resumed.wait_for(len(second) + len(third))) == second | third


async def test_a_postgresql_restart_under_a_watcher_loses_no_event(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = PostgresServer()
    postgres.start()
    try:
        settings = backend_settings("postgres", tmp_path, request, database_url=postgres.url)
        settings = settings.model_copy(update={"database_url": postgres.url})
        async with running_app(settings):
            author = f"pg-{uuid.uuid4().hex[:8]}"
            async with Watcher(settings.grpc_port, filter=f'author = "{author}"') as watcher:
                before = await write(settings.grpc_port, author, 10)
                await watcher.wait_for(len(before))
                postgres.stop("fast")
                await asyncio.sleep(0.5)  # the follower finds the store gone, and waits
                postgres.start()
                after: set[tuple[str, int]] = set()
                for _ in range(int(DEADLINE / 0.2)):  # until the pool reconnects
                    try:
                        after = await write(settings.grpc_port, author, 10)
                        break
                    except GRPCError as exc:
                        assert exc.status == Status.UNAVAILABLE
                        await asyncio.sleep(0.2)
                events = await watcher.wait_for(len(before) + len(after))
                assert in_order_once(events) == before | after
                assert watcher.ended is None
    finally:
        postgres.destroy()


async def test_the_watcher_cap_heartbeats_and_a_consumer_that_does_not_read(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = backend_settings(
        "sqlite", tmp_path, request, max_watchers=2, watch_heartbeat_seconds=0.3
    )
    async with running_app(settings) as app:
        port = settings.grpc_port
        author = f"cap-{uuid.uuid4().hex[:8]}"
        async with Watcher(port, filter='author = "nobody writes as this"') as idle:
            # A heartbeat carries the feed's position past events the filter skipped.
            start = idle.token
            await write(port, author, 3)
            for _ in range(int(DEADLINE / 0.05)):
                if idle.token != start:
                    break
                await asyncio.sleep(0.05)
            assert idle.token != start and idle.events == []
            # With the cap at 2, a second watcher fits and a third does not.
            async with Watcher(port), Watcher(port) as third:
                await asyncio.wait_for(third.finished.wait(), DEADLINE)
                assert isinstance(third.ended, GRPCError)
                assert third.ended.status == Status.RESOURCE_EXHAUSTED
        # A consumer that stops reading holds the server back (HTTP/2 flow control): the
        # server sends what the window takes and waits, rather than queueing the rest.
        # (The writer has a connection of its own: the stuck stream's unread data holds the
        # whole connection's flow-control window.)
        channel, writer = Channel("127.0.0.1", port), Channel("127.0.0.1", port)
        stub = DocumentServiceStub(writer)
        try:
            async with channel.request(
                WATCH, Cardinality.UNARY_STREAM, WatchDocumentsRequest, WatchDocumentsResponse
            ) as stuck:
                request = WatchDocumentsRequest(
                    filter=f'author = "{author}"', include_document=True
                )
                await stuck.send_message(request, end=True)
                assert await stuck.recv_message() is not None  # the first heartbeat; then no more
                delivered_before = _delivered(app)
                big = "x" * 256 * 1024
                for _ in range(40):
                    await stub.create_document(
                        CreateDocumentRequest(title="big", author=author, content=big),
                        timeout=DEADLINE,
                    )
                await asyncio.sleep(0.5)
                assert _delivered(app) - delivered_before < 40
                await stuck.cancel()
        finally:
            channel.close()
            writer.close()


def _delivered(app: Any) -> float:
    return float(app.telemetry.registry.get_sample_value("docservice_events_delivered_total"))
