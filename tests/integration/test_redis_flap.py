"""Redis killed and restarted (or paused and resumed) again and again under a mixed load.

Clients create, update, get, list and read histories while a flapper takes the server's own
redis-server away several times. Not one call may fail (Redis trouble never fails a call), no
read may be older than a write acknowledged before it started (the check of
tests/contract/test_read_your_writes.py, here under faults), and every acknowledged write must be
in the history at its version. Between flaps the flapper waits until the cache serves hits
again, so the load really ran against a working cache each time, not just against the database.

Two deterministic tests pin down what the flaps can leave behind: list pages that outlive their
generation counter, and the cache statistics the flap test reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice.storage.cache.repository import CacheStats
from tests.support.cached_server import Env, serve_with_own_redis
from tests.support.contract import unique

T = TypeVar("T")

COOLDOWN = 0.2  # the breaker's cool-down: short, so that the cache is used again soon
DEADLINE = 5.0  # per call; far above the cache timeout, so only a hang can reach it
CLIENTS = 10
MAX_OPS = 500  # per client; the load stops earlier, once the flapper is done
LOAD_SECONDS = 25.0  # and in any case after this long
DOCUMENTS, MAX_DOCUMENTS = 6, 60  # at most one ListDocuments page of them
# Seconds Redis is away, one flap each. Killed: 0 restarts it at once, so that calls begun on
# the old server end on the new, empty one. Paused: 0.1 makes calls time out while their
# commands wait in Redis. 0.4 is past the breaker's 0.25 s of quiet, so that it opens.
OUTAGES = {"kill": (0.0, 0.4, 0.0, 0.4, 0.0, 0.4), "pause": (0.1, 0.4, 0.1, 0.4)}
UP, UP_HITS = 0.3, 10  # load on a working cache before the next flap: seconds, then hits
HIT_WAIT = 10.0  # at most this long for the cache to serve UP_HITS after Redis is back
KINDS = ["create", "update", "get", "list", "history"]
WEIGHTS = [1, 3, 3, 2, 2]


@dataclass
class Load:
    stub: DocumentServiceStub
    author: str
    acknowledged: dict[str, int] = field(default_factory=dict)  # id -> highest acknowledged
    written: dict[tuple[str, int], str] = field(default_factory=dict)  # (id, version) -> content
    calls: int = 0
    failed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    async def call(self, kind: str, call: Awaitable[T]) -> T | None:
        self.calls += 1
        try:
            return await call
        except Exception as exc:  # every failure is a finding: keep going, report them all
            self.failed.append(f"{kind}: {exc!r}")
            return None

    async def create(self) -> None:
        content = unique("c")
        request = CreateDocumentRequest(title=unique("t"), author=self.author, content=content)
        created = await self.call("create", self.stub.create_document(request, timeout=DEADLINE))
        if created is not None:
            self.acknowledged[created.id] = 1
            self.written[created.id, 1] = content

    async def update(self, document_id: str) -> None:
        content = unique("c")
        request = UpdateDocumentRequest(id=document_id, content=content)
        response = await self.call("update", self.stub.update_document(request, timeout=DEADLINE))
        if response is not None and response.document is not None:
            version = response.document.version
            self.acknowledged[document_id] = max(self.acknowledged[document_id], version)
            self.written[document_id, version] = content

    async def get(self, document_id: str) -> None:
        floor = self.acknowledged[document_id]
        request = GetDocumentRequest(id=document_id)
        response = await self.call("get", self.stub.get_document(request, timeout=DEADLINE))
        if response is not None and response.document is not None:
            self._check("get", document_id, response.document.version, floor)

    async def list(self) -> None:
        floors = dict(self.acknowledged)
        request = ListDocumentsRequest(author=self.author, page_size=100)
        page = await self.call("list", self.stub.list_documents(request, timeout=DEADLINE))
        if page is not None:
            seen = {d.id: d.version for d in page.documents}
            for document_id, floor in floors.items():
                self._check("list", document_id, seen.get(document_id, 0), floor)

    async def history(self, document_id: str) -> None:
        floor = self.acknowledged[document_id]
        request = GetDocumentVersionsRequest(id=document_id)
        response = await self.call(
            "history", self.stub.get_document_versions(request, timeout=DEADLINE)
        )
        if response is not None:
            numbers = [v.version for v in response.versions]
            if numbers != list(range(1, len(numbers) + 1)):
                self.stale.append(f"history of {document_id}: versions {numbers}")
            self._check("history", document_id, numbers[-1] if numbers else 0, floor)

    def _check(self, kind: str, document_id: str, seen: int, floor: int) -> None:
        if seen < floor:
            self.stale.append(f"{kind} {document_id}: saw v{seen} after v{floor} was acknowledged")

    async def client(self, seed: int, stop: asyncio.Event) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + LOAD_SECONDS
        for _ in range(MAX_OPS):
            if stop.is_set() or time.monotonic() > deadline:
                return
            kind = rng.choices(KINDS, WEIGHTS)[0]
            document_id = rng.choice(list(self.acknowledged))
            if kind == "create" and len(self.acknowledged) < MAX_DOCUMENTS:
                await self.create()
            elif kind in ("create", "update"):
                await self.update(document_id)
            elif kind == "get":
                await self.get(document_id)
            elif kind == "list":
                await self.list()
            else:
                await self.history(document_id)


@pytest.fixture
async def env(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """A server on `request.param`'s database behind its own redis-server (killed at will)."""
    async with serve_with_own_redis(request.param, tmp_path, request, COOLDOWN) as env:
        yield env


async def cache_used(stats: CacheStats) -> int:
    """Let the load run on the cache for UP seconds and until it has served UP_HITS hits (at
    most HIT_WAIT); the hits served meanwhile."""
    before = stats.hits
    await asyncio.sleep(UP)
    for _ in range(int(HIT_WAIT / 0.05)):
        if stats.hits - before >= UP_HITS:
            break
        await asyncio.sleep(0.05)
    return stats.hits - before


async def flap(env: Env, fault: str, windows: list[int]) -> int:
    """Take Redis away once for each of OUTAGES[fault]. Appends the hits of each window of a
    working cache (before the first flap, between flaps, after the last); returns the flaps."""
    flaps = 0
    for down in OUTAGES[fault]:
        windows.append(await cache_used(env.cache.stats))
        if fault == "kill":
            await asyncio.to_thread(env.redis.kill)
            await asyncio.sleep(down)
            await asyncio.to_thread(env.redis.start)  # empty, on the same port
        else:
            env.redis.pause()
            await asyncio.sleep(down)
            env.redis.resume()
        flaps += 1
    windows.append(await cache_used(env.cache.stats))
    return flaps


@pytest.mark.parametrize(
    ("env", "fault"),
    [("postgres", "kill"), ("sqlite", "kill"), ("postgres", "pause")],
    indirect=["env"],
)
async def test_flapping_redis_fails_no_call_and_serves_nothing_stale(env: Env, fault: str) -> None:
    load = Load(env.stub, unique("flap"))
    for _ in range(DOCUMENTS):
        await load.create()
    assert load.failed == []

    stop = asyncio.Event()
    windows: list[int] = []

    async def flapper() -> int:
        try:
            return await flap(env, fault, windows)
        finally:
            stop.set()

    flaps, *_ = await asyncio.gather(
        flapper(), *(load.client(seed, stop) for seed in range(CLIENTS))
    )
    stats = env.cache.stats
    print(
        f"\n{env.app.settings.db_type.value} + redis {fault} x{flaps}: {load.calls} calls, "
        f"{len(load.failed)} failed, {len(load.stale)} stale, {len(load.written)} acknowledged "
        f"writes; cache hits per window {windows}, {stats}"
    )
    assert load.failed == []
    assert load.stale == []
    assert flaps == len(OUTAGES[fault])
    # The cache served hits before the first flap, between every two and after the last.
    assert len(windows) == flaps + 1 and min(windows) >= UP_HITS, windows
    assert stats.errors + stats.bypasses > 0, "the flaps never reached the cache"

    # Every acknowledged write is in the history at its version; nothing more was written.
    lost: list[str] = []
    for document_id, version in load.acknowledged.items():
        got = await env.stub.get_document(GetDocumentRequest(id=document_id), timeout=DEADLINE)
        assert got.document is not None and got.document.version == version
        request = GetDocumentVersionsRequest(id=document_id)
        response = await env.stub.get_document_versions(request, timeout=DEADLINE)
        assert [v.version for v in response.versions] == list(range(1, version + 1))
        for v in response.versions:
            assert v.document is not None
            if load.written.get((document_id, v.version)) != v.document.content:
                lost.append(f"{document_id} v{v.version}")
    assert lost == []
    assert sum(load.acknowledged.values()) == len(load.written)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
async def test_a_lost_list_generation_never_brings_old_pages_back(env: Env) -> None:
    """List pages outlive their generation counter when Redis evicts it (allkeys-lru) or when a
    page read from the old server is stored in the restarted one. A new counter that counted
    up from 0 again would reach those pages' generations and serve them."""
    author = unique("generation")
    request = ListDocumentsRequest(author=author, page_size=100)

    async def listed() -> list[tuple[str, int]]:
        page = await env.stub.list_documents(request, timeout=DEADLINE)
        return [(d.id, d.version) for d in page.documents]

    created = await env.stub.create_document(
        CreateDocumentRequest(title="t", author=author), timeout=DEADLINE
    )
    update = UpdateDocumentRequest(id=created.id, content="changed")
    for version in (1, 2):  # a page stored under each of the generations of these two states
        if version > 1:
            await env.stub.update_document(update, timeout=DEADLINE)
        hits = env.cache.stats.hits
        assert await listed() == [(created.id, version)]
        assert await listed() == [(created.id, version)]
        assert env.cache.stats.hits == hits + 1

    raw = Redis.from_url(env.redis.url)
    try:
        assert await raw.delete(f"{env.app.settings.cache_key_prefix}lgen") == 1
    finally:
        await raw.aclose()
    for version in (3, 4, 5):
        update = UpdateDocumentRequest(id=created.id, content=f"v{version}")
        await env.stub.update_document(update, timeout=DEADLINE)
        assert await listed() == [(created.id, version)]


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
async def test_a_partly_cached_history_is_a_miss_not_an_error(env: Env) -> None:
    """After a write the newest snapshot is not cached yet: that is a miss. `errors` counts
    Redis trouble and garbage only (the flap test above reports it)."""
    created = await env.stub.create_document(
        CreateDocumentRequest(title="t", author=unique("a")), timeout=DEADLINE
    )
    request = GetDocumentVersionsRequest(id=created.id)
    for _ in range(2):  # a miss that caches version 1, then a hit
        await env.stub.get_document_versions(request, timeout=DEADLINE)
    update = UpdateDocumentRequest(id=created.id, content="changed")
    await env.stub.update_document(update, timeout=DEADLINE)

    before = dataclasses.replace(env.cache.stats)
    response = await env.stub.get_document_versions(request, timeout=DEADLINE)
    assert [v.version for v in response.versions] == [1, 2]
    assert env.cache.stats.misses == before.misses + 1
    assert env.cache.stats.errors == before.errors
    response = await env.stub.get_document_versions(request, timeout=DEADLINE)
    assert [v.version for v in response.versions] == [1, 2]
    assert env.cache.stats.hits == before.hits + 1
