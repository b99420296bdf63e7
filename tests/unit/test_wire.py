"""Every response grpc.wire builds by hand equals betterproto2's encoding of the same message."""

from __future__ import annotations

import pytest

from docservice._proto.document import (
    ChangeKind,
    Document,
    DocumentStatus,
    GetDocumentResponse,
    GetDocumentVersionsResponse,
    ListDocumentsResponse,
    SearchDocumentsResponse,
    SearchResult,
    Snippet,
    TextMatch,
)
from docservice.core.model import version_message
from docservice.core.repository import Change, SearchHit, Snapshot
from docservice.grpc import wire

SIZES = [0, 1, 127, 128, 16_384, 2**21]


def document(content_length: int, version: int = 3) -> Document:
    return Document(
        id="6f0c0000-0000-4000-8000-000000000000",
        title="t",
        content="é" * content_length,
        status=DocumentStatus.PUBLISHED,
        tags=["a", "b"],
        created_at="2026-11-26T10:00:00.000000Z",
        updated_at="2026-11-26T10:00:00.123456Z",
        version=version,
        etag='"x"',
    )


@pytest.mark.parametrize("content_length", SIZES)
def test_get_document_response(content_length: int) -> None:
    doc = document(content_length)
    expected = bytes(GetDocumentResponse(document=doc))
    assert wire.get_document_response(bytes(doc)) == expected


@pytest.mark.parametrize(
    ("count", "token", "total"), [(0, "", 0), (1, "", 1), (3, "tok", 300), (130, "t" * 200, 2**31)]
)
def test_list_documents_response(count: int, token: str, total: int) -> None:
    docs = [document(i * 50, version=i + 1) for i in range(count)]
    expected = bytes(ListDocumentsResponse(documents=docs, next_page_token=token, total_size=total))
    built = wire.list_documents_response([bytes(d) for d in docs], token, total)
    assert built == expected


CHANGES = [
    Change(),
    Change(ChangeKind.CREATED, "alice", ""),
    Change(ChangeKind.REVERTED, "b" * 300, "why: \u00e9\U0001f600", reverted_from=2**40),
    Change(ChangeKind(99), "", "", 0),  # a kind this build does not know keeps its number
]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("version", [1, 127, 128, 2**40])
def test_document_version(version: int, change: Change) -> None:
    snapshot = Snapshot.of(document(300, version=version), change)
    assert wire.document_version(snapshot) == bytes(version_message(snapshot))


SNIPPETS = [
    (),
    (Snippet(field="title", text="a b", matches=[TextMatch(start=0, end=1)]),),
    (
        Snippet(field="title", text="é", matches=[TextMatch(start=0, end=1)]),
        Snippet(field="content", text="x y z", matches=[TextMatch(0, 1), TextMatch(4, 5)]),
    ),
]


@pytest.mark.parametrize("score", [0.0, 1e-300, 0.5, 3.25e8, -2.0])
@pytest.mark.parametrize(("count", "token"), [(0, ""), (1, ""), (7, "next")])
def test_search_response(count: int, token: str, score: float) -> None:
    docs = [document(i * 40, version=i + 1) for i in range(count)]
    snippets = [SNIPPETS[i % len(SNIPPETS)] for i in range(count)]
    expected = bytes(
        SearchDocumentsResponse(
            results=[
                SearchResult(document=d, score=score, snippets=list(s))
                for d, s in zip(docs, snippets, strict=True)
            ],
            next_page_token=token,
        )
    )
    hits = [SearchHit(d.id, bytes(d), score, s) for d, s in zip(docs, snippets, strict=True)]
    assert wire.search_response(hits, token) == expected


@pytest.mark.parametrize(("count", "token"), [(0, ""), (1, ""), (40, "next")])
def test_versions_response(count: int, token: str) -> None:
    snapshots = [
        Snapshot.of(document(i, version=i + 1), CHANGES[i % len(CHANGES)]) for i in range(count)
    ]
    expected = bytes(
        GetDocumentVersionsResponse(
            versions=[version_message(s) for s in snapshots], next_page_token=token
        )
    )
    assert wire.versions_response(snapshots, token) == expected


def test_field_numbers_come_from_the_descriptors() -> None:
    assert (wire.LIST_DOCUMENTS, wire.LIST_NEXT_PAGE_TOKEN, wire.LIST_TOTAL_SIZE) == (1, 2, 3)
    assert (wire.VERSION_ID, wire.VERSION_DOCUMENT, wire.VERSION_TIMESTAMP) == (1, 2, 3)
    assert wire.VERSION_NUMBER == 4 and wire.GET_DOCUMENT == 1 and wire.VERSIONS == 1
    audit = (
        wire.VERSION_CHANGED_BY,
        wire.VERSION_CHANGE_KIND,
        wire.VERSION_CHANGE_MESSAGE,
        wire.VERSION_REVERTED_FROM,
    )
    assert audit == (5, 6, 7, 8)
