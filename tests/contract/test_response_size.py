"""Responses stay within what a default gRPC client accepts (4 MiB): pages that can carry a
next_page_token end early; a legacy request that cannot is refused, never silently cut."""

from __future__ import annotations

import asyncio

import grpc
from grpclib.const import Status

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    GetDocumentVersionsRequest,
    GetDocumentVersionsResponse,
    ListDocumentsRequest,
    ListDocumentsResponse,
    UpdateDocumentRequest,
)
from docservice.app import App
from tests.support.contract import expect_status, unique

DEFAULT_CLIENT_LIMIT = 4 * 1024 * 1024
KB = 1000


async def many(stub: DocumentServiceStub, author: str, count: int, size: int) -> list[str]:
    async def one(n: int) -> str:
        request = CreateDocumentRequest(title=f"t{n}", author=author, content="x" * size)
        return (await stub.create_document(request)).id

    ids: list[str] = []
    for start in range(0, count, 20):
        ids += await asyncio.gather(*(one(n) for n in range(start, min(count, start + 20))))
    return ids


async def test_a_page_of_large_documents_ends_early(stub: DocumentServiceStub) -> None:
    author = unique("big")
    ids = await many(stub, author, 100, 50 * KB)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stub.list_documents(
            ListDocumentsRequest(author=author, page_size=100, page_token=token)
        )
        assert len(bytes(page)) <= DEFAULT_CLIENT_LIMIT
        assert page.documents, "a page always holds at least one document"
        seen += [d.id for d in page.documents]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert pages == 2  # 5 MB in all: one short page, then the rest


async def test_a_legacy_list_too_large_is_refused_not_cut(stub: DocumentServiceStub) -> None:
    author = unique("legacy")
    await many(stub, author, 100, 50 * KB)
    error = await expect_status(
        stub.list_documents(ListDocumentsRequest(author=author, limit=100)),
        Status.RESOURCE_EXHAUSTED,
    )
    assert "page_size" in (error.message or "") and "limit" in (error.message or "")
    fine = await stub.list_documents(ListDocumentsRequest(author=author, limit=50))
    assert len(fine.documents) == 50 and len(bytes(fine)) <= DEFAULT_CLIENT_LIMIT


async def test_a_history_of_large_versions(stub: DocumentServiceStub) -> None:
    author = unique("history")
    [doc_id] = await many(stub, author, 1, 1_000_000)
    for n in range(4):
        await stub.update_document(UpdateDocumentRequest(id=doc_id, content=f"{n}" * 1_000_000))
    # page_size 0 is every legacy client: it cannot page on, so it is refused, not cut.
    error = await expect_status(
        stub.get_document_versions(GetDocumentVersionsRequest(id=doc_id)),
        Status.RESOURCE_EXHAUSTED,
    )
    assert "page_size" in (error.message or "")
    versions: list[int] = []
    token = ""
    while True:
        page = await stub.get_document_versions(
            GetDocumentVersionsRequest(id=doc_id, page_size=10, page_token=token)
        )
        assert len(bytes(page)) <= DEFAULT_CLIENT_LIMIT and page.versions
        versions += [v.version for v in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert versions == [1, 2, 3, 4, 5]


async def test_a_stock_grpcio_client_reads_every_page(app: App, stub: DocumentServiceStub) -> None:
    """grpcio enforces its default 4 MiB receive limit on its own side."""
    author = unique("grpcio")
    await many(stub, author, 12, 1_000_000)
    target = f"{app.settings.grpc_host}:{app.settings.grpc_port}"
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/document.DocumentService/ListDocuments",
            request_serializer=bytes,
            response_deserializer=ListDocumentsResponse.parse,
        )
        token, count = "", 0
        while True:
            page = await call(ListDocumentsRequest(author=author, page_size=5, page_token=token))
            count += len(page.documents)
            token = page.next_page_token
            if not token:
                break
        history = channel.unary_unary(
            "/document.DocumentService/GetDocumentVersions",
            request_serializer=bytes,
            response_deserializer=GetDocumentVersionsResponse.parse,
        )
        listed = await stub.list_documents(ListDocumentsRequest(author=author, page_size=1))
        first = listed.documents[0]
        assert (await history(GetDocumentVersionsRequest(id=first.id, page_size=5))).versions
    assert count == 12
