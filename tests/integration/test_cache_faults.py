"""The Redis cache under faults: killed, paused, full of garbage; and that hits skip the database.

Each test gets its own redis-server (it may be killed or paused) and its own app on SQLite.
Every call has a client deadline, so a request hanging on Redis fails as DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import event

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice.storage.sql.repository import SqlDocumentRepository
from tests.support.cached_server import Env, serve_with_own_redis
from tests.support.contract import unique

COOLDOWN = 0.3  # the breaker's cool-down, short so that tests see Redis come back quickly
DEADLINE = 5.0  # per call; far above the cache timeout, so only a hang can reach it
POLLS = 50  # at most this many reads while waiting for the cache to be used again


@pytest.fixture
async def env(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with serve_with_own_redis("sqlite", tmp_path, request, COOLDOWN) as env:
        yield env


@pytest.fixture
async def raw_redis(env: Env) -> AsyncIterator[Redis]:
    """A plain client to the test's redis-server, to look at and spoil the cache's keys."""
    client = Redis.from_url(env.redis.url)
    try:
        yield client
    finally:
        await client.aclose()


async def create(stub: DocumentServiceStub, **fields: Any) -> Document:
    fields.setdefault("title", unique("title"))
    return await stub.create_document(CreateDocumentRequest(**fields), timeout=DEADLINE)


async def get(stub: DocumentServiceStub, document_id: str) -> Document:
    response = await stub.get_document(GetDocumentRequest(id=document_id), timeout=DEADLINE)
    assert response.document is not None
    return response.document


async def update(stub: DocumentServiceStub, document_id: str, **fields: Any) -> Document:
    request = UpdateDocumentRequest(id=document_id, **fields)
    response = await stub.update_document(request, timeout=DEADLINE)
    assert response.document is not None
    return response.document


async def listed(stub: DocumentServiceStub, author: str) -> dict[str, tuple[int, str]]:
    """id -> (version, content) of every document by `author`."""
    request = ListDocumentsRequest(author=author, page_size=100)
    response = await stub.list_documents(request, timeout=DEADLINE)
    return {d.id: (d.version, d.content) for d in response.documents}


async def history(stub: DocumentServiceStub, document_id: str) -> list[tuple[int, str]]:
    request = GetDocumentVersionsRequest(id=document_id)
    response = await stub.get_document_versions(request, timeout=DEADLINE)
    return [(v.version, v.document.content if v.document else "") for v in response.versions]


async def version_content(stub: DocumentServiceStub, document_id: str, number: int) -> str:
    request = GetDocumentVersionRequest(id=document_id, version=number)
    response = await stub.get_document_version(request, timeout=DEADLINE)
    assert response.version == number and response.document is not None
    return response.document.content


async def until_cache_hit(env: Env, document_id: str, version: int) -> None:
    """Read until one read is a cache hit; every read must return `version`."""
    for _ in range(POLLS):
        hits = env.cache.stats.hits
        assert (await get(env.stub, document_id)).version == version
        if env.cache.stats.hits > hits:
            return
        await asyncio.sleep(COOLDOWN / 3)
    pytest.fail(f"the cache served no hit in {POLLS} reads: {env.cache.stats}")


async def test_cached_reads_skip_the_database(env: Env, raw_redis: Redis) -> None:
    inner = env.cache.inner
    assert isinstance(inner, SqlDocumentRepository)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = inner._engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        author = unique("author")
        document = await create(env.stub, author=author, content="v1")
        await update(env.stub, document.id, content="v2")
        await raw_redis.delete(f"{env.prefix}d:{document.id}")  # the next read must miss

        stats, sql, misses = env.cache.stats, len(statements), env.cache.stats.misses
        assert (await get(env.stub, document.id)).content == "v2"
        assert len(statements) > sql, "a miss must read the database (is the counter wired?)"
        assert stats.misses == misses + 1

        reads: dict[str, Callable[[], Awaitable[object]]] = {
            "GetDocument": lambda: get(env.stub, document.id),
            "GetDocumentVersion": lambda: version_content(env.stub, document.id, 1),
            "GetDocumentVersions": lambda: history(env.stub, document.id),
            "ListDocuments": lambda: listed(env.stub, author),
        }
        for name, read in reads.items():
            first = await read()
            sql, hits = len(statements), stats.hits
            assert await read() == first, name
            assert statements[sql:] == [], f"{name} from the cache still queried the database"
            assert stats.hits == hits + 1, name
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_killed_redis_fails_nothing_and_is_used_again_after_restart(env: Env) -> None:
    author = unique("author")
    document = await create(env.stub, author=author, content="v1")
    assert (await get(env.stub, document.id)).version == 1  # now cached
    assert (await listed(env.stub, author)) == {document.id: (1, "v1")}

    env.redis.kill()
    trouble = env.cache.stats.errors + env.cache.stats.bypasses
    updated = await update(env.stub, document.id, content="while down")
    assert updated.version == 2
    assert (await get(env.stub, document.id)).content == "while down"
    other = await create(env.stub, author=author, content="new")
    expected = {document.id: (2, "while down"), other.id: (1, "new")}
    assert await listed(env.stub, author) == expected
    assert await history(env.stub, document.id) == [(1, "v1"), (2, "while down")]
    assert await version_content(env.stub, document.id, 2) == "while down"
    assert env.cache.stats.errors + env.cache.stats.bypasses > trouble

    env.redis.start()  # a new, empty redis-server on the same port
    await until_cache_hit(env, document.id, 2)
    hits = env.cache.stats.hits
    for _ in range(2):
        assert await listed(env.stub, author) == expected
    assert env.cache.stats.hits > hits, "ListDocuments is not served from the cache again"


async def test_paused_redis_is_bounded_and_leaves_no_stale_entry(env: Env) -> None:
    author = unique("author")
    document = await create(env.stub, author=author, content="v1")
    bystander = await create(env.stub, author=author, content="b1")
    assert (await get(env.stub, document.id)).version == 1  # cached in Redis
    assert len(await listed(env.stub, author)) == 2  # this page is cached too

    env.redis.pause()
    try:
        for _ in range(3):  # enough timeouts to open the breaker
            assert (await get(env.stub, bystander.id)).content == "b1"
        updated = await update(env.stub, document.id, content="while paused")
        assert updated.version == 2
        assert (await get(env.stub, document.id)).content == "while paused"
        added = await create(env.stub, author=author, content="added while paused")
        assert added.id in await listed(env.stub, author)
    finally:
        env.redis.resume()

    # Redis still holds version 1 and the old list page unless the write-through reached it
    # or the cache repaired them: no read may return either.
    assert (await get(env.stub, document.id)).version == 2
    await until_cache_hit(env, document.id, 2)
    assert await listed(env.stub, author) == {
        document.id: (2, "while paused"),
        bystander.id: (1, "b1"),
        added.id: (1, "added while paused"),
    }
    assert await history(env.stub, document.id) == [(1, "v1"), (2, "while paused")]


async def test_a_late_store_after_a_repair_cannot_bring_back_an_older_version(env: Env) -> None:
    """A reader read version 1 from the database just before a write whose write-through failed;
    its store arrives after this process repaired the entry. The repair must leave the committed
    version in place (a deleted entry would take the late version 1 and serve it)."""
    document = await create(env.stub, author=unique("author"), content="v1")
    late = await env.cache.inner.get(document.id)  # what the slow reader got from the database
    assert late is not None and late.version == 1
    env.redis.pause()
    try:
        assert (await update(env.stub, document.id, content="v2")).version == 2
    finally:
        env.redis.resume()
    await env.cache._store_document(late)  # the reader's store: the first call after the fault
    assert (await get(env.stub, document.id)).version == 2
    await until_cache_hit(env, document.id, 2)
    assert (await get(env.stub, document.id)).content == "v2"


GARBAGE = {"text": b"garbage", "bad-varint": b"\xff\xff\xff\xff", "empty": b""}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
async def test_garbage_entries_are_misses_never_errors(
    env: Env, raw_redis: Redis, garbage: bytes
) -> None:
    author = unique("author")
    document = await create(env.stub, author=author, content="v1")
    await update(env.stub, document.id, content="v2")
    typed = await create(env.stub, author=author, content="t1")
    # Fill every kind of entry, then spoil them: garbage values and keys of the wrong type.
    await get(env.stub, document.id)
    await history(env.stub, document.id)
    await listed(env.stub, author)
    p = env.prefix
    pages = await raw_redis.keys(f"{p}l:*")
    assert pages, "ListDocuments stored no page"
    for page in pages:
        await raw_redis.set(page, garbage)
    await raw_redis.hset(f"{p}d:{document.id}", mapping={"v": "2", "b": garbage})
    await raw_redis.set(f"{p}v:{document.id}:1", garbage)
    await raw_redis.delete(f"{p}v:{document.id}:2", f"{p}d:{typed.id}")
    await raw_redis.hset(f"{p}v:{document.id}:2", "x", "wrong type")
    await raw_redis.rpush(f"{p}d:{typed.id}", "wrong type")

    expected = {document.id: (2, "v2"), typed.id: (1, "t1")}
    for _ in range(2):  # the second round reads whatever the first one stored
        got = await get(env.stub, document.id)
        assert (got.id, got.version, got.content) == (document.id, 2, "v2")
        assert (await get(env.stub, typed.id)).content == "t1"
        assert await version_content(env.stub, document.id, 1) == "v1"
        assert await version_content(env.stub, document.id, 2) == "v2"
        assert await history(env.stub, document.id) == [(1, "v1"), (2, "v2")]
        assert await listed(env.stub, author) == expected

    assert (await update(env.stub, document.id, content="v3")).version == 3
    assert (await update(env.stub, typed.id, content="t2")).version == 2
    expected = {document.id: (3, "v3"), typed.id: (2, "t2")}
    hits = env.cache.stats.hits
    for _ in range(2):  # the writes healed the keys: each read is a hit, at least the second time
        assert (await get(env.stub, document.id)).content == "v3"
        assert (await get(env.stub, typed.id)).content == "t2"
        assert await listed(env.stub, author) == expected
    assert env.cache.stats.hits >= hits + 4


LIST_GENERATIONS = {"text": b"garbage", "not-utf8": b"\xff\xfe", "hash": None}


@pytest.mark.parametrize("generation", LIST_GENERATIONS.values(), ids=LIST_GENERATIONS.keys())
async def test_garbage_list_generation_is_a_miss_never_an_error(
    env: Env, raw_redis: Redis, generation: bytes | None
) -> None:
    author = unique("author")
    first = await create(env.stub, author=author, content="one")
    key = f"{env.prefix}lgen"
    await raw_redis.delete(key)
    if generation is None:
        await raw_redis.hset(key, "x", "wrong type")
    else:
        await raw_redis.set(key, generation)
    for _ in range(2):
        assert await listed(env.stub, author) == {first.id: (1, "one")}
    second = await create(env.stub, author=author, content="two")  # must move lists on
    expected = {first.id: (1, "one"), second.id: (1, "two")}
    hits = env.cache.stats.hits
    for _ in range(2):
        assert await listed(env.stub, author) == expected
    assert env.cache.stats.hits == hits + 1, "the second listing is not served from the cache"


@pytest.mark.parametrize("fault", ["killed", "paused"])
async def test_write_outcome_never_depends_on_the_cache(env: Env, fault: str) -> None:
    author = unique("author")
    if fault == "killed":
        env.redis.kill()
    else:
        env.redis.pause()  # the fixture's kill() continues it first
    fields = {"title": unique("title"), "author": author, "content": "once"}
    request_id = unique("request")
    first = await create(env.stub, **fields, request_id=request_id)
    retry = await create(env.stub, **fields, request_id=request_id)  # the same request again
    assert (retry.id, retry.version, retry.etag) == (first.id, first.version, first.etag)
    assert await listed(env.stub, author) == {first.id: (1, "once")}
    assert (await get(env.stub, first.id)).content == "once"
