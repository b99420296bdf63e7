"""Validation limits, update masks and request_id checks through the real gRPC server."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentStatus,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice._proto.google.protobuf import FieldMask
from tests.support.contract import create, expect_status, unique, violated_fields

MIB = 1024 * 1024
EURO = "\u20ac"  # 3 bytes of UTF-8
EMOJI = "\U0001f600"  # 4 bytes of UTF-8


def padded(length: int, prefix: str = "t") -> str:
    """A unique string of exactly `length` characters (length >= 13)."""
    text = unique(prefix)
    return text + "x" * (length - len(text))


async def expect_invalid(call: Awaitable[object], *fields: str) -> GRPCError:
    """INVALID_ARGUMENT whose message and BadRequest details name exactly `fields`."""
    error = await expect_status(call, Status.INVALID_ARGUMENT)
    for field in fields:
        assert field in (error.message or ""), error.message
    assert sorted(violated_fields(error)) == sorted(fields)
    return error


async def get(stub: DocumentServiceStub, document_id: str) -> Document:
    document = (await stub.get_document(GetDocumentRequest(id=document_id))).document
    assert document is not None
    return document


async def update(stub: DocumentServiceStub, request: UpdateDocumentRequest) -> Document:
    document = (await stub.update_document(request)).document
    assert document is not None
    return document


async def reject_create(stub: DocumentServiceStub, *fields: str, **values: Any) -> None:
    """The create fails naming `fields`, and nothing is written."""
    values.setdefault("title", unique("title"))
    values.setdefault("author", unique("author"))
    values.setdefault("category", unique("cat"))
    await expect_invalid(stub.create_document(CreateDocumentRequest(**values)), *fields)
    listed = await stub.list_documents(
        ListDocumentsRequest(
            author=values["author"], category=values["category"], show_deleted=True
        )
    )
    assert listed.documents == [] and listed.total_size == 0


async def reject_update(
    stub: DocumentServiceStub, document: Document, *fields: str, **values: Any
) -> None:
    """The update fails naming `fields`, and the document is unchanged."""
    request = UpdateDocumentRequest(id=document.id, **values)
    await expect_invalid(stub.update_document(request), *fields)
    current = await get(stub, document.id)
    assert current == document


async def test_title_limits(stub: DocumentServiceStub) -> None:
    assert len((await create(stub, title=padded(256))).title) == 256
    assert (await create(stub, title=EURO * 256)).title == EURO * 256  # characters, not bytes
    await reject_create(stub, "title", title=padded(257))
    await reject_create(stub, "title", title="")
    await reject_create(stub, "title", title="  \t ")
    # Nothing visible: zero-width space, joiner, BOM, direction mark.
    await reject_create(stub, "title", title="\u200b\u200d\ufeff\u200e ")
    assert (await create(stub, title="a\u200b")).title == "a\u200b"


async def test_author_limits(stub: DocumentServiceStub) -> None:
    assert (await create(stub, author="a")).author == "a"
    assert len((await create(stub, author=padded(100))).author) == 100
    await reject_create(stub, "author", author=padded(101))
    await reject_create(stub, "author", author="")
    await reject_create(stub, "author", author="   ")
    await reject_create(stub, "author", author="\u2060\u200c")


async def test_content_limit_counts_utf8_bytes(stub: DocumentServiceStub) -> None:
    exactly = EMOJI * (MIB // 4)  # 262 144 characters, 1 MiB of UTF-8
    assert len(exactly.encode()) == MIB
    document = await create(stub, content=exactly)
    fetched = await get(stub, document.id)
    assert fetched.content == exactly

    one_over = EURO * (MIB // 3) + "\u00e9"  # 349 526 characters, 1 MiB + 1 byte
    assert len(one_over.encode()) == MIB + 1 and len(one_over) < MIB
    await reject_create(stub, "content", content=one_over)
    await reject_create(stub, "content", content="a" * (MIB + 1))


async def test_tag_count_limit_applies_after_deduplication(stub: DocumentServiceStub) -> None:
    tags = [f"tag{i}" for i in range(32)]
    assert (await create(stub, tags=tags)).tags == tags
    with_duplicate = [*tags[:5], tags[0], *tags[5:]]  # 33 entries, 32 distinct
    assert (await create(stub, tags=with_duplicate)).tags == tags
    await reject_create(stub, "tags", tags=[*tags, "tag32"])


async def test_tag_length_and_blank_tags(stub: DocumentServiceStub) -> None:
    assert (await create(stub, tags=["a" * 64])).tags == ["a" * 64]
    await reject_create(stub, "tags[2]", tags=["x", "y", "a" * 65])
    await reject_create(stub, "tags[1]", tags=["x", ""])
    await reject_create(stub, "tags[0]", tags=["  "])


async def test_bad_tag_is_named_by_its_request_index(stub: DocumentServiceStub) -> None:
    # The client sent the bad tag at index 2; the duplicate before it must not shift the index.
    await reject_create(stub, "tags[2]", tags=["x", "x", "a" * 65])


async def test_category_limits(stub: DocumentServiceStub) -> None:
    assert len((await create(stub, category=padded(64))).category) == 64
    assert (await create(stub, category="")).category == ""
    await reject_create(stub, "category", category=padded(65))


async def test_comment_limits(stub: DocumentServiceStub) -> None:
    comments = [f"c{i}" for i in range(256)]
    assert (await create(stub, comments=comments)).comments == comments
    await reject_create(stub, "comments", comments=[*comments, "one more"])
    long_comment = "c" * 2000
    assert (await create(stub, comments=["", long_comment])).comments == ["", long_comment]
    await reject_create(stub, "comments[1]", comments=["ok", "c" * 2001])


async def test_unknown_status_is_rejected(stub: DocumentServiceStub) -> None:
    await reject_create(stub, "status", status=DocumentStatus(7))
    document = await create(stub)
    await reject_update(stub, document, "status", status=DocumentStatus(7))
    mask = FieldMask(paths=["status"])
    await reject_update(stub, document, "status", status=DocumentStatus(3), update_mask=mask)


async def test_all_bad_fields_are_reported_together(stub: DocumentServiceStub) -> None:
    await reject_create(
        stub,
        "title",
        "content",
        "tags[1]",
        "comments[0]",
        "status",
        title="",
        content="a" * (MIB + 1),
        tags=["ok", "b" * 65],
        comments=["c" * 2001],
        status=DocumentStatus(9),
    )


async def test_rejected_update_changes_nothing(stub: DocumentServiceStub) -> None:
    document = await create(stub, content="body", tags=["keep"], category="cat")
    await reject_update(stub, document, "title", title=padded(257), content="changed")
    await reject_update(stub, document, "tags", tags=[f"t{i}" for i in range(33)])
    await reject_update(
        stub, document, "category", "comments[0]", category=padded(65), comments=["c" * 2001]
    )
    history = await stub.get_document_versions(GetDocumentVersionsRequest(id=document.id))
    assert [v.version for v in history.versions] == [1]


async def test_mask_changes_exactly_the_named_fields(stub: DocumentServiceStub) -> None:
    document = await create(
        stub,
        content="old",
        tags=["a"],
        category="cat",
        status=DocumentStatus.PUBLISHED,
        comments=["c"],
    )
    request = UpdateDocumentRequest(
        id=document.id,
        title=unique("ignored"),
        content="new",
        tags=["b", "c"],
        category="ignored",
        comments=["ignored"],
        update_mask=FieldMask(paths=["content", "tags"]),
    )
    updated = await update(stub, request)
    assert updated.content == "new" and updated.tags == ["b", "c"]
    assert updated.title == document.title and updated.category == "cat"
    assert updated.comments == ["c"] and updated.status == DocumentStatus.PUBLISHED
    assert updated.author == document.author
    assert updated.version == 2


async def test_mask_clears_named_fields(stub: DocumentServiceStub) -> None:
    document = await create(
        stub, tags=["a", "b"], category="cat", content="body", status=DocumentStatus.ARCHIVED
    )
    mask = FieldMask(paths=["tags", "category", "status"])
    request = UpdateDocumentRequest(id=document.id, update_mask=mask)
    updated = await update(stub, request)
    assert updated.tags == [] and updated.category == ""
    assert updated.status == DocumentStatus.DRAFT
    assert updated.content == "body" and updated.version == 2
    fetched = await get(stub, document.id)
    assert fetched == updated


async def test_unknown_mask_path_is_rejected(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    mask = FieldMask(paths=["title", "no_such_field"])
    await reject_update(stub, document, "update_mask.paths[1]", title=unique(), update_mask=mask)
    mask = FieldMask(paths=["id"])  # not editable
    await reject_update(stub, document, "update_mask.paths[0]", update_mask=mask)


async def test_wildcard_mask_replaces_every_editable_field(stub: DocumentServiceStub) -> None:
    document = await create(
        stub,
        content="old",
        tags=["a"],
        category="cat",
        status=DocumentStatus.PUBLISHED,
        comments=["c"],
    )
    title, author = unique("title"), unique("author")
    request = UpdateDocumentRequest(
        id=document.id, title=title, author=author, update_mask=FieldMask(paths=["*"])
    )
    updated = await update(stub, request)
    assert (updated.title, updated.author) == (title, author)
    assert (updated.content, updated.tags, updated.category, updated.comments) == ("", [], "", [])
    assert updated.status == DocumentStatus.DRAFT
    assert updated.version == 2


async def test_masked_required_fields_cannot_be_cleared(stub: DocumentServiceStub) -> None:
    document = await create(stub)
    await reject_update(stub, document, "title", update_mask=FieldMask(paths=["title"]))
    await reject_update(stub, document, "title", "author", update_mask=FieldMask(paths=["*"]))


async def test_request_id_length(stub: DocumentServiceStub) -> None:
    fields = {"title": unique("title"), "author": unique("author"), "request_id": padded(128, "r")}
    document = await create(stub, **fields)
    assert (await create(stub, **fields)).id == document.id
    await reject_create(stub, "request_id", request_id=padded(129, "req"))
