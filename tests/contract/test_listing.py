"""ListDocuments through the real gRPC server: order, filters, paging, legacy skip/limit.

The database is shared by every test and never truncated, so each test lists only documents
it made, selected by a fresh random author, tag or category.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from typing import Any

from grpclib.const import Status

from docservice._proto.document import (
    ChangeKind,
    DeleteDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentStatus,
    ListDocumentsRequest,
    ListDocumentsResponse,
    RestoreDocumentRequest,
    UpdateDocumentRequest,
)
from docservice.app import App
from docservice.core.model import etag_for, format_timestamp, utc_now
from docservice.core.repository import Change
from tests.support.contract import create, expect_status, unique, violated_fields


async def create_many(stub: DocumentServiceStub, count: int, **fields: Any) -> list[Document]:
    return list(await asyncio.gather(*(create(stub, **fields) for _ in range(count))))


async def list_docs(stub: DocumentServiceStub, **fields: Any) -> ListDocumentsResponse:
    return await stub.list_documents(ListDocumentsRequest(**fields))


async def walk(stub: DocumentServiceStub, page_size: int, **filters: Any) -> list[list[str]]:
    """Every page's ids, following next_page_token until it is empty."""
    pages: list[list[str]] = []
    token = ""
    while True:
        response = await list_docs(stub, page_size=page_size, page_token=token, **filters)
        pages.append([d.id for d in response.documents])
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 100, "paging does not terminate"


def order_key(document: Document) -> tuple[str, str]:
    return document.updated_at, document.id


def ids(documents: list[Document]) -> list[str]:
    return [d.id for d in documents]


async def test_most_recently_updated_first(stub: DocumentServiceStub) -> None:
    author = unique("author")
    first = await create(stub, author=author)
    second = await create(stub, author=author)
    third = await create(stub, author=author)
    listed = (await list_docs(stub, author=author)).documents
    assert ids(listed) == [third.id, second.id, first.id]

    await stub.update_document(UpdateDocumentRequest(id=first.id, content="touched"))
    listed = (await list_docs(stub, author=author)).documents
    assert ids(listed) == [first.id, third.id, second.id]
    assert listed[0].content == "touched" and listed[0].version == 2


async def test_order_is_updated_at_then_id_descending(stub: DocumentServiceStub) -> None:
    author = unique("author")
    created = await create_many(stub, 30, author=author)
    listed = (await list_docs(stub, author=author, page_size=100)).documents
    assert sorted(ids(listed)) == sorted(ids(created))
    # Concurrent creates may share a timestamp; those ties must come by id, descending.
    assert [order_key(d) for d in listed] == sorted(map(order_key, created), reverse=True)


async def test_ties_on_updated_at_go_by_id_descending_across_pages(
    app: App, stub: DocumentServiceStub
) -> None:
    # Clients cannot make two documents share a timestamp, so seed them through the repository.
    author, moment = unique("author"), format_timestamp(utc_now())
    tied = [str(uuid.uuid4()) for _ in range(4)]
    for document_id in tied:
        document = Document(
            id=document_id,
            title=unique("title"),
            author=author,
            created_at=moment,
            updated_at=moment,
            version=1,
            etag=etag_for(document_id, 1),
        )
        await app.repository.create(document, "", Change(ChangeKind.CREATED))
    expected = sorted(tied, reverse=True)
    listed = (await list_docs(stub, author=author)).documents
    assert ids(listed) == expected
    assert {d.updated_at for d in listed} == {moment}
    pages = await walk(stub, 1, author=author)
    assert [i for page in pages for i in page] == expected


async def test_pages_cover_the_filtered_set_exactly_once(stub: DocumentServiceStub) -> None:
    author = unique("author")
    created = await create_many(stub, 7, author=author)
    await create_many(stub, 2)  # other authors: must not show up
    expected = ids(sorted(created, key=order_key, reverse=True))

    pages = await walk(stub, 3, author=author)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == expected


async def test_last_full_page_has_no_next_token(stub: DocumentServiceStub) -> None:
    author = unique("author")
    await create_many(stub, 6, author=author)
    pages = await walk(stub, 3, author=author)
    assert [len(page) for page in pages] == [3, 3]  # no trailing empty page


async def test_total_size_counts_the_whole_filtered_set(stub: DocumentServiceStub) -> None:
    author = unique("author")
    await create_many(stub, 5, author=author)
    response = await list_docs(stub, author=author, page_size=2)
    assert len(response.documents) == 2
    assert response.total_size == 5
    second = await list_docs(stub, author=author, page_size=2, page_token=response.next_page_token)
    assert second.total_size == 5
    assert (await list_docs(stub, author=unique("nobody"))).total_size == 0


async def test_filter_by_status(stub: DocumentServiceStub) -> None:
    author = unique("author")
    draft = await create(stub, author=author, status=DocumentStatus.DRAFT)
    published = await create(stub, author=author, status=DocumentStatus.PUBLISHED)
    archived = await create(stub, author=author, status=DocumentStatus.ARCHIVED)
    for status, document in [
        (DocumentStatus.DRAFT, draft),  # DRAFT is 0: the filter has presence, so it still counts
        (DocumentStatus.PUBLISHED, published),
        (DocumentStatus.ARCHIVED, archived),
    ]:
        response = await list_docs(stub, author=author, status=status)
        assert ids(response.documents) == [document.id]
        assert response.total_size == 1
    assert (await list_docs(stub, author=author)).total_size == 3  # no status: no filter


async def test_filter_by_author(stub: DocumentServiceStub) -> None:
    author = unique("author")
    mine = await create_many(stub, 3, author=author)
    await create(stub, author=unique("author"))
    listed = (await list_docs(stub, author=author)).documents
    assert sorted(ids(listed)) == sorted(ids(mine))
    assert all(d.author == author for d in listed)


async def test_filter_by_tag_follows_tag_changes(stub: DocumentServiceStub) -> None:
    tag = unique("tag")
    tagged = await create(stub, tags=["common", tag])
    also = await create(stub, tags=[tag])
    await create(stub, tags=["common", unique("tag")])
    listed = (await list_docs(stub, tag=tag)).documents
    assert sorted(ids(listed)) == sorted([tagged.id, also.id])

    await stub.update_document(UpdateDocumentRequest(id=also.id, tags=["something-else"]))
    assert ids((await list_docs(stub, tag=tag)).documents) == [tagged.id]


async def test_filter_by_category(stub: DocumentServiceStub) -> None:
    category = unique("cat")
    in_category = await create_many(stub, 2, category=category)
    await create(stub, category=unique("cat"))
    listed = (await list_docs(stub, category=category)).documents
    assert sorted(ids(listed)) == sorted(ids(in_category))


async def test_filters_combine(stub: DocumentServiceStub) -> None:
    author, category = unique("author"), unique("cat")
    wanted = await create(stub, author=author, category=category, status=DocumentStatus.PUBLISHED)
    await create(stub, author=author, category=category)
    await create(stub, author=author, status=DocumentStatus.PUBLISHED)
    response = await list_docs(
        stub, author=author, category=category, status=DocumentStatus.PUBLISHED
    )
    assert ids(response.documents) == [wanted.id] and response.total_size == 1


async def test_show_deleted(stub: DocumentServiceStub) -> None:
    author = unique("author")
    kept, gone = await create(stub, author=author), await create(stub, author=author)
    await stub.delete_document(DeleteDocumentRequest(id=gone.id))

    live = await list_docs(stub, author=author)
    assert ids(live.documents) == [kept.id] and live.total_size == 1
    everything = await list_docs(stub, author=author, show_deleted=True)
    assert everything.total_size == 2
    assert ids(everything.documents) == [gone.id, kept.id]  # the delete is its latest update
    assert everything.documents[0].is_deleted and everything.documents[0].deleted_at

    await stub.restore_document(RestoreDocumentRequest(id=gone.id))
    assert (await list_docs(stub, author=author)).total_size == 2


async def test_legacy_skip_and_limit(stub: DocumentServiceStub) -> None:
    author = unique("author")
    await create_many(stub, 25, author=author)
    everything = ids((await list_docs(stub, author=author, page_size=100)).documents)
    assert len(everything) == 25

    default = await list_docs(stub, author=author, limit=0)
    assert ids(default.documents) == everything[:20]  # limit 0 means the default of 20
    window = await list_docs(stub, author=author, skip=5, limit=3)
    assert ids(window.documents) == everything[5:8]
    assert window.total_size == 25
    tail = await list_docs(stub, author=author, skip=22, limit=10)
    assert ids(tail.documents) == everything[22:]
    assert ids((await list_docs(stub, author=author, skip=30)).documents) == []


async def test_limit_and_page_size_are_capped_at_100(stub: DocumentServiceStub) -> None:
    author = unique("author")
    for _ in range(3):  # in batches, to keep the concurrent writers reasonable
        await create_many(stub, 35, author=author)
    assert len((await list_docs(stub, author=author, limit=150)).documents) == 100
    response = await list_docs(stub, author=author, page_size=150)
    assert len(response.documents) == 100 and response.next_page_token
    assert response.total_size == 105


async def test_negative_paging_fields_are_rejected(stub: DocumentServiceStub) -> None:
    for field in ("skip", "limit", "page_size"):
        error = await expect_status(list_docs(stub, **{field: -1}), Status.INVALID_ARGUMENT)
        assert violated_fields(error) == [field]


async def test_page_token_from_another_query_is_rejected(stub: DocumentServiceStub) -> None:
    author = unique("author")
    await create_many(stub, 3, author=author)
    token = (await list_docs(stub, author=author, page_size=1)).next_page_token
    assert token
    for other in (
        {"author": unique("author")},
        {"author": author, "status": DocumentStatus.DRAFT},
        {"author": author, "show_deleted": True},
        {"author": author, "tag": unique("tag")},
        {"author": author, "category": unique("cat")},
    ):
        error = await expect_status(
            list_docs(stub, page_size=1, page_token=token, **other), Status.INVALID_ARGUMENT
        )
        assert violated_fields(error) == ["page_token"]
    # The same query still accepts it.
    assert len((await list_docs(stub, author=author, page_size=1, page_token=token)).documents) == 1


async def test_garbage_page_tokens_are_rejected(stub: DocumentServiceStub) -> None:
    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    for token in ("garbage", "!!!", "%%%%", b64("null"), b64("[]"), b64('{"q":"x","p":[]}')):
        error = await expect_status(list_docs(stub, page_token=token), Status.INVALID_ARGUMENT)
        assert violated_fields(error) == ["page_token"], token


async def test_altered_or_rebound_page_tokens_are_rejected(stub: DocumentServiceStub) -> None:
    """Tokens are signed: neither the position nor the query they are bound to can be edited."""
    mine, other = unique("author"), unique("author")
    await create_many(stub, 3, author=mine)
    await create_many(stub, 3, author=other)
    token = (await list_docs(stub, author=mine, page_size=1)).next_page_token
    foreign = (await list_docs(stub, author=other, page_size=1)).next_page_token
    payload, _, mac = token.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    spliced = foreign.partition(".")[0] + "." + mac  # another query's payload, our signature
    for forged, author in ((f"{flipped}.{mac}", mine), (spliced, other), (payload, mine)):
        error = await expect_status(
            list_docs(stub, author=author, page_size=1, page_token=forged),
            Status.INVALID_ARGUMENT,
        )
        assert violated_fields(error) == ["page_token"], forged
    assert len((await list_docs(stub, author=mine, page_size=1, page_token=token)).documents) == 1


async def test_unknown_status_filter_is_rejected(stub: DocumentServiceStub) -> None:
    error = await expect_status(list_docs(stub, status=7), Status.INVALID_ARGUMENT)
    assert violated_fields(error) == ["status"]


async def test_paging_is_stable_under_concurrent_inserts(stub: DocumentServiceStub) -> None:
    author = unique("author")
    originals = ids(await create_many(stub, 9, author=author))
    first = await list_docs(stub, author=author, page_size=2)
    seen = ids(first.documents)
    token = first.next_page_token
    inserted = 0
    while token:
        assert inserted < 2 * len(originals), "paging does not terminate"
        # New matching documents sort first; they must not shift the pages still to come.
        page, *_ = await asyncio.gather(
            list_docs(stub, author=author, page_size=2, page_token=token),
            create(stub, author=author),
            create(stub, author=author),
        )
        seen += ids(page.documents)
        token = page.next_page_token
        inserted += 2
    counts = Counter(seen)
    assert [i for i, n in counts.items() if n > 1] == []
    assert set(originals) <= set(seen)
    assert inserted > 0
    assert (await list_docs(stub, author=author)).total_size == len(originals) + inserted


async def test_deletes_mid_walk_skip_nothing(stub: DocumentServiceStub) -> None:
    author = unique("author")
    await create_many(stub, 8, author=author)
    order = ids((await list_docs(stub, author=author, page_size=100)).documents)
    first = await list_docs(stub, author=author, page_size=3)
    assert ids(first.documents) == order[:3]
    # One document already served and one still to come disappear between pages.
    seen_doomed, unseen_doomed = order[1], order[4]
    for doomed in (seen_doomed, unseen_doomed):
        await stub.delete_document(DeleteDocumentRequest(id=doomed))

    seen = ids(first.documents)
    token = first.next_page_token
    while token:
        assert len(seen) < len(order), "paging does not terminate"
        page = await list_docs(stub, author=author, page_size=3, page_token=token)
        seen += ids(page.documents)
        token = page.next_page_token
    assert seen == [i for i in order if i != unseen_doomed]


async def test_later_pages_carry_the_first_pages_total(stub: DocumentServiceStub) -> None:
    """Only the first page counts the filtered set; its page token carries total_size on, so
    deep pages cost the same however large the set (and the figure stays stable while paging)."""
    author = unique("author")
    await create_many(stub, 5, author=author)
    first = await list_docs(stub, page_size=2, author=author)
    assert first.total_size == 5
    await create(stub, author=author)  # the set grows while the client pages
    second = await list_docs(stub, page_size=2, page_token=first.next_page_token, author=author)
    assert second.total_size == 5
    fresh = await list_docs(stub, page_size=2, author=author)
    assert fresh.total_size == 6


async def test_a_set_over_the_exact_count_bound_gets_an_estimate(
    app: App, stub: DocumentServiceStub
) -> None:
    # Above 1 000 matches total_size may be an estimate (AIP-158): PostgreSQL's planner's, or on
    # SQLite an exact count kept a few seconds; MongoDB counts exactly. Here no write happens in
    # between, so SQLite's count is exact too.
    author = unique("author")
    for _ in range(5):
        await create_many(stub, 201, author=author)
    first = await list_docs(stub, author=author, page_size=10)
    assert len(first.documents) == 10 and first.next_page_token
    if app.settings.db_type == "postgres":
        assert first.total_size >= 1001
    else:
        assert first.total_size == 1005
    again = await list_docs(stub, author=author, page_size=10)
    assert again.total_size == first.total_size
