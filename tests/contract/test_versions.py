"""Version history through the real gRPC server: GetDocumentVersions, GetDocumentVersion, Revert."""

from __future__ import annotations

import uuid
from typing import Any

from grpclib.const import Status

from docservice._proto.document import (
    DeleteDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentStatus,
    DocumentVersion,
    GetDocumentRequest,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    UpdateDocumentRequest,
)
from tests.support.contract import create, expect_status, unique, violated_fields

EDITABLE = ("title", "content", "status", "author", "tags", "category", "comments")


def editable(document: Document) -> dict[str, Any]:
    return {name: getattr(document, name) for name in EDITABLE}


async def history(stub: DocumentServiceStub, document_id: str) -> list[DocumentVersion]:
    response = await stub.get_document_versions(GetDocumentVersionsRequest(id=document_id))
    assert response.next_page_token == ""
    return response.versions


async def update(stub: DocumentServiceStub, document_id: str, **fields: Any) -> Document:
    response = await stub.update_document(UpdateDocumentRequest(id=document_id, **fields))
    return response.document


async def with_versions(stub: DocumentServiceStub, count: int) -> list[Document]:
    """A document with `count` versions; returns its state after each one."""
    states = [await create(stub, content="v1")]
    for number in range(2, count + 1):
        states.append(await update(stub, states[0].id, content=f"v{number}"))
    return states


def get_version(stub: DocumentServiceStub, document_id: str, **fields: Any) -> Any:
    return stub.get_document_version(GetDocumentVersionRequest(id=document_id, **fields))


def revert(stub: DocumentServiceStub, document_id: str, **fields: Any) -> Any:
    return stub.revert_document(RevertDocumentRequest(id=document_id, **fields))


async def test_history_is_ascending_snapshots_after_each_change(
    stub: DocumentServiceStub,
) -> None:
    created = await create(stub, content="one", tags=["a"], category="c")
    edited = await update(stub, created.id, content="two", status=DocumentStatus.PUBLISHED)
    retitled = await update(stub, created.id, title=unique("title"))
    states = [created, edited, retitled]

    versions = await history(stub, created.id)
    assert [v.version for v in versions] == [1, 2, 3]
    for state, entry in zip(states, versions, strict=True):
        assert entry.version_id == str(entry.version)
        assert entry.document == state
        assert entry.timestamp == state.updated_at
    assert versions[0].timestamp < versions[1].timestamp < versions[2].timestamp


async def test_page_size_zero_returns_the_whole_history(stub: DocumentServiceStub) -> None:
    states = await with_versions(stub, 25)
    versions = await history(stub, states[0].id)
    assert [v.version for v in versions] == list(range(1, 26))
    assert [v.document.content for v in versions] == [f"v{n}" for n in range(1, 26)]
    assert [v.document for v in versions] == states


async def test_history_pages(stub: DocumentServiceStub) -> None:
    states = await with_versions(stub, 5)
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        response = await stub.get_document_versions(
            GetDocumentVersionsRequest(id=states[0].id, page_size=2, page_token=token)
        )
        pages += 1
        assert len(response.versions) == (1 if pages == 3 else 2)
        seen += [v.version for v in response.versions]
        token = response.next_page_token
        if not token:
            break
        assert pages < 3
    assert seen == [1, 2, 3, 4, 5]


async def test_exact_multiple_of_page_size_ends_without_token(stub: DocumentServiceStub) -> None:
    states = await with_versions(stub, 2)
    response = await stub.get_document_versions(
        GetDocumentVersionsRequest(id=states[0].id, page_size=2)
    )
    assert [v.version for v in response.versions] == [1, 2]
    assert response.next_page_token == ""


async def test_history_page_token_is_bound_to_its_document(stub: DocumentServiceStub) -> None:
    mine = await with_versions(stub, 3)
    other = await with_versions(stub, 3)
    token = (
        await stub.get_document_versions(GetDocumentVersionsRequest(id=mine[0].id, page_size=1))
    ).next_page_token
    assert token
    error = await expect_status(
        stub.get_document_versions(
            GetDocumentVersionsRequest(id=other[0].id, page_size=1, page_token=token)
        ),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["page_token"]
    error = await expect_status(
        stub.get_document_versions(GetDocumentVersionsRequest(id=mine[0].id, page_token="junk")),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["page_token"]


async def test_history_of_unknown_or_malformed_id(stub: DocumentServiceStub) -> None:
    await expect_status(
        stub.get_document_versions(GetDocumentVersionsRequest(id=str(uuid.uuid4()))),
        Status.NOT_FOUND,
    )
    error = await expect_status(
        stub.get_document_versions(GetDocumentVersionsRequest(id="not-a-uuid")),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["id"]
    document = await create(stub)
    error = await expect_status(
        stub.get_document_versions(GetDocumentVersionsRequest(id=document.id, page_size=-1)),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["page_size"]


async def test_history_of_a_deleted_document_stays_readable(stub: DocumentServiceStub) -> None:
    created = await create(stub, content="body")
    edited = await update(stub, created.id, content="edited")
    await stub.delete_document(DeleteDocumentRequest(id=created.id))

    versions = await history(stub, created.id)
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[1].document == edited
    removal = versions[2].document
    assert removal.is_deleted and removal.deleted_at == removal.updated_at
    assert editable(removal) == editable(edited)
    assert versions[2].timestamp == removal.updated_at
    single = await get_version(stub, created.id, version=3)
    assert single == versions[2]


async def test_get_version_by_number_or_id(stub: DocumentServiceStub) -> None:
    states = await with_versions(stub, 3)
    document_id = states[0].id
    listed = await history(stub, document_id)
    for entry in listed:
        by_number = await get_version(stub, document_id, version=entry.version)
        by_id = await get_version(stub, document_id, version_id=entry.version_id)
        both = await get_version(
            stub, document_id, version=entry.version, version_id=entry.version_id
        )
        assert by_number == by_id == both == entry
    assert (await get_version(stub, document_id, version=2)).document == states[1]


async def test_get_version_rejects_bad_selectors(stub: DocumentServiceStub) -> None:
    document = (await with_versions(stub, 2))[0]
    for fields, field in [
        ({"version": 1, "version_id": "2"}, "version"),
        ({}, "version"),
        ({"version": -1}, "version"),
    ]:
        error = await expect_status(
            get_version(stub, document.id, **fields), Status.INVALID_ARGUMENT
        )
        assert violated_fields(error) == [field], fields
    await expect_status(get_version(stub, "nope", version=1), Status.INVALID_ARGUMENT)


async def test_get_version_not_found(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    await expect_status(get_version(stub, document.id, version=2), Status.NOT_FOUND)
    await expect_status(get_version(stub, document.id, version_id="9"), Status.NOT_FOUND)
    await expect_status(get_version(stub, document.id, version=2**63 - 1), Status.NOT_FOUND)
    await expect_status(get_version(stub, str(uuid.uuid4()), version=1), Status.NOT_FOUND)


async def test_a_version_id_that_is_not_a_canonical_number_names_no_version(
    stub: DocumentServiceStub,
) -> None:
    # Clients treat version_id as opaque: a string that names no version is NOT_FOUND.
    document = await create(stub)
    for version_id in ["abc", "0", "-1", "1.0", "01", "+1", " 1", str(2**64), "1" * 5000]:
        await expect_status(get_version(stub, document.id, version_id=version_id), Status.NOT_FOUND)
        await expect_status(revert(stub, document.id, version_id=version_id), Status.NOT_FOUND)
    assert (await get_version(stub, document.id, version_id="1")).version == 1
    assert [v.version for v in await history(stub, document.id)] == [1]  # nothing appended


async def test_revert_appends_a_copy_of_the_old_version(stub: DocumentServiceStub) -> None:
    original = await create(stub, content="first", tags=["a", "b"], category="c", comments=["note"])
    changed = await update(
        stub,
        original.id,
        title=unique("title"),
        content="second",
        status=DocumentStatus.ARCHIVED,
        tags=["z"],
        category="other",
        comments=["x", "y"],
    )
    reverted = await revert(stub, original.id, version=1, etag=changed.etag)
    assert reverted.version == 3
    assert editable(reverted) == editable(original)
    assert not reverted.is_deleted and reverted.deleted_at == ""
    assert reverted.etag not in (original.etag, changed.etag)
    assert reverted.created_at == original.created_at
    assert reverted.updated_at > changed.updated_at

    assert (await stub.get_document(GetDocumentRequest(id=original.id))).document == reverted
    versions = await history(stub, original.id)
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[1].document == changed  # history is appended to, never rewritten
    assert versions[2].document == reverted

    again = await revert(stub, original.id, version_id="2")
    assert again.version == 4 and editable(again) == editable(changed)


async def test_revert_to_the_deleted_snapshot_keeps_the_document_live(
    stub: DocumentServiceStub,
) -> None:
    document = await create(stub, content="kept")
    await stub.delete_document(DeleteDocumentRequest(id=document.id))
    await stub.restore_document(RestoreDocumentRequest(id=document.id))
    reverted = await revert(stub, document.id, version=2)  # version 2 is the delete
    # Its fields equal the current ones: nothing is appended, and the document stays live.
    assert reverted.version == 3
    assert not reverted.is_deleted and reverted.deleted_at == ""
    assert reverted.content == "kept"
    assert [v.version for v in await history(stub, document.id)] == [1, 2, 3]


async def test_revert_to_the_current_content_appends_nothing(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="one")
    current = await update(stub, document.id, content="two")
    same = await revert(stub, document.id, version=2, etag=current.etag)
    assert (same.version, same.etag, same.content) == (2, current.etag, "two")
    back = await revert(stub, document.id, version=1)
    assert (back.version, back.content) == (3, "one")
    assert [v.version for v in await history(stub, document.id)] == [1, 2, 3]


async def test_revert_with_stale_etag_fails(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="one")
    current = await update(stub, document.id, content="two")
    await expect_status(
        revert(stub, document.id, version=1, etag=document.etag), Status.FAILED_PRECONDITION
    )
    assert (await history(stub, document.id))[-1].version == 2  # nothing appended
    reverted = await revert(stub, document.id, version=1, etag=current.etag)
    assert reverted.version == 3 and reverted.content == "one"


async def test_revert_errors(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    await expect_status(revert(stub, document.id, version=5), Status.NOT_FOUND)
    await expect_status(revert(stub, str(uuid.uuid4()), version=1), Status.NOT_FOUND)
    error = await expect_status(revert(stub, document.id), Status.INVALID_ARGUMENT)
    assert violated_fields(error) == ["version"]
    error = await expect_status(revert(stub, "nope", version=1), Status.INVALID_ARGUMENT)
    assert violated_fields(error) == ["id"]

    await stub.delete_document(DeleteDocumentRequest(id=document.id))
    await expect_status(revert(stub, document.id, version=1), Status.NOT_FOUND)
    await expect_status(revert(stub, document.id, version=9), Status.NOT_FOUND)
    assert [v.version for v in await history(stub, document.id)] == [1, 2]
