"""request_id (AIP-155): a retry gets the original result; a key reused for another request is
refused, naming request_id, and creates nothing."""

from __future__ import annotations

from grpclib.const import Status

from docservice._proto.document import (
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DocumentServiceStub,
    DocumentStatus,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice._proto.google.protobuf import FieldMask
from tests.support.contract import expect_status, unique, violated_fields


def request(**fields: object) -> CreateDocumentRequest:
    values: dict[str, object] = {
        "title": "t",
        "author": unique("author"),
        "content": "body",
        "tags": ["a", "b"],
        "request_id": unique("req"),
        **fields,
    }
    return CreateDocumentRequest(**values)  # type: ignore[arg-type]


async def count(stub: DocumentServiceStub, author: str) -> int:
    listed = await stub.list_documents(ListDocumentsRequest(author=author, show_deleted=True))
    return len(listed.documents)


async def test_the_same_request_again_gets_the_original_document(
    stub: DocumentServiceStub,
) -> None:
    first = request()
    created = await stub.create_document(first)
    assert await stub.create_document(first) == created
    # Tags are de-duplicated before comparing, as they are before storing.
    again = await stub.create_document(request(**{**_fields(first), "tags": ["a", "b", "a"]}))
    assert again == created
    assert await count(stub, first.author) == 1


async def test_a_reused_key_with_other_fields_is_refused(stub: DocumentServiceStub) -> None:
    first = request()
    created = await stub.create_document(first)
    for changed in (
        {"title": "other"},
        {"author": unique("someone-else")},
        {"content": "body!"},
        {"tags": ["b", "a"]},
        {"status": DocumentStatus.PUBLISHED},
        {"comments": ["c"]},
        {"category": "x"},
    ):
        reused = request(**{**_fields(first), **changed})
        error = await expect_status(stub.create_document(reused), Status.INVALID_ARGUMENT)
        assert violated_fields(error) == ["request_id"]
        assert created.id in (error.message or "")
        assert await count(stub, reused.author) == (1 if reused.author == first.author else 0)


async def test_a_retry_after_later_changes_gets_the_document_as_created(
    stub: DocumentServiceStub,
) -> None:
    first = request()
    created = await stub.create_document(first)
    updated = await stub.update_document(
        UpdateDocumentRequest(id=created.id, title="new", update_mask=FieldMask(paths=["title"]))
    )
    assert updated.document.version == 2
    assert await stub.create_document(first) == created  # version 1, as the first call returned
    await stub.delete_document(DeleteDocumentRequest(id=created.id))
    replay = await stub.create_document(first)
    assert replay == created and not replay.is_deleted  # the original result, not the state now
    assert await count(stub, first.author) == 1


def _fields(message: CreateDocumentRequest) -> dict[str, object]:
    return {
        name: getattr(message, name)
        for name in ("title", "author", "content", "tags", "request_id", "status", "comments")
    }
