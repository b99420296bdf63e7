"""Calls abandoned at any await: bursts of writes whose deadlines pass while the server is
somewhere in its storage code (waiting for a pooled connection, connecting, in a statement, in
COMMIT, giving the connection back), and whose clients reset their streams as they give up.

Afterwards the server holds no more than a healthy pool holds: no connection checked out, on
SQLite no more descriptors on the database files than the pool's connections keep open (the
same after the last burst as after the warm-up), on PostgreSQL no more backends than the pool's
connections. Nothing was left to the garbage collector or the loop's exception handler ("non-
checked-in connection", "Task was destroyed but it is pending!", "Future exception was never
retrieved"), neither the service nor its storage libraries logged at WARNING or above, the
server still serves, and every acknowledged write reads back. `pytest -s` shows the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import sqlite3
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from grpclib.client import Channel
from sqlalchemy.pool import QueuePool

from docservice._proto.document import (
    Document,
    DocumentServiceStub,
    GetDocumentRequest,
)
from docservice.app import App
from docservice.storage.sql.repository import SqlDocumentRepository
from tests.support.apps import running_app
from tests.support.backends import backend_settings, postgres_dsn, scratch_database
from tests.support.fault_load import DEADLINE, Ledger, check_ledger, create, summary, update

BURSTS = 12
CALLS_PER_BURST = 80
# Client deadlines (s): the shortest end before the request is sent, the longest after the
# response; the server's own deadline (grpc-timeout) cancels the rest wherever they are.
DEADLINES = (0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.05, 0.1, 0.2)
DOCUMENTS = 8  # the updates of a burst race on these
POLLS = 500  # bounded waits: at most this many polls ...
POLL_SECONDS = 0.02  # ... this far apart
# Said by the libraries when a connection, a task or a future was abandoned half-way.
ABANDONMENT = (
    "non-checked-in connection",
    "Task was destroyed but it is pending",
    "Future exception was never retrieved",
    "was deleted before being closed",
    "unclosed",
)
# Whose log records at WARNING or above count: the service's and its storage stack's.
LOGGERS = ("docservice", "grpclib", "sqlalchemy", "aiosqlite", "asyncpg", "asyncio")


class Complaints:
    """What the process says about itself meanwhile: warnings, the LOGGERS' records at WARNING
    or above, and what reaches the loop's exception handler (which otherwise only logs it)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def from_loop(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.lines.append(f"loop: {context.get('message')} {context.get('exception')!r}")

    def about_abandonment(self) -> list[str]:
        return [line for line in self.lines if any(words in line for words in ABANDONMENT)]


@contextlib.contextmanager
def _complaints(caplog: pytest.LogCaptureFixture) -> Iterator[Complaints]:
    complaints = Complaints()
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(complaints.from_loop)
    first_record = len(caplog.records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # recorded here rather than raised in a finalizer
            yield complaints
            gc.collect()  # what was dropped half-way is finalized (and complains) now
            complaints.lines += [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    finally:
        loop.set_exception_handler(previous)
        complaints.lines += [
            f"log: {r.name} {r.levelname}: {r.getMessage()}"
            for r in caplog.records[first_record:]
            if r.levelno >= logging.WARNING and r.name.startswith(LOGGERS)
        ]


async def _until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    for _ in range(POLLS):
        if condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out waiting until {what()}")


def _pool(app: App) -> QueuePool:
    repository = app.repository
    assert isinstance(repository, SqlDocumentRepository)
    pool = repository._engine.pool
    assert isinstance(pool, QueuePool)
    return pool


async def _quiet(app: App) -> None:
    """Until no call runs and the pool has every connection back, then a little idle time."""
    pool = _pool(app)
    await _until(
        lambda: app.in_flight.count == 0 and pool.checkedout() == 0,
        lambda: (
            f"the abandoned calls are over ({app.in_flight.count} running) and their "
            f"connections back in the pool ({pool.checkedout()} checked out)"
        ),
    )
    await asyncio.sleep(0.2)
    gc.collect()


def _database_descriptors(database: Path) -> int:
    """This process's open descriptors on the SQLite database, its WAL and shared memory."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd of the listing itself, closed by now
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(database)):
                count += 1
    return count


async def _burst(
    ledger: Ledger, stub: DocumentServiceStub, ids: list[str], author: str, rng: random.Random
) -> None:
    """CALLS_PER_BURST creates and updates at once, each with a deadline from DEADLINES."""
    calls: list[Awaitable[Document | None]] = []
    for _ in range(CALLS_PER_BURST):
        deadline = rng.choice(DEADLINES)
        if rng.random() < 0.3:
            calls.append(create(ledger, stub, author, deadline))
        else:
            calls.append(update(ledger, stub, rng.choice(ids), deadline))
    await asyncio.gather(*calls)


@contextlib.asynccontextmanager
async def _serving(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, **settings: object
) -> AsyncIterator[tuple[App, DocumentServiceStub]]:
    async with running_app(backend_settings(backend, tmp_path, request, **settings)) as app:
        channel = Channel("127.0.0.1", app.settings.grpc_port)
        try:
            yield app, DocumentServiceStub(channel)
        finally:
            channel.close()


async def _warm_up(ledger: Ledger, stub: DocumentServiceStub, author: str) -> list[str]:
    """DOCUMENTS documents, then a burst of writes that all complete: the pool at its busiest."""
    created = [await create(ledger, stub, author) for _ in range(DOCUMENTS)]
    ids = [document.id for document in created if document is not None]
    assert len(ids) == DOCUMENTS, "the server does not serve"
    done = await asyncio.gather(
        *(update(ledger, stub, ids[i % DOCUMENTS], DEADLINE) for i in range(CALLS_PER_BURST))
    )
    assert None not in done, ledger.failures()
    return ids


async def _still_serves(ledger: Ledger, stub: DocumentServiceStub, ids: list[str]) -> None:
    for document_id in ids:
        assert await update(ledger, stub, document_id) is not None, ledger.failures()


def _abandoned(ledger: Ledger) -> int:
    failures = ledger.failures()
    assert set(failures) <= {"DEADLINE_EXCEEDED", "CANCELLED"}, failures
    return sum(failures.values())


async def test_abandoned_sqlite_writes_give_back_connections_and_descriptors(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "docservice.db"
    ledger = Ledger()
    author = f"abandoned-{uuid.uuid4().hex[:8]}"
    rng = random.Random(20)
    after_bursts: list[int] = []
    async with _serving("sqlite", tmp_path, request) as (app, stub):
        pool = _pool(app)
        ids = await _warm_up(ledger, stub, author)
        await _quiet(app)
        baseline = _database_descriptors(database)
        with _complaints(caplog) as complaints:
            for _ in range(BURSTS):
                await _burst(ledger, stub, ids, author, rng)
                await _quiet(app)
                after_bursts.append(_database_descriptors(database))
        await _still_serves(ledger, stub, ids)
        report = await check_ledger(ledger, stub)
        # Each connection the pool can hold open keeps a descriptor on the database and one on
        # its WAL; all share one on the shared memory.
        healthy = 2 * (pool.size() + pool._max_overflow) + 1

    print(f"\n{summary('abandoned sqlite writes', ledger, report)}")
    print(f"  database descriptors: {baseline} after the warm-up, {after_bursts} after each burst")
    assert _abandoned(ledger) > 0
    assert complaints.about_abandonment() == []
    assert complaints.lines == []
    assert 0 < baseline <= healthy
    assert max(after_bursts) <= healthy, after_bursts
    assert after_bursts[-1] <= max(baseline, after_bursts[0]), after_bursts  # no growth
    assert report.checked > 0
    assert report.lost == [] and report.broken == []


async def test_sqlite_write_abandoned_before_its_commit_is_rolled_back(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """An update waits for SQLite's write lock (held by another connection) past its deadline.
    Its statement cannot be interrupted, so it runs once the lock is free, after the call has
    failed: the server then rolls it back rather than commit it, and gives the connection back.
    """
    ledger = Ledger()
    async with _serving("sqlite", tmp_path, request) as (app, stub):
        document = await create(ledger, stub, f"abandoned-{uuid.uuid4().hex[:8]}")
        assert document is not None
        blocker = sqlite3.connect(tmp_path / "docservice.db", isolation_level=None)
        try:
            with _complaints(caplog) as complaints:
                blocker.execute("BEGIN IMMEDIATE")  # the write lock, until the rollback
                failed = await update(ledger, stub, document.id, deadline=0.3)
                assert failed is None
                assert app.in_flight.count == 1, "the abandoned update still waits for the lock"
                blocker.execute("ROLLBACK")
                await _quiet(app)
        finally:
            blocker.close()
        got = await stub.get_document(GetDocumentRequest(id=document.id), timeout=DEADLINE)
        assert got.document is not None and got.document.version == 1
        assert await update(ledger, stub, document.id) is not None
        report = await check_ledger(ledger, stub)

    assert ledger.failures() == Counter({"DEADLINE_EXCEEDED": 1})
    assert complaints.lines == []
    assert report.lost == [] and report.broken == []


@pytest.fixture
async def own_postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """A database of this test's own in the session's PostgreSQL, so that its backends can be
    counted."""
    async with scratch_database(postgres_url, "abandoned") as url:
        yield url


async def _backends(url: str) -> int:
    """Client backends connected to the database of `url`, besides the one counting them."""
    monitor = await asyncpg.connect(postgres_dsn(url))
    try:
        count = await monitor.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    finally:
        await monitor.close()
    return int(count)


async def test_abandoned_postgres_writes_give_back_connections(
    own_postgres_database: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger()
    author = f"abandoned-{uuid.uuid4().hex[:8]}"
    rng = random.Random(21)
    backends: list[int] = []
    async with _serving("postgres", tmp_path, request, database_url=own_postgres_database) as (
        app,
        stub,
    ):
        pool = _pool(app)
        ids = await _warm_up(ledger, stub, author)
        await _quiet(app)
        with _complaints(caplog) as complaints:
            for _ in range(BURSTS):
                await _burst(ledger, stub, ids, author, rng)
                await _quiet(app)
                backends.append(await _backends(own_postgres_database))
        await _still_serves(ledger, stub, ids)
        report = await check_ledger(ledger, stub)
        capacity = pool.size() + pool._max_overflow

    print(f"\n{summary('abandoned postgres writes', ledger, report)}")
    print(f"  backends after each burst: {backends}")
    print(f"  outcomes: {dict(Counter(c.outcome for c in ledger.calls))}")
    assert _abandoned(ledger) > 0
    assert complaints.about_abandonment() == []
    assert complaints.lines == []
    assert max(backends) <= capacity, backends
    assert report.checked > 0
    assert report.lost == [] and report.broken == []
