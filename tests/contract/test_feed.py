"""The change feed (ListDocumentEvents, WatchDocuments) on every backend. Other tests write to
the same stores, so each test follows only documents of an author of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from google.rpc import error_details_pb2
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import (
    ChangeKind,
    DeleteDocumentRequest,
    DocumentEvent,
    DocumentServiceStub,
    ListDocumentEventsRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    UpdateDocumentRequest,
    WatchDocumentsRequest,
    WatchDocumentsResponse,
)
from tests.support.contract import create, expect_status, unique, violated_fields

WRITERS = 50
DEADLINE = 30.0


async def events_of(stub: DocumentServiceStub, where: str, **fields: Any) -> list[DocumentEvent]:
    """Every event matching `where`, following next_page_token to the end (from the start of
    the feed, or from `resume_token` when given)."""
    found: list[DocumentEvent] = []
    token = ""
    for _ in range(10_000):
        if token:
            fields.pop("resume_token", None)
        response = await stub.list_document_events(
            ListDocumentEventsRequest(filter=where, page_token=token, page_size=7, **fields)
        )
        found += response.events
        token = response.next_page_token
        if not token:
            return found
    raise AssertionError("the pages never ended")


@asynccontextmanager
async def watching(
    channel: Channel, **fields: Any
) -> AsyncIterator[tuple[asyncio.Queue[WatchDocumentsResponse], asyncio.Event]]:
    """A WatchDocuments stream read into a queue; the event is set once the stream is open
    (its first message sent is not awaited: the server answers with headers at once)."""
    messages: asyncio.Queue[WatchDocumentsResponse] = asyncio.Queue()
    opened = asyncio.Event()

    async def read() -> None:
        stub = DocumentServiceStub(channel)
        async with stub.channel.request(
            "/document.DocumentService/WatchDocuments",
            Cardinality.UNARY_STREAM,
            WatchDocumentsRequest,
            WatchDocumentsResponse,
        ) as stream:
            await stream.send_message(WatchDocumentsRequest(**fields), end=True)
            await stream.recv_initial_metadata()
            opened.set()
            async for message in stream:
                await messages.put(message)

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(opened.wait(), DEADLINE)
        yield messages, opened
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, GRPCError):
            await task


async def next_events(
    messages: asyncio.Queue[WatchDocumentsResponse], count: int
) -> list[DocumentEvent]:
    """The next `count` events of a stream (heartbeats passed over)."""
    found: list[DocumentEvent] = []
    while len(found) < count:
        message = await asyncio.wait_for(messages.get(), DEADLINE)
        if message.event is not None:
            found.append(message.event)
    return found


async def test_every_write_is_one_event_in_order(
    stub: DocumentServiceStub, channel: Channel
) -> None:
    start = await _head(channel)
    author = unique("feed")
    document = await create(stub, title="first", author=author, content="one")
    await stub.update_document(UpdateDocumentRequest(id=document.id, content="two"))
    await stub.delete_document(DeleteDocumentRequest(id=document.id))
    await stub.restore_document(RestoreDocumentRequest(id=document.id))
    await stub.revert_document(RevertDocumentRequest(id=document.id, version=1))
    events = await events_of(
        stub, f'author = "{author}"', include_document=True, resume_token=start
    )
    assert [e.kind for e in events] == [
        ChangeKind.CREATED,
        ChangeKind.UPDATED,
        ChangeKind.DELETED,
        ChangeKind.RESTORED,
        ChangeKind.REVERTED,
    ]
    assert [e.version for e in events] == [1, 2, 3, 4, 5]
    assert [e.event_id for e in events] == [f"{document.id}@{v}" for v in range(1, 6)]
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    assert [e.document.content for e in events] == ["one", "two", "two", "two", "one"]
    assert events[2].document.is_deleted and not events[3].document.is_deleted
    # Without include_document, no document; resuming after the second event gives the rest.
    plain = await events_of(stub, f'author = "{author}"', resume_token=start)
    assert all(e.document is None for e in plain)
    rest = await events_of(stub, f'author = "{author}"', resume_token=events[1].resume_token)
    assert [e.event_id for e in rest] == [e.event_id for e in events[2:]]


async def test_filters_on_the_document_at_each_event(
    stub: DocumentServiceStub, channel: Channel
) -> None:
    start = await _head(channel)
    author = unique("feed")
    tagged = await create(stub, title="t", author=author, tags=["red"], content="x")
    other = await create(stub, title="o", author=author, tags=["blue"], content="x")
    await stub.update_document(UpdateDocumentRequest(id=other.id, tags=["red", "green"]))
    red = await events_of(stub, f'author = "{author}" AND tags:"red"', resume_token=start)
    assert [(e.document_id, e.version) for e in red] == [(tagged.id, 1), (other.id, 2)]
    by_id = await events_of(stub, f'id = "{other.id}"', resume_token=start)
    assert [e.version for e in by_id] == [1, 2]
    none = await events_of(stub, f'author = "{author}" AND version > 2', resume_token=start)
    assert none == []


async def test_bad_filters_and_tokens_are_refused(stub: DocumentServiceStub) -> None:
    error = await expect_status(
        stub.list_document_events(ListDocumentEventsRequest(filter="colour = red")),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["filter"]
    error = await expect_status(
        stub.list_document_events(ListDocumentEventsRequest(resume_token="nonsense")),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["resume_token"]
    error = await expect_status(
        stub.list_document_events(ListDocumentEventsRequest(page_token="nonsense")),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["page_token"]


async def test_tokens_of_another_log_or_ahead_of_it_name_the_earliest(
    stub: DocumentServiceStub, channel: Channel
) -> None:
    await create(stub, title="t", author=unique("feed"), content="x")
    head = (await stub.list_document_events(ListDocumentEventsRequest(page_size=1))).resume_token
    prefix, log_id, _ = head.split(".")
    earliest = f"{prefix}.{log_id}.0"
    for token in (f"{prefix}.{'0' * 32}.5", f"{prefix}.{log_id}.{2**62}"):
        for call in (
            stub.list_document_events(ListDocumentEventsRequest(resume_token=token)),
            _first_message(channel, resume_token=token),
        ):
            error = await expect_status(call, Status.FAILED_PRECONDITION)
            assert earliest in str(error.message)
            assert _earliest_of(error) == earliest


async def _first_message(channel: Channel, **fields: Any) -> WatchDocumentsResponse | None:
    async with channel.request(
        "/document.DocumentService/WatchDocuments",
        Cardinality.UNARY_STREAM,
        WatchDocumentsRequest,
        WatchDocumentsResponse,
        timeout=DEADLINE,
    ) as stream:
        await stream.send_message(WatchDocumentsRequest(**fields), end=True)
        message = await stream.recv_message()
        await stream.cancel()  # else leaving the block waits for the stream's end
        return message


def _earliest_of(error: GRPCError) -> str:
    for detail in error.details or []:
        if isinstance(detail, error_details_pb2.PreconditionFailure):
            return str(detail.violations[0].subject)
    raise AssertionError(f"no PreconditionFailure in {error.details!r}")


async def test_watch_delivers_every_concurrent_write_once_in_order(
    stub: DocumentServiceStub, channel: Channel
) -> None:
    """WRITERS writers at once, two watchers (one from now, one resuming from a token taken
    before): each sees every acknowledged write exactly once, in strictly increasing order,
    and the same order as the pages of ListDocumentEvents."""
    author = unique("feed")
    start = await _head(channel)
    where = f'author = "{author}"'
    async with (
        watching(channel, filter=where) as (live, _),
        watching(channel, filter=where, resume_token=start) as (resumed, _),
    ):
        shared = await create(stub, title="shared", author=author, content="0")

        async def write(i: int) -> tuple[str, int]:
            if i % 2:
                made = await create(stub, title=f"w{i}", author=author, content=str(i))
                return made.id, made.version
            response = await stub.update_document(
                UpdateDocumentRequest(id=shared.id, content=f"writer {i}"), timeout=DEADLINE
            )
            assert response.document is not None
            return response.document.id, response.document.version

        written = set(await asyncio.gather(*(write(i) for i in range(WRITERS))))
        written.add((shared.id, 1))
        for messages in (live, resumed):
            events = await next_events(messages, len(written))
            assert {(e.document_id, e.version) for e in events} == written
            sequences = [e.sequence for e in events]
            assert sequences == sorted(set(sequences))
            assert messages.empty() or all(
                m.event is None for m in [messages.get_nowait() for _ in range(messages.qsize())]
            )
        listed = await events_of(stub, where, resume_token=start)
        assert [e.sequence for e in listed] == sequences


async def _head(channel: Channel) -> str:
    """The resume token of where the feed stands now: a watch's first message."""
    message = await _first_message(channel)
    assert message is not None and message.event is None
    return message.resume_token


async def test_pages_are_complete_and_say_where_they_stopped(
    stub: DocumentServiceStub, channel: Channel
) -> None:
    start = await _head(channel)
    author = unique("feed")
    made = [await create(stub, title=f"p{i}", author=author, content="x") for i in range(16)]
    events = await events_of(stub, f'author = "{author}"', resume_token=start)
    assert [e.document_id for e in events] == [d.id for d in made]
    first = await stub.list_document_events(
        ListDocumentEventsRequest(filter=f'author = "{author}"', page_size=5, resume_token=start)
    )
    assert [e.document_id for e in first.events] == [d.id for d in made[:5]]
    assert first.resume_token == first.events[-1].resume_token
    second = await stub.list_document_events(
        ListDocumentEventsRequest(filter=f'author = "{author}"', page_token=first.next_page_token)
    )
    assert second.events[0].document_id == made[5].id
    # A page token is bound to its filter.
    error = await expect_status(
        stub.list_document_events(
            ListDocumentEventsRequest(filter="author = someone", page_token=first.next_page_token)
        ),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["page_token"]
