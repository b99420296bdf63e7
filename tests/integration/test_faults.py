"""Faults under load: the database restarts, the server is killed or stopped, calls time out.

Real processes on loopback only. Every call has a deadline and every load loop is bounded in
calls and in time (tests/support/fault_load.py). Run with `pytest -s` to see the counts: calls
made and failed, acknowledged writes read back, and how many of them were lost (always 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from sqlalchemy.pool import QueuePool

from docservice._proto.document import DocumentServiceStub, GetDocumentRequest
from docservice.app import App
from docservice.settings import Settings
from docservice.storage.sql.repository import SqlDocumentRepository
from tests.support.apps import running_app
from tests.support.backends import postgres_dsn, scratch_database
from tests.support.fault_load import (
    CONNECTION,
    DEADLINE,
    DEADLINE_EXCEEDED,
    Ledger,
    check_ledger,
    classify,
    create,
    summary,
    update,
    write_load,
)
from tests.support.processes import server_env, server_process, wait_serving
from tests.support.servers import MongoServer, PostgresServer, free_port

WRITERS = 8
LOAD_LIMIT = 60.0  # seconds: only a safety bound, every test stops its load long before
POLLS = 500  # bounded waits: at most this many polls ...
POLL_SECONDS = 0.02  # ... this far apart
UNAVAILABLE = "UNAVAILABLE"


def _settings(**values: object) -> Settings:
    return Settings.model_validate(
        {"grpc_port": free_port(), "shutdown_grace_seconds": 2.0, **values}
    )


def _server_errors(records: list[logging.LogRecord]) -> list[str]:
    """ERROR records of the service and of grpclib (an INTERNAL, a failed cancellation)."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.levelno >= logging.ERROR and r.name.startswith(("docservice", "grpclib"))
    ]


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(POLLS):
        if await condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out waiting until {what}")


@asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[tuple[App, DocumentServiceStub]]:
    """An in-process server and a client of it."""
    async with running_app(settings) as app:
        channel = Channel("127.0.0.1", settings.grpc_port)
        try:
            yield app, DocumentServiceStub(channel)
        finally:
            channel.close()


@asynccontextmanager
async def _loading(ledger: Ledger, stub: DocumentServiceStub, writers: int) -> AsyncIterator[None]:
    """Write load in the background for the duration of the block."""
    stop = asyncio.Event()
    load = asyncio.create_task(
        write_load(ledger, stub, writers=writers, until=time.monotonic() + LOAD_LIMIT, stop=stop)
    )
    try:
        yield
    finally:
        stop.set()
        await load


# --- 1. The database goes away and comes back while the server takes writes ------------------


@dataclass
class OwnDatabase:
    """A database server of this test's own, and how to take it away and bring it back."""

    settings: Settings
    take_down: Callable[[], None]
    bring_back: Callable[[], None]
    # Longer than the service's retries last (~1.4 s with Mongo's 0.4 s server selection), so
    # that calls during the outage must fail rather than ride it out.
    down_seconds: float


@pytest.fixture(params=["postgres", "mongo"])
def own_database(request: pytest.FixtureRequest) -> Iterator[OwnDatabase]:
    if request.param == "postgres":
        postgres = PostgresServer()
        postgres.start()
        try:
            settings = _settings(db_type="postgres", database_url=postgres.url)
            yield OwnDatabase(settings, lambda: postgres.stop("fast"), postgres.start, 1.0)
        finally:
            postgres.destroy()
    else:
        mongo = MongoServer()
        mongo.start()
        try:
            settings = _settings(db_type="mongo", mongo_url=mongo.url, mongo_db="faults")
            yield OwnDatabase(settings, mongo.stop, mongo.start, 2.0)
        finally:
            mongo.destroy()


OUTAGES = 2  # each one meets the store shutting down, down, and starting up


async def test_database_restart_under_write_load(
    own_database: OwnDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stops (fast shutdown) or the Mongo server process stops, stays down for 1-2 s
    and starts again on the same data, twice, while writers keep writing. (nx-27017, the Mongo
    test server, keeps its data in a SQLite file across a restart, so it can restart too.)

    Calls fail only with UNAVAILABLE meanwhile (never INTERNAL, never a hang to the deadline),
    the same server takes writes again after each restart, and every acknowledged write is
    stored at its version with its content.
    """
    ledger = Ledger()
    outages: list[tuple[float, float]] = []
    async with _running(own_database.settings) as (_app, stub):
        async with _loading(ledger, stub, WRITERS):
            await asyncio.sleep(1.0)
            for _ in range(OUTAGES):
                down_from = time.monotonic()
                await asyncio.to_thread(own_database.take_down)  # the server serves meanwhile
                await asyncio.sleep(own_database.down_seconds)
                await asyncio.to_thread(own_database.bring_back)
                outages.append((down_from, time.monotonic()))
                await asyncio.sleep(1.0)
        again = await create(ledger, stub, "after-the-restarts")
        assert again is not None and await update(ledger, stub, again.id) is not None
        report = await check_ledger(ledger, stub)

    print(f"\n{summary(f'{own_database.settings.db_type} restarts', ledger, report)}")
    for down_from, up_from in outages:
        print(f"  during an outage: {dict(ledger.overlapping(down_from, up_from))}")
    failures = ledger.failures()
    assert set(failures) <= {UNAVAILABLE}, failures
    starts = [down_from for down_from, _ in outages]
    assert ledger.successes(until=starts[0]) > 0, "no write succeeded before the fault"
    for (down_from, up_from), next_down in zip(
        outages, [*starts[1:], time.monotonic()], strict=True
    ):
        assert ledger.failed_during(down_from, up_from) > 0, "no call met the outage"
        assert ledger.successes(up_from, next_down) > 0, "no write succeeded after a restart"
    assert report.checked > 0
    assert report.lost == [] and report.broken == []
    assert _server_errors(caplog.records) == []


# --- 2. The server process is killed and started again ------------------------------------------


@pytest.mark.parametrize("backend", ["postgres", "sqlite", "mongo"])
async def test_sigkilled_server_loses_no_acknowledged_write(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGKILL mid-load, then a new process on the same port and database: each acknowledged
    write is there, and no document was left half written (its state and history agree)."""
    port = free_port()
    values = {"DB_TYPE": backend, "GRPC_PORT": str(port)}
    if backend == "postgres":
        values["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    elif backend == "sqlite":
        values["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'docservice.db'}"
    else:
        values["MONGO_URL"] = request.getfixturevalue("mongo_url")
        values["MONGO_DB"] = f"faults-{uuid.uuid4().hex[:8]}"
    env = server_env(**values)
    ledger = Ledger()
    channel = Channel("127.0.0.1", port)
    stub = DocumentServiceStub(channel)
    log_path = tmp_path / "server.log"
    try:
        with log_path.open("wb") as log:
            async with contextlib.AsyncExitStack() as servers:
                first = await servers.enter_async_context(server_process(env, tmp_path, log))
                await wait_serving(port, first)
                async with _loading(ledger, stub, WRITERS):
                    await asyncio.sleep(1.0)
                    killed_at = time.monotonic()
                    first.kill()
                    assert await first.wait() == -signal.SIGKILL
                    second = await servers.enter_async_context(server_process(env, tmp_path, log))
                    await wait_serving(port, second)
                    restarted_at = time.monotonic()
                    await asyncio.sleep(1.0)
                report = await check_ledger(ledger, stub)
    finally:
        channel.close()

    cut = ledger.overlapping(killed_at, killed_at)
    print(f"\n{summary(f'{backend} SIGKILL', ledger, report)}")
    print(f"  running at the kill: {dict(cut)}")
    failures = ledger.failures()
    assert set(failures) <= {UNAVAILABLE, CONNECTION}, failures
    assert ledger.successes(until=killed_at) > 0, "no write succeeded before the kill"
    assert ledger.failed_during(killed_at, restarted_at) > 0
    assert ledger.successes(since=restarted_at) > 0, "no write succeeded after the restart"
    assert report.checked > 0
    assert report.lost == [] and report.broken == []
    assert "unexpected error" not in log_path.read_text(errors="replace")


# --- 3. SIGTERM under load --------------------------------------------------------------------

GRACE = 5.0
HOT_DOCUMENTS = 4
HELD_CALLS = 12  # updates held in flight on row locks when SIGTERM arrives


async def _lock_waiters(monitor: asyncpg.Connection) -> int:
    count = await monitor.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(count)


async def _first_refusal(port: int) -> str:
    """Call on fresh connections until the server (once it has seen the signal) refuses."""
    for _ in range(POLLS):
        channel = Channel("127.0.0.1", port)
        try:
            await DocumentServiceStub(channel).get_document(
                GetDocumentRequest(id=str(uuid.uuid4())), timeout=DEADLINE
            )
        except Exception as exc:
            if classify(exc) != "NOT_FOUND":
                return classify(exc)
        finally:
            channel.close()
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError("new calls were still served after SIGTERM")


async def test_sigterm_under_load_finishes_running_calls_then_exits(
    postgres_url: str, tmp_path: Path
) -> None:
    """SIGTERM while updates are held in flight (on row locks) and writers keep calling: new
    calls are refused, the held calls all complete OK once the locks go, and the process exits
    with 0 within the grace period."""
    port = free_port()
    env = server_env(
        DB_TYPE="postgres",
        DATABASE_URL=postgres_url,
        GRPC_PORT=str(port),
        SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    ledger = Ledger()
    held_channel, load_channel = Channel("127.0.0.1", port), Channel("127.0.0.1", port)
    stub = DocumentServiceStub(held_channel)
    log_path = tmp_path / "server.log"
    monitor = await asyncpg.connect(postgres_dsn(postgres_url))
    blocker = await asyncpg.connect(postgres_dsn(postgres_url))
    try:
        with log_path.open("wb") as log:
            async with server_process(env, tmp_path, log) as process:
                await wait_serving(port, process)
                hot = [await create(ledger, stub, "hot") for _ in range(HOT_DOCUMENTS)]
                hot_ids = [d.id for d in hot if d is not None]
                assert len(hot_ids) == HOT_DOCUMENTS
                locking = blocker.transaction()
                await locking.start()
                await blocker.execute(
                    "SELECT 1 FROM documents WHERE id = ANY($1::text[]) FOR UPDATE", hot_ids
                )
                held = [
                    asyncio.create_task(update(ledger, stub, hot_ids[i % HOT_DOCUMENTS], 30))
                    for i in range(HELD_CALLS)
                ]

                async def all_held() -> bool:
                    return await _lock_waiters(monitor) >= HELD_CALLS

                await _until(all_held, "every held update waits on its lock")
                async with _loading(ledger, DocumentServiceStub(load_channel), 4):
                    await asyncio.sleep(0.5)
                    terminated_at = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                    refusal = await _first_refusal(port)
                    await asyncio.sleep(0.3)  # the writers meet the draining server too
                    assert not any(call.done() for call in held), "a held call ended early"
                    await locking.rollback()
                    done = await asyncio.wait_for(asyncio.gather(*held), GRACE + 10)
                    exit_code = await asyncio.wait_for(process.wait(), GRACE + 10)
                    exited_after = time.monotonic() - terminated_at
    finally:
        for channel in (held_channel, load_channel):
            channel.close()
        await blocker.close()
        await monitor.close()

    async with _running(_settings(db_type="postgres", database_url=postgres_url)) as (_, check):
        report = await check_ledger(ledger, check)
    print(f"\n{summary('SIGTERM under load', ledger, report)}")
    print(f"  first refusal {refusal}, exit {exit_code} after {exited_after:.2f} s")
    assert refusal in {UNAVAILABLE, CONNECTION}
    assert all(document is not None for document in done), "a call in flight did not complete"
    for document_id in hot_ids:  # the held updates each got their own version
        assert sorted(ledger.acknowledged[document_id]) == list(
            range(1, HELD_CALLS // HOT_DOCUMENTS + 2)
        )
    assert exit_code == 0
    before = Counter(c.outcome for c in ledger.calls if c.started < terminated_at)
    assert set(before) <= {"OK", UNAVAILABLE}, before  # in flight: done; queued: refused
    assert set(ledger.failures()) <= {UNAVAILABLE, CONNECTION}, ledger.failures()
    assert sum(ledger.failures(since=terminated_at).values()) > 0
    assert report.lost == [] and report.broken == []
    server_log = log_path.read_text(errors="replace")
    assert "unexpected error" not in server_log and "still running" not in server_log


# --- 4. Deadlines: calls abandoned while they wait on a row lock ---------------------------------

ROUNDS = 3
ABANDONED_PER_ROUND = 10  # 30 abandoned updates: more than the pool's 10 + 10 connections
SHORT_DEADLINE = 0.5
POOL_LIMIT = 20


@pytest.fixture
async def own_postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """A new database in the session's PostgreSQL, so that its backends can be counted."""
    async with scratch_database(postgres_url, "faults") as url:
        yield url


async def test_abandoned_calls_stop_waiting_and_leak_no_connection(
    own_postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Updates stuck on a row lock past their deadline (0.5 s) fail on the client, and the
    server gives up their work: no backend keeps waiting on the lock, no pool connection stays
    checked out; after more abandoned calls than the pool holds, it still serves and is healthy.
    """
    url = own_postgres_database
    ledger = Ledger()
    settings = _settings(db_type="postgres", database_url=url, health_check_interval_seconds=0.2)
    async with _running(settings) as (app, stub):
        repository = app.repository
        assert isinstance(repository, SqlDocumentRepository)
        pool = repository._engine.pool
        assert isinstance(pool, QueuePool)
        locked = await create(ledger, stub, "locked")
        assert locked is not None
        monitor = await asyncpg.connect(postgres_dsn(url))
        blocker = await asyncpg.connect(postgres_dsn(url))
        try:
            locking = blocker.transaction()
            await locking.start()
            await blocker.execute("SELECT 1 FROM documents WHERE id = $1 FOR UPDATE", locked.id)

            async def nobody_waits() -> bool:
                return await _lock_waiters(monitor) == 0

            async def pool_idle() -> bool:
                return pool.checkedout() == 0 and app.in_flight.count == 0

            for _ in range(ROUNDS):
                results = await asyncio.gather(
                    *(
                        update(ledger, stub, locked.id, SHORT_DEADLINE)
                        for _ in range(ABANDONED_PER_ROUND)
                    )
                )
                assert results == [None] * ABANDONED_PER_ROUND
                await _until(nobody_waits, "the server stops waiting on the lock")
                await _until(pool_idle, "the abandoned calls give back their connections")

            backends = await monitor.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            assert backends - 1 <= POOL_LIMIT  # the blocker's is the 1
            # The lock is still held: other calls are served meanwhile.
            got = await stub.get_document(GetDocumentRequest(id=locked.id), timeout=DEADLINE)
            assert got.document is not None and got.document.version == 1
            other = await create(ledger, stub, "other")
            assert other is not None
            updates = [update(ledger, stub, other.id) for _ in range(POOL_LIMIT)]
            assert None not in await asyncio.gather(*updates)
            health = await HealthStub(stub.channel).Check(HealthCheckRequest(), timeout=DEADLINE)
            assert health.status == HealthCheckResponse.SERVING
        finally:
            await blocker.close()  # ends the transaction and its lock
            await monitor.close()
        after = await update(ledger, stub, locked.id)  # the lock is free again
        assert after is not None
        report = await check_ledger(ledger, stub)

    abandoned = ledger.failures()
    print(f"\n{summary('abandoned calls', ledger, report)}")
    print(f"  abandoned updates applied anyway: {after.version - 2}")
    assert sum(abandoned.values()) == ROUNDS * ABANDONED_PER_ROUND
    assert set(abandoned) <= {DEADLINE_EXCEEDED, "CANCELLED"}, abandoned
    assert report.lost == [] and report.broken == []
    assert _server_errors(caplog.records) == []
