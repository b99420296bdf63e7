"""Create, get, update, delete and restore through the real gRPC server."""

from __future__ import annotations

import uuid

from grpclib.const import Status

from docservice._proto.document import (
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DocumentServiceStub,
    DocumentStatus,
    GetDocumentRequest,
    RestoreDocumentRequest,
    UpdateDocumentRequest,
)
from tests.support.contract import create, expect_status, unique


async def test_create_returns_version_one_with_all_fields(stub: DocumentServiceStub) -> None:
    document = await create(
        stub,
        content="body",
        status=DocumentStatus.PUBLISHED,
        tags=["b", "a", "b"],
        category="notes",
        comments=["first", "first"],
    )
    assert str(uuid.UUID(document.id)) == document.id  # canonical: lower case, hyphenated
    assert uuid.UUID(document.id).version == 4
    assert document.version == 1
    assert document.tags == ["b", "a"]  # de-duplicated, order kept
    assert document.comments == ["first", "first"]  # comments are not de-duplicated
    assert document.status == DocumentStatus.PUBLISHED
    assert document.created_at == document.updated_at
    assert document.created_at.endswith("Z")
    assert document.etag.startswith('"') and document.etag.endswith('"')
    assert not document.is_deleted and document.deleted_at == ""

    fetched = (await stub.get_document(GetDocumentRequest(id=document.id))).document
    assert fetched == document


async def test_get_unknown_and_malformed_ids(stub: DocumentServiceStub) -> None:
    await expect_status(
        stub.get_document(GetDocumentRequest(id=str(uuid.uuid4()))), Status.NOT_FOUND
    )
    await expect_status(
        stub.get_document(GetDocumentRequest(id="not-a-uuid")), Status.INVALID_ARGUMENT
    )
    await expect_status(stub.get_document(GetDocumentRequest(id="")), Status.INVALID_ARGUMENT)


async def test_get_accepts_upper_case_uuid(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    fetched = await stub.get_document(GetDocumentRequest(id=document.id.upper()))
    assert fetched.document.id == document.id


async def test_legacy_update_leaves_empty_fields_alone(stub: DocumentServiceStub) -> None:
    document = await create(
        stub, content="old", tags=["x"], category="c", status=DocumentStatus.PUBLISHED
    )
    response = await stub.update_document(UpdateDocumentRequest(id=document.id, content="new"))
    updated = response.document
    assert updated.content == "new"
    assert updated.tags == ["x"] and updated.category == "c"
    assert updated.status == DocumentStatus.PUBLISHED  # DRAFT (0) means "leave as is"
    assert updated.title == document.title and updated.author == document.author
    assert updated.version == 2
    assert updated.etag != document.etag
    assert updated.updated_at > document.updated_at
    assert updated.created_at == document.created_at


async def test_update_that_changes_nothing_appends_no_version(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="same")
    response = await stub.update_document(
        UpdateDocumentRequest(id=document.id, content="same", title=document.title)
    )
    assert response.document == document
    response = await stub.update_document(UpdateDocumentRequest(id=document.id))
    assert response.document.version == 1


async def test_soft_delete_and_restore(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    deleted = await stub.delete_document(DeleteDocumentRequest(id=document.id))
    assert deleted.success

    await expect_status(stub.get_document(GetDocumentRequest(id=document.id)), Status.NOT_FOUND)
    await expect_status(
        stub.update_document(UpdateDocumentRequest(id=document.id, title=unique())),
        Status.NOT_FOUND,
    )
    await expect_status(
        stub.delete_document(DeleteDocumentRequest(id=document.id)), Status.NOT_FOUND
    )

    restored = await stub.restore_document(RestoreDocumentRequest(id=document.id))
    assert not restored.is_deleted and restored.deleted_at == ""
    assert restored.version == 3  # create, delete, restore
    assert (await stub.get_document(GetDocumentRequest(id=document.id))).document == restored

    await expect_status(
        stub.restore_document(RestoreDocumentRequest(id=document.id)), Status.FAILED_PRECONDITION
    )
    await expect_status(
        stub.restore_document(RestoreDocumentRequest(id=str(uuid.uuid4()))), Status.NOT_FOUND
    )


async def test_delete_unknown_and_malformed(stub: DocumentServiceStub) -> None:
    await expect_status(
        stub.delete_document(DeleteDocumentRequest(id=str(uuid.uuid4()))), Status.NOT_FOUND
    )
    await expect_status(
        stub.delete_document(DeleteDocumentRequest(id="nope")), Status.INVALID_ARGUMENT
    )


async def test_create_with_request_id_is_idempotent(stub: DocumentServiceStub) -> None:
    request = CreateDocumentRequest(title=unique(), author=unique(), request_id=unique("req"))
    first = await stub.create_document(request)
    again = await stub.create_document(request)
    assert again.id == first.id and again.version == 1
    other = await stub.create_document(
        CreateDocumentRequest(title=request.title, author=request.author)
    )
    assert other.id != first.id
