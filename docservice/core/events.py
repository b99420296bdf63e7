"""The change feed's two methods: ListDocumentEvents (pages) and WatchDocuments (a stream).

Both read the log through `Feed` (core/feed.py) and filter each event on the document at that
version, in memory. A filtered read still advances over the events it skipped: a page says
where it stopped (its resume token), and a watcher whose filter matched nothing for a while
gets a heartbeat carrying the token of where the feed stands, so that it resumes from there
and not from its last match.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from docservice._proto.document import (
    Document,
    DocumentEvent,
    ListDocumentEventsRequest,
    ListDocumentEventsResponse,
    WatchDocumentsRequest,
    WatchDocumentsResponse,
)
from docservice.core import page_tokens
from docservice.core.errors import InvalidArgument, NotFound
from docservice.core.feed import (
    BATCH,
    Feed,
    FeedEvent,
    FeedPosition,
    Watchers,
    decode_token,
    encode_token,
    event_message,
)
from docservice.core.filtering import matches, parse_filter
from docservice.core.page_tokens import PageTokens
from docservice.core.repository import DocumentRepository

__all__ = ["DocumentEvents"]

# A page reads at most this many events of the log, however few the filter keeps.
MAX_SCANNED_PER_PAGE = 4 * BATCH


class DocumentEvents:
    def __init__(
        self,
        repository: DocumentRepository,
        feed: Feed,
        tokens: PageTokens,
        watchers: Watchers,
        *,
        default_page_size: int,
        max_page_size: int,
        heartbeat_seconds: float,
    ) -> None:
        self._repository = repository
        self._feed = feed
        self._tokens = tokens
        self._watchers = watchers
        self._default_page_size = default_page_size
        self._max_page_size = max_page_size
        self._heartbeat_seconds = heartbeat_seconds

    async def list(self, request: ListDocumentEventsRequest) -> ListDocumentEventsResponse:
        if request.page_size < 0:
            raise InvalidArgument.of("page_size", "must not be negative")
        size = min(request.page_size or self._default_page_size, self._max_page_size)
        where = parse_filter(request.filter, by_id=True)
        position = await self._feed.position()
        query_print = page_tokens.fingerprint("events", repr(where), request.include_document)
        if request.page_token:
            cursor = self._page_position(request.page_token, query_print, position)
        elif request.resume_token:
            cursor = decode_token(request.resume_token, position)
        else:
            cursor = 0
        events: list[DocumentEvent] = []
        scanned = 0
        while len(events) < size and scanned < MAX_SCANNED_PER_PAGE:
            page = await self._repository.events(cursor, BATCH)
            through = page.through
            for event in page.events:
                if matches(where, event.document):
                    events.append(await self._message(position.log_id, event, request))
                    if len(events) == size:
                        through = event.sequence
                        break
            scanned += len(page.events)
            if through == cursor or not page.events:
                cursor = max(cursor, through)
                break  # the settled end of the log
            cursor = through
        more = cursor < position.head
        token = self._tokens.encode(query_print, [position.log_id, cursor]) if more else ""
        return ListDocumentEventsResponse(
            events=events,
            next_page_token=token,
            resume_token=encode_token(position.log_id, cursor),
        )

    def _page_position(self, token: str, query_print: str, position: FeedPosition) -> int:
        found = self._tokens.decode(token, query_print)
        if (
            len(found) == 2
            and found[0] == position.log_id
            and type(found[1]) is int
            and 0 <= found[1] <= position.head
        ):
            return int(found[1])
        raise InvalidArgument.of(page_tokens.FIELD, "is not a valid page token")

    async def watch(self, request: WatchDocumentsRequest) -> AsyncIterator[WatchDocumentsResponse]:
        """First a heartbeat with the token the stream starts from; then the events after the
        resume token (none: from now), then live ones; a heartbeat after `heartbeat_seconds`
        without a message. Ends when the feed closes (server shutdown)."""
        where = parse_filter(request.filter, by_id=True)
        position = await self._feed.position()
        if request.resume_token:
            cursor = decode_token(request.resume_token, position)
        else:
            cursor = position.head
        log_id = position.log_id
        with self._watchers.one():
            # At once: where the stream starts (a client may keep it before any event comes).
            yield WatchDocumentsResponse(resume_token=encode_token(log_id, cursor))
            last_sent = time.monotonic()
            while not self._feed.closed:
                wait = max(0.0, last_sent + self._heartbeat_seconds - time.monotonic())
                page = await self._feed.after(cursor, wait, where)
                for event in page.events:
                    if matches(where, event.document):
                        message = await self._message(log_id, event, request)
                        yield WatchDocumentsResponse(
                            event=message, resume_token=message.resume_token
                        )
                        last_sent = time.monotonic()
                cursor = max(cursor, page.through)
                if time.monotonic() - last_sent >= self._heartbeat_seconds:
                    yield WatchDocumentsResponse(resume_token=encode_token(log_id, cursor))
                    last_sent = time.monotonic()
            # Shutting down: say where the feed stands, so the client resumes elsewhere.
            yield WatchDocumentsResponse(resume_token=encode_token(log_id, cursor))

    async def _message(
        self,
        log_id: str,
        event: FeedEvent,
        request: ListDocumentEventsRequest | WatchDocumentsRequest,
    ) -> DocumentEvent:
        document: Document | None = None
        if request.include_document:
            snapshot = await self._repository.version(event.document.id, event.document.version)
            if snapshot is None:  # the log and the history are one: this cannot be
                raise NotFound(f"version {event.document.version} of {event.document.id}")
            document = snapshot.decode()
        return event_message(log_id, event, document)
