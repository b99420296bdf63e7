"""Who changed what, on every backend: the audit trail of each version, DiffDocumentVersions
and BlameDocument through the real gRPC server (with JWT on, the token's subject is recorded)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from grpclib.client import Channel
from grpclib.const import Status

from docservice._proto.document import (
    BlameDocumentRequest,
    ChangeKind,
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DiffDocumentVersionsRequest,
    DiffDocumentVersionsResponse,
    DiffHunk,
    DiffLine,
    Document,
    DocumentServiceStub,
    DocumentStatus,
    DocumentVersion,
    FieldChange,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    LineKind,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    UpdateDocumentRequest,
)
from tests.support.apps import running_app
from tests.support.backends import BACKENDS, backend_settings
from tests.support.contract import expect_status, unique, violated_fields

SECRET = "audit-test-secret-that-is-long-enough-0123456789"
EQUAL, REMOVED, ADDED = LineKind.EQUAL, LineKind.REMOVED, LineKind.ADDED


def as_actor(name: str) -> dict[str, str]:
    return {"x-actor": name}


async def history(stub: DocumentServiceStub, document_id: str) -> list[DocumentVersion]:
    request = GetDocumentVersionsRequest(id=document_id, page_size=100)
    return (await stub.get_document_versions(request)).versions


async def diff(stub: DocumentServiceStub, document_id: str, **fields: Any) -> Any:
    return await stub.diff_document_versions(DiffDocumentVersionsRequest(id=document_id, **fields))


async def edit(stub: DocumentServiceStub, document_id: str, actor: str, **fields: Any) -> Document:
    request = UpdateDocumentRequest(id=document_id, **fields)
    return (await stub.update_document(request, metadata=as_actor(actor))).document


def lines(text: str) -> str:
    return "".join(f"{line}\n" for line in text.split())


# -- the audit trail ---------------------------------------------------------------------------


async def test_every_write_kind_records_its_kind_actor_and_message(
    stub: DocumentServiceStub,
) -> None:
    created = await stub.create_document(
        CreateDocumentRequest(title="t", author="a", content="one", change_message="first draft"),
        metadata=as_actor("ann"),
    )
    await edit(stub, created.id, "bob", content="two", change_message="typo")
    await stub.delete_document(
        DeleteDocumentRequest(id=created.id, change_message="obsolete"), metadata=as_actor("cy")
    )
    await stub.restore_document(RestoreDocumentRequest(id=created.id), metadata=as_actor("dee"))
    await stub.revert_document(
        RevertDocumentRequest(id=created.id, version=1, change_message="back to the draft"),
        metadata=as_actor("eve"),
    )
    await stub.update_document(UpdateDocumentRequest(id=created.id, content="anonymous"))

    versions = await history(stub, created.id)
    assert [(v.change_kind, v.changed_by, v.change_message, v.reverted_from) for v in versions] == [
        (ChangeKind.CREATED, "ann", "first draft", 0),
        (ChangeKind.UPDATED, "bob", "typo", 0),
        (ChangeKind.DELETED, "cy", "obsolete", 0),
        (ChangeKind.RESTORED, "dee", "", 0),
        (ChangeKind.REVERTED, "eve", "back to the draft", 1),
        (ChangeKind.UPDATED, "", "", 0),
    ]
    assert versions[4].document.content == "one"
    # One version read alone carries the same trail (and, with a cache, so does a cached one).
    for _ in range(2):
        one = await stub.get_document_version(GetDocumentVersionRequest(id=created.id, version=5))
        assert (one.change_kind, one.changed_by, one.reverted_from) == (
            ChangeKind.REVERTED,
            "eve",
            1,
        )


async def test_a_change_message_or_an_actor_too_long_is_refused_naming_it(
    stub: DocumentServiceStub,
) -> None:
    created = await stub.create_document(CreateDocumentRequest(title="t", author="a"))
    error = await expect_status(
        stub.update_document(
            UpdateDocumentRequest(id=created.id, content="x", change_message="m" * 1001)
        ),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["change_message"]
    error = await expect_status(
        stub.update_document(
            UpdateDocumentRequest(id=created.id, content="x"), metadata=as_actor("x" * 257)
        ),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["x-actor"]
    # Nothing was written by the refused calls.
    assert [v.version for v in await history(stub, created.id)] == [1]


# -- diff --------------------------------------------------------------------------------------


async def test_diff_of_known_edits_gives_the_exact_hunks(stub: DocumentServiceStub) -> None:
    old = lines("a b c d e f g h i j k l m n o p")
    new = old.replace("b\n", "B\n").replace("o\n", "o\nnew\n")
    created = await stub.create_document(CreateDocumentRequest(title="t", author="a", content=old))
    await edit(stub, created.id, "bob", content=new)

    found = await diff(stub, created.id)  # defaults: the current version against the one before
    assert (found.id, found.from_version, found.to_version) == (created.id, 1, 2)
    assert found.field_changes == []
    assert found.hunks == [
        DiffHunk(
            old_start=1,
            old_lines=5,
            new_start=1,
            new_lines=5,
            lines=[
                DiffLine(kind=EQUAL, text="a"),
                DiffLine(kind=REMOVED, text="b"),
                DiffLine(kind=ADDED, text="B"),
                DiffLine(kind=EQUAL, text="c"),
                DiffLine(kind=EQUAL, text="d"),
                DiffLine(kind=EQUAL, text="e"),
            ],
        ),
        DiffHunk(
            old_start=13,
            old_lines=4,
            new_start=13,
            new_lines=5,
            lines=[
                *(DiffLine(kind=EQUAL, text=t) for t in "mno"),
                DiffLine(kind=ADDED, text="new"),
                DiffLine(kind=EQUAL, text="p"),
            ],
        ),
    ]
    assert found.unified_diff == (
        f"--- {created.id}@1\n+++ {created.id}@2\n"
        "@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n"
        "@@ -13,4 +13,5 @@\n m\n n\n o\n+new\n p\n"
    )
    # The other way round, the same hunks mirrored.
    back = await diff(stub, created.id, from_version=2, to_version=1)
    assert [(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in back.hunks] == [
        (1, 5, 1, 5),
        (13, 5, 13, 4),
    ]
    assert [line.kind for line in back.hunks[1].lines].count(REMOVED) == 1


async def test_diff_of_metadata_only_changes(stub: DocumentServiceStub) -> None:
    created = await stub.create_document(
        CreateDocumentRequest(
            title="before", author="a", content="same\n", tags=["x", "y"], comments=["c1"]
        )
    )
    await edit(
        stub,
        created.id,
        "bob",
        title="after",
        status=DocumentStatus.PUBLISHED,
        tags=["y", "z"],
        comments=["c1", "c2"],
    )
    found = await diff(stub, created.id, from_version=1, to_version=2)
    assert found.hunks == [] and found.unified_diff == ""
    assert found.field_changes == [
        FieldChange(field="title", old_value="before", new_value="after"),
        FieldChange(field="status", old_value="DRAFT", new_value="PUBLISHED"),
        FieldChange(field="tags", added=["z"], removed=["x"]),
        FieldChange(field="comments", added=["c2"]),
    ]
    await stub.delete_document(DeleteDocumentRequest(id=created.id))
    # A deleted document can still be diffed; the delete shows as is_deleted.
    deleted = await diff(stub, created.id)
    assert (deleted.from_version, deleted.to_version) == (2, 3)
    assert deleted.field_changes == [
        FieldChange(field="is_deleted", old_value="false", new_value="true")
    ]
    # Equal versions: an empty diff.
    same = await diff(stub, created.id, from_version=2, to_version=2)
    assert same == DiffDocumentVersionsResponse(id=created.id, from_version=2, to_version=2)


async def test_diff_of_versions_or_documents_that_do_not_exist(stub: DocumentServiceStub) -> None:
    created = await stub.create_document(CreateDocumentRequest(title="t", author="a"))
    await expect_status(diff(stub, created.id, to_version=9), Status.NOT_FOUND)
    await expect_status(diff(stub, created.id, from_version=5, to_version=1), Status.NOT_FOUND)
    await expect_status(diff(stub, str(uuid.uuid4())), Status.NOT_FOUND)
    error = await expect_status(diff(stub, "not-an-id"), Status.INVALID_ARGUMENT)
    assert violated_fields(error) == ["id"]
    error = await expect_status(diff(stub, created.id, from_version=-1), Status.INVALID_ARGUMENT)
    assert violated_fields(error) == ["from_version"]
    # Version 1 by default: against nothing (an empty document), everything added.
    first = await diff(stub, created.id)
    assert (first.from_version, first.to_version, first.hunks) == (0, 1, [])
    assert [(c.field, c.old_value, c.new_value) for c in first.field_changes] == [
        ("title", "", "t"),
        ("author", "", "a"),
    ]


async def test_a_diff_too_large_for_one_response_is_refused_not_cut(
    stub: DocumentServiceStub,
) -> None:
    rng = random.Random(3)
    mebibyte = "".join(f"{rng.getrandbits(64):016x}\n" for _ in range(1024 * 1024 // 17))
    other = "".join(f"{rng.getrandbits(64):016x}\n" for _ in range(1024 * 1024 // 17))
    created = await stub.create_document(
        CreateDocumentRequest(title="t", author="a", content=mebibyte)
    )
    await edit(stub, created.id, "bob", content=other)  # every line replaced
    await edit(stub, created.id, "bob", content=other.replace(other[:17], "first\n"))
    error = await expect_status(diff(stub, created.id, to_version=2), Status.RESOURCE_EXHAUSTED)
    assert "closer together" in (error.message or "")
    small = await diff(stub, created.id)  # 2 -> 3: one line
    assert [(h.old_lines, h.new_lines) for h in small.hunks] == [(4, 4)]
    # Few changed lines, but so many hunks that their context lines outweigh the limit.
    blocks = [f"{n:016x}\na\na\na\nX\na\na\n" for n in range(30_000)]
    sparse = await stub.create_document(
        CreateDocumentRequest(title="t", author="a", content="".join(blocks))
    )
    await edit(stub, sparse.id, "bob", content="".join(b.replace("X", "Y") for b in blocks))
    await expect_status(diff(stub, sparse.id), Status.RESOURCE_EXHAUSTED)


async def test_a_blame_too_large_for_one_response_is_refused(stub: DocumentServiceStub) -> None:
    distinct = [f"{n:05x}\n" for n in range(150_000)]
    created = await stub.create_document(
        CreateDocumentRequest(title="t", author="a", content="".join(distinct))
    )
    every_other = [line if n % 2 else "z" + line for n, line in enumerate(distinct)]
    await edit(stub, created.id, "bob", content="".join(every_other))
    error = await expect_status(
        stub.blame_document(BlameDocumentRequest(id=created.id)), Status.RESOURCE_EXHAUSTED
    )
    assert "ranges" in (error.message or "")


# -- blame -------------------------------------------------------------------------------------


async def test_blame_attributes_each_line_after_edits_a_revert_a_delete_and_a_restore(
    stub: DocumentServiceStub,
) -> None:
    created = await stub.create_document(
        CreateDocumentRequest(title="t", author="a", content=lines("one two three")),
        metadata=as_actor("ann"),
    )
    await edit(stub, created.id, "bob", content=lines("one TWO three four"))  # v2
    await edit(stub, created.id, "cy", content=lines("zero one TWO three four"))  # v3
    await stub.delete_document(DeleteDocumentRequest(id=created.id), metadata=as_actor("dee"))
    await stub.restore_document(RestoreDocumentRequest(id=created.id), metadata=as_actor("eve"))
    await stub.revert_document(  # v6: back to v2's content
        RevertDocumentRequest(id=created.id, version=2), metadata=as_actor("fay")
    )
    blame = await stub.blame_document(BlameDocumentRequest(id=created.id))
    assert blame.version == 6
    spans = [(r.start_line, r.line_count, r.version, r.changed_by) for r in blame.ranges]
    # v2 -> v6 differs from v5 (= v3's content) only by the removed "zero": every other line
    # stays attributed to the version that last changed it.
    assert spans == [(1, 1, 1, "ann"), (2, 1, 2, "bob"), (3, 1, 1, "ann"), (4, 1, 2, "bob")]
    assert blame.ranges[1].change_kind == ChangeKind.UPDATED
    at_3 = await stub.blame_document(BlameDocumentRequest(id=created.id, version=3))
    assert [(r.start_line, r.line_count, r.version) for r in at_3.ranges] == [
        (1, 1, 3),
        (2, 1, 1),
        (3, 1, 2),
        (4, 1, 1),
        (5, 1, 2),
    ]
    stamps = {v.version: v.timestamp for v in await history(stub, created.id)}
    assert [r.timestamp for r in at_3.ranges] == [stamps[r.version] for r in at_3.ranges]
    await expect_status(
        stub.blame_document(BlameDocumentRequest(id=created.id, version=7)), Status.NOT_FOUND
    )
    await expect_status(
        stub.blame_document(BlameDocumentRequest(id=str(uuid.uuid4()))), Status.NOT_FOUND
    )


async def test_blame_groups_consecutive_lines_of_one_version(stub: DocumentServiceStub) -> None:
    created = await stub.create_document(
        CreateDocumentRequest(title="t", author="a", content=lines("a b c d")),
        metadata=as_actor("ann"),
    )
    await edit(stub, created.id, "bob", content=lines("a x y c d"))
    blame = await stub.blame_document(BlameDocumentRequest(id=created.id))
    spans = [(r.start_line, r.line_count, r.version) for r in blame.ranges]
    assert spans == [(1, 1, 1), (2, 2, 2), (4, 2, 1)]
    # A version's blame never changes: asked again after more edits, the same answer (the
    # server keeps recent ones), and the current version's is the new one.
    await edit(stub, created.id, "cy", content=lines("a x c d"))
    again = await stub.blame_document(BlameDocumentRequest(id=created.id, version=2))
    assert again == blame
    now = await stub.blame_document(BlameDocumentRequest(id=created.id))
    assert [(r.line_count, r.version) for r in now.ranges] == [(1, 1), (1, 2), (2, 1)]
    error = await expect_status(
        stub.blame_document(BlameDocumentRequest(id=created.id, version=-1)),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["version"]


async def test_blame_of_an_empty_document_has_no_ranges(stub: DocumentServiceStub) -> None:
    created = await stub.create_document(CreateDocumentRequest(title="t", author="a"))
    blame = await stub.blame_document(BlameDocumentRequest(id=created.id))
    assert (blame.version, blame.ranges) == (1, [])


# -- with JWT on: the subject is recorded, a header cannot pretend otherwise --------------------


@pytest.fixture(scope="module", params=BACKENDS)
async def jwt_stub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DocumentServiceStub]:
    tmp = tmp_path_factory.mktemp(f"audit-{request.param.replace('+', '-')}")
    settings = backend_settings(request.param, tmp, request, auth_jwt_secret=SECRET)
    async with running_app(settings):
        channel = Channel("127.0.0.1", settings.grpc_port)
        try:
            yield DocumentServiceStub(channel)
        finally:
            channel.close()


def token_of(subject: str) -> dict[str, str]:
    claims = {
        "sub": subject,
        "exp": int(time.time()) + 300,
        "scope": "documents:read documents:write",
    }
    return {"authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def test_with_jwt_on_two_subjects_editing_one_document_are_each_recorded(
    jwt_stub: DocumentServiceStub,
) -> None:
    alice, bob = token_of("alice@example.com"), token_of("bob@example.com")
    created = await jwt_stub.create_document(
        CreateDocumentRequest(title=unique(), author="a", content=lines("one two")),
        metadata=alice,
    )
    # A client cannot set who it is: the x-actor header is ignored when auth is on.
    await jwt_stub.update_document(
        UpdateDocumentRequest(id=created.id, content=lines("one TWO")),
        metadata={**bob, "x-actor": "mallory"},
    )
    await jwt_stub.update_document(
        UpdateDocumentRequest(id=created.id, content=lines("ONE TWO")), metadata=alice
    )
    request = GetDocumentVersionsRequest(id=created.id, page_size=10)
    versions = (await jwt_stub.get_document_versions(request, metadata=bob)).versions
    assert [v.changed_by for v in versions] == [
        "alice@example.com",
        "bob@example.com",
        "alice@example.com",
    ]
    blame = await jwt_stub.blame_document(BlameDocumentRequest(id=created.id), metadata=bob)
    assert [(r.version, r.changed_by) for r in blame.ranges] == [
        (3, "alice@example.com"),
        (2, "bob@example.com"),
    ]
