"""50 writers on one document: in one server (every backend) and across two server processes.

The small races are in tests/contract/test_concurrency.py; these are the stress versions. With
etags, the writers go in rounds: everyone still without a success reads the document, then all
update it at once with the etag they read, so each round has exactly one winner and every read
must return the last acknowledged version. Without etags, every update must apply, while readers
check that no read is older than a write acknowledged before it started.

Across two `python -m docservice` processes sharing one PostgreSQL and one Redis, each writer
reads through one process and writes through the other: the README promises read-your-writes
across processes while Redis is healthy (writers store the new state in Redis before they
answer), and page tokens signed with a shared PAGE_TOKEN_SECRET work on either process.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import (
    Document,
    DocumentServiceStub,
    DocumentVersion,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from tests.support.contract import create, unique
from tests.support.processes import server_env, server_process, wait_serving
from tests.support.servers import RedisServer, free_port

WRITERS = 50
ROUNDS = 4  # rounds of conditional updates: 50 + 49 + 48 + 47 racing updates
READERS, READS_EACH = 6, 25
# Per call: only a hang should reach it. 50 unconditional writers on one document make about
# 50 * 51 / 2 compare-and-set attempts of three round trips each before the last one wins; on
# nx-27017 (the MongoDB test server, in Python, its collections shared by the whole session)
# that has taken over 30 s on a loaded machine.
DEADLINE = 90.0


async def get(stub: DocumentServiceStub, document_id: str) -> Document:
    response = await stub.get_document(GetDocumentRequest(id=document_id), timeout=DEADLINE)
    assert response.document is not None
    return response.document


async def update(
    stub: DocumentServiceStub, document_id: str, content: str, etag: str = ""
) -> Document:
    request = UpdateDocumentRequest(id=document_id, content=content, etag=etag)
    response = await stub.update_document(request, timeout=DEADLINE)
    assert response.document is not None
    return response.document


async def history(stub: DocumentServiceStub, document_id: str) -> list[DocumentVersion]:
    request = GetDocumentVersionsRequest(id=document_id)
    return (await stub.get_document_versions(request, timeout=DEADLINE)).versions


def snapshot(version: DocumentVersion) -> Document:
    assert version.document is not None
    return version.document


async def etag_rounds(stubs: Sequence[DocumentServiceStub]) -> int:
    """ROUNDS rounds of WRITERS updates racing with one etag; returns the losers checked.

    Writer w reads through stubs[w + 1] and writes through stubs[w] (the same server when there
    is one), so with two processes every read crosses from the process that acknowledged.
    """
    document = await create(stubs[0], content="start")
    acknowledged = document
    won: dict[int, Document] = {}  # version -> the document its writer got back
    waiting = list(range(WRITERS))
    losers = 0
    for turn in range(ROUNDS):
        reads = await asyncio.gather(
            *(get(stubs[(w + 1) % len(stubs)], document.id) for w in waiting)
        )
        # Every read started after the last write was acknowledged: none may be older.
        assert {(r.version, r.etag) for r in reads} == {(acknowledged.version, acknowledged.etag)}
        outcomes = await asyncio.gather(
            *(
                update(stubs[w % len(stubs)], document.id, f"writer {w} round {turn}", r.etag)
                for w, r in zip(waiting, reads, strict=True)
            ),
            return_exceptions=True,
        )
        winners = [
            (w, o) for w, o in zip(waiting, outcomes, strict=True) if isinstance(o, Document)
        ]
        errors = [o for o in outcomes if not isinstance(o, Document)]
        assert len(winners) == 1, outcomes
        assert len(errors) == len(waiting) - 1
        assert all(
            isinstance(e, GRPCError) and e.status == Status.FAILED_PRECONDITION for e in errors
        ), errors
        writer, winner = winners[0]
        assert winner.version == acknowledged.version + 1
        assert winner.content == f"writer {writer} round {turn}"
        won[winner.version] = winner
        acknowledged = winner
        waiting.remove(writer)
        losers += len(errors)

    for stub in stubs:
        assert await get(stub, document.id) == acknowledged
        versions = await history(stub, document.id)
        assert [v.version for v in versions] == list(range(1, ROUNDS + 2))
        assert snapshot(versions[0]).content == "start"
        assert [snapshot(v) for v in versions[1:]] == [won[n] for n in range(2, ROUNDS + 2)]
    return losers


async def writers_without_etags(stubs: Sequence[DocumentServiceStub]) -> int:
    """WRITERS unconditional updates at once, every one applied exactly once, while readers
    (through every server) check that no read is older than a write acknowledged before it.
    Returns the number of reads checked."""
    author = unique("stress")
    document = await create(stubs[0], author=author, content="start")
    acknowledged = 1  # the highest version any writer has been told about so far
    stale: list[str] = []
    contents = [f"writer {i}" for i in range(WRITERS)]

    async def write(i: int) -> Document:
        nonlocal acknowledged
        written = await update(stubs[i % len(stubs)], document.id, contents[i])
        acknowledged = max(acknowledged, written.version)
        return written

    async def read(r: int) -> None:
        stub = stubs[r % len(stubs)]
        for turn in range(READS_EACH):
            floor = acknowledged
            kind = (r + turn) % 3
            if kind == 0:
                seen = (await get(stub, document.id)).version
            elif kind == 1:
                request = ListDocumentsRequest(author=author)
                page = await stub.list_documents(request, timeout=DEADLINE)
                seen = next(d.version for d in page.documents if d.id == document.id)
            else:
                versions = await history(stub, document.id)
                assert [v.version for v in versions] == list(range(1, len(versions) + 1))
                seen = versions[-1].version
            if seen < floor:
                stale.append(f"{('get', 'list', 'history')[kind]} #{r}: v{seen} after v{floor}")

    # A task group: a call that fails ends the others, rather than leaving them writing into
    # the tests that follow.
    async with asyncio.TaskGroup() as group:
        writes = [group.create_task(write(i)) for i in range(WRITERS)]
        for r in range(READERS):
            group.create_task(read(r))
    results = [w.result() for w in writes]
    assert stale == []
    assert sorted(r.version for r in results) == list(range(2, WRITERS + 2))
    assert sorted(r.content for r in results) == sorted(contents)
    assert len({r.etag for r in results}) == WRITERS

    by_version = {r.version: r for r in results}
    for stub in stubs:
        versions = await history(stub, document.id)
        assert [v.version for v in versions] == list(range(1, WRITERS + 2))
        assert sorted(snapshot(v).content for v in versions[1:]) == sorted(contents)
        assert all(snapshot(v) == by_version[v.version] for v in versions[1:])
        assert await get(stub, document.id) == by_version[WRITERS + 1]
    return READERS * READS_EACH


# -- one server, every backend (the `stub` fixture of tests/conftest.py) -----------------------


async def test_fifty_writers_with_one_etag_in_rounds(stub: DocumentServiceStub) -> None:
    losers = await etag_rounds([stub])
    assert losers == sum(WRITERS - 1 - n for n in range(ROUNDS))


async def test_fifty_writers_without_etags_all_apply(stub: DocumentServiceStub) -> None:
    assert await writers_without_etags([stub]) == READERS * READS_EACH


# -- two server processes sharing PostgreSQL and Redis -------------------------------------------


@pytest.fixture(scope="module")
async def two_servers(
    postgres_url: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[DocumentServiceStub]]:
    """Two `python -m docservice` processes on one database, one Redis and one key prefix."""
    tmp = tmp_path_factory.mktemp("two-servers")
    shared = {
        "DB_TYPE": "postgres",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server.url,
        "CACHE_KEY_PREFIX": f"{tmp.name}:",
        "PAGE_TOKEN_SECRET": secrets.token_hex(16),
        # Read-your-writes across processes is promised while Redis is healthy. On this loaded
        # machine a 50 ms timeout can fire on a busy event loop, which is Redis "trouble".
        "CACHE_TIMEOUT_MS": "2000",
    }
    channels: list[Channel] = []
    try:
        async with AsyncExitStack() as processes:
            for _ in range(2):  # one after the other: the first applies the migrations
                port = free_port()
                env = server_env(GRPC_PORT=str(port), **shared)
                await wait_serving(
                    port, await processes.enter_async_context(server_process(env, tmp))
                )
                channels.append(Channel("127.0.0.1", port))
            yield [DocumentServiceStub(channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()


async def test_fifty_writers_with_one_etag_across_two_processes(
    two_servers: list[DocumentServiceStub],
) -> None:
    losers = await etag_rounds(two_servers)
    assert losers == sum(WRITERS - 1 - n for n in range(ROUNDS))


async def test_fifty_writers_without_etags_across_two_processes(
    two_servers: list[DocumentServiceStub],
) -> None:
    assert await writers_without_etags(two_servers) == READERS * READS_EACH


async def test_page_token_from_one_process_works_on_the_other(
    two_servers: list[DocumentServiceStub],
) -> None:
    author = unique("pages")
    for n in range(7):
        await create(two_servers[n % 2], author=author, content=f"d{n}")
    whole = await two_servers[1].list_documents(
        ListDocumentsRequest(author=author, page_size=100), timeout=DEADLINE
    )
    assert len(whole.documents) == 7 and whole.next_page_token == ""

    walked: list[str] = []
    token, pages = "", 0
    for pages in range(1, 10):  # 4 pages of 2; each token is used on the process it is not from
        request = ListDocumentsRequest(author=author, page_size=2, page_token=token)
        page = await two_servers[pages % 2].list_documents(request, timeout=DEADLINE)
        assert page.total_size == 7
        walked.extend(d.id for d in page.documents)
        token = page.next_page_token
        if not token:
            break
    assert pages == 4
    assert walked == [d.id for d in whole.documents]
