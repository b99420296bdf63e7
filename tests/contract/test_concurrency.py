"""Etags (AIP-154), racing writers and request_id retries through the real gRPC server."""

from __future__ import annotations

import asyncio

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import (
    CreateDocumentRequest,
    DeleteDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentVersion,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    UpdateDocumentRequest,
)
from tests.support.contract import create, expect_status, unique


async def history(stub: DocumentServiceStub, document_id: str) -> list[DocumentVersion]:
    response = await stub.get_document_versions(GetDocumentVersionsRequest(id=document_id))
    return response.versions


def snapshot(version: DocumentVersion) -> Document:
    assert version.document is not None
    return version.document


async def current(stub: DocumentServiceStub, document_id: str) -> Document:
    document = (await stub.get_document(GetDocumentRequest(id=document_id))).document
    assert document is not None
    return document


async def update(
    stub: DocumentServiceStub, document_id: str, content: str, etag: str = ""
) -> Document:
    request = UpdateDocumentRequest(id=document_id, content=content, etag=etag)
    document = (await stub.update_document(request)).document
    assert document is not None
    return document


async def test_update_with_stale_etag_fails_and_writes_nothing(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="v1")
    second = await update(stub, document.id, "v2", etag=document.etag)
    assert second.version == 2

    await expect_status(
        update(stub, document.id, "stale", etag=document.etag), Status.FAILED_PRECONDITION
    )
    assert await current(stub, document.id) == second
    assert len(await history(stub, document.id)) == 2

    third = await update(stub, document.id, "v3", etag=second.etag)
    assert third.version == 3 and third.content == "v3"


async def test_delete_with_stale_etag_fails_and_writes_nothing(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    second = await update(stub, document.id, "changed")

    await expect_status(
        stub.delete_document(DeleteDocumentRequest(id=document.id, etag=document.etag)),
        Status.FAILED_PRECONDITION,
    )
    assert await current(stub, document.id) == second
    assert len(await history(stub, document.id)) == 2

    response = await stub.delete_document(DeleteDocumentRequest(id=document.id, etag=second.etag))
    assert response.success
    await expect_status(stub.get_document(GetDocumentRequest(id=document.id)), Status.NOT_FOUND)


async def test_restore_with_stale_etag_fails_and_writes_nothing(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    await stub.delete_document(DeleteDocumentRequest(id=document.id))
    deleted = snapshot((await history(stub, document.id))[-1])
    assert deleted.is_deleted and deleted.version == 2

    await expect_status(
        stub.restore_document(RestoreDocumentRequest(id=document.id, etag=document.etag)),
        Status.FAILED_PRECONDITION,
    )
    await expect_status(stub.get_document(GetDocumentRequest(id=document.id)), Status.NOT_FOUND)
    assert len(await history(stub, document.id)) == 2

    restored = await stub.restore_document(
        RestoreDocumentRequest(id=document.id, etag=deleted.etag)
    )
    assert not restored.is_deleted and restored.version == 3


async def test_revert_with_stale_etag_fails_and_writes_nothing(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="original")
    second = await update(stub, document.id, "edited")

    await expect_status(
        stub.revert_document(RevertDocumentRequest(id=document.id, version=1, etag=document.etag)),
        Status.FAILED_PRECONDITION,
    )
    assert await current(stub, document.id) == second
    assert len(await history(stub, document.id)) == 2

    reverted = await stub.revert_document(
        RevertDocumentRequest(id=document.id, version=1, etag=second.etag)
    )
    assert reverted.content == "original" and reverted.version == 3


async def race_same_etag(stub: DocumentServiceStub, writers: int) -> None:
    """`writers` updates carrying the same etag: one wins, the rest fail, one version is added."""
    document = await create(stub, content="start")
    outcomes = await asyncio.gather(
        *(update(stub, document.id, f"writer {i}", etag=document.etag) for i in range(writers)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, Document)]
    losers = [o for o in outcomes if isinstance(o, GRPCError)]
    assert len(winners) == 1, outcomes
    assert len(losers) == writers - 1, outcomes
    assert all(error.status == Status.FAILED_PRECONDITION for error in losers), losers

    winner = winners[0]
    assert winner.version == 2
    assert await current(stub, document.id) == winner
    versions = await history(stub, document.id)
    assert [v.version for v in versions] == [1, 2]
    assert snapshot(versions[-1]).content == winner.content


async def test_two_updates_racing_with_one_etag(stub: DocumentServiceStub) -> None:
    await race_same_etag(stub, 2)


async def test_ten_updates_racing_with_one_etag(stub: DocumentServiceStub) -> None:
    await race_same_etag(stub, 10)


async def test_concurrent_writers_without_etags_all_apply(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="start")
    contents = [f"writer {i}" for i in range(20)]
    results = await asyncio.gather(*(update(stub, document.id, c) for c in contents))

    assert sorted(r.version for r in results) == list(range(2, 22))
    assert sorted(r.content for r in results) == sorted(contents)
    assert len({r.etag for r in results}) == 20

    versions = await history(stub, document.id)
    assert [v.version for v in versions] == list(range(1, 22))
    assert [v.version_id for v in versions] == [str(n) for n in range(1, 22)]
    written = [snapshot(v).content for v in versions[1:]]
    assert sorted(written) == sorted(contents)  # each content exactly once, none lost
    by_version = {r.version: r.content for r in results}
    assert all(snapshot(v).content == by_version[v.version] for v in versions[1:])
    assert (await current(stub, document.id)).version == 21


async def test_concurrent_creates_with_one_request_id(stub: DocumentServiceStub) -> None:
    author = unique("author")
    request = CreateDocumentRequest(title=unique("title"), author=author, request_id=unique("req"))
    results = await asyncio.gather(*(stub.create_document(request) for _ in range(10)))

    assert len({r.id for r in results}) == 1
    assert all(r.version == 1 for r in results)
    listed = await stub.list_documents(ListDocumentsRequest(author=author, show_deleted=True))
    assert [d.id for d in listed.documents] == [results[0].id]
    assert listed.total_size == 1
