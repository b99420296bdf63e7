"""The change feed: one event per acknowledged write, in the deployment's one total order.

The store keeps the log (each write appends exactly one version, and the version row carries
the event's `sequence`, written by the same transaction or crash-safe protocol as the change;
how each store keeps the order free of gaps is written up beside it: storage/sql/feed.py,
storage/mongo/feed.py). The store answers one question, `events(after, limit)`: the settled
events after a sequence, and how far it has read (`through`), so that a reader never passes a
sequence that could still commit.

`Feed` (one per process) follows that log and wakes the watchers:

- one follower task reads new events once for everyone, after a local write nudges it or every
  `poll_seconds` (writes made through other processes); it keeps the newest events in a
  bounded buffer, so live watchers read memory, not the store;
- a watcher behind the buffer (resuming from an old token, or too slow to keep up) reads the
  store itself, a batch at a time, at its own pace: nothing is queued per watcher, and the
  memory a watcher holds is one batch, whatever its lag.

Resume tokens name the log (`log_id`, made when the store's feed was first set up) and a
sequence: "after this event". A token of another log (another deployment, or a store built
anew) or ahead of the log (a store restored from an older backup, whose sequences would be
reused) cannot be resumed: FailedPrecondition, naming the earliest valid token. The log is the
history, which is never pruned, so no token ages out.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from docservice._proto.document import Document, DocumentEvent
from docservice.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from docservice.core.filtering import Node, matches
from docservice.core.repository import Change, DocumentRepository

__all__ = [
    "EventPage",
    "Feed",
    "FeedEvent",
    "FeedPosition",
    "Watchers",
    "decode_token",
    "encode_token",
    "event_message",
]

log = logging.getLogger(__name__)

TOKEN_PREFIX = "r1"
BATCH = 256


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One write: its place in the order, and the version it made (the document without its
    content and comments: what filters need; the full version is read when asked for)."""

    sequence: int
    document: Document
    change: Change


@dataclass(frozen=True, slots=True)
class EventPage:
    """Settled events after a sequence, in order; `through`: where the next read starts (the
    last event's sequence, or further when the read reached the settled end of the log)."""

    events: list[FeedEvent]
    through: int


@dataclass(frozen=True, slots=True)
class FeedPosition:
    log_id: str
    head: int  # the last settled sequence (0: an empty log)


def encode_token(log_id: str, sequence: int) -> str:
    return f"{TOKEN_PREFIX}.{log_id}.{sequence}"


def decode_token(token: str, position: FeedPosition, field: str = "resume_token") -> int:
    """The sequence `token` resumes after. InvalidArgument naming `field` if it is no token;
    FailedPrecondition if it cannot be resumed here (see the module docstring)."""
    prefix, _, rest = token.partition(".")
    log_id, _, number = rest.partition(".")
    if prefix != TOKEN_PREFIX or not log_id or not (number.isascii() and number.isdigit()):
        raise InvalidArgument.of(field, "is not a resume token")
    sequence = int(number)
    earliest = encode_token(position.log_id, 0)
    if log_id != position.log_id:
        raise FeedUnavailable(
            f"{field} belongs to another event log (another deployment, or a store built "
            f"anew); the earliest valid token is {earliest}",
            earliest,
        )
    if sequence > position.head:
        raise FeedUnavailable(
            f"{field} is ahead of the event log, which ends at {position.head} (a store "
            f"restored from an older backup?); the earliest valid token is {earliest}",
            earliest,
        )
    return sequence


class FeedUnavailable(FailedPrecondition):
    """A resume token that cannot be resumed; `earliest` is the earliest valid one."""

    def __init__(self, message: str, earliest: str) -> None:
        super().__init__(message)
        self.earliest = earliest


def event_message(log_id: str, event: FeedEvent, document: Document | None = None) -> DocumentEvent:
    return DocumentEvent(
        event_id=f"{event.document.id}@{event.document.version}",
        sequence=event.sequence,
        kind=event.change.kind,
        document_id=event.document.id,
        version=event.document.version,
        timestamp=event.document.updated_at,
        changed_by=event.change.by,
        document=document,
        resume_token=encode_token(log_id, event.sequence),
    )


class Watchers:
    """Counts open watch streams; refuses one beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        if self.count >= self.limit:
            raise ResourceExhausted(f"the server already has {self.limit} open watch streams")
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1


class Feed:
    """Follows the store's event log for this process (see the module docstring)."""

    def __init__(
        self, repository: DocumentRepository, poll_seconds: float, buffered: int = 4096
    ) -> None:
        self._repository = repository
        self._poll_seconds = poll_seconds
        self._buffer: deque[FeedEvent] = deque()
        self._buffered = buffered
        # The buffer holds every event in (floor, through].
        self._floor = 0
        self._through = 0
        self._ready = asyncio.Event()  # set once the follower knows where the log stands
        self._waiters: set[_Waiter] = set()
        self._nudged = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failed = False

    async def start(self) -> None:
        """Follow the log from where it stands (found by the follower, so that a store that
        is down at start-up delays the feed, not the server)."""
        self._task = asyncio.create_task(self._follow(), name="docservice feed")

    def close(self) -> None:
        """End every watcher's wait (they end their streams) and have the follower stop after
        the read it may be making: not cancelled inside it, which on PostgreSQL means
        cancelling the statement on the server and closing the connection, slowly. Returns
        at once; `wait_closed` waits for the follower."""
        self._closed = True
        self._notify()
        self._nudged.set()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task

    @property
    def closed(self) -> bool:
        return self._closed

    async def position(self) -> FeedPosition:
        """The log and its settled head, read from the store (never behind what a write
        acknowledged before this call made)."""
        return await self._repository.feed_position()

    def nudge(self) -> None:
        """A write through this process was acknowledged: read the log now."""
        self._nudged.set()

    async def after(
        self, sequence: int, wait_seconds: float, where: Node | None = None
    ) -> EventPage:
        """The events after `sequence`, at most BATCH: from the buffer when it covers them,
        else from the store. With none yet, waits up to `wait_seconds` for one that `where`
        matches (the events it skips come with the next call)."""
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait_seconds)
            if not self._ready.is_set():
                return EventPage([], sequence)
        if sequence < self._floor:
            return await self._repository.events(sequence, BATCH)
        page = self._buffered_after(sequence)
        if page.events or self._closed:
            return page
        if self._through <= sequence:
            # Woken by the follower only for an event the filter matches, so that idle
            # watchers cost a filter check per event, not a wake-up. (An Event: waiting on it
            # is safe to cancel, as a watcher's client may go away at any time.)
            waiter = _Waiter(where)
            self._waiters.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_seconds):
                        await waiter.woken.wait()
            finally:
                self._waiters.discard(waiter)
        if sequence < self._floor:
            return await self._repository.events(sequence, BATCH)
        return self._buffered_after(sequence)

    def _buffered_after(self, sequence: int) -> EventPage:
        first = bisect.bisect_right(self._buffer, sequence, key=_sequence)  # it is in order
        events = list(itertools.islice(self._buffer, first, first + BATCH))
        through = events[-1].sequence if len(events) == BATCH else max(sequence, self._through)
        return EventPage(events, through)

    async def _follow(self) -> None:
        while not self._closed:
            try:
                position = await self._repository.feed_position()
                break
            except Exception:  # the store is down: watchers wait, and this tries again
                self._failing("could not find the event log")
                await asyncio.sleep(self._poll_seconds)
        else:
            return
        self._floor = self._through = position.head
        self._ready.set()
        while not self._closed:
            try:
                page = await self._repository.events(self._through, BATCH)
            except Exception:  # the store is down: watchers wait, and this tries again
                self._failing("could not read the event log")
                page = EventPage([], self._through)
            else:
                if self._failed:
                    log.info("the change feed reads the event log again")
                self._failed = False
            if page.through > self._through:
                self._extend(page)
                self._notify(page.events)
                if len(page.events) == BATCH:
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self._poll_seconds)
            self._nudged.clear()

    def _notify(self, events: list[FeedEvent] | None = None) -> None:
        """Wake the waiting watchers that one of `events` concerns (None: every one)."""
        for waiter in self._waiters:
            if events is None or any(matches(waiter.where, e.document) for e in events):
                waiter.woken.set()

    def _failing(self, problem: str) -> None:
        """Log the first failure of an outage (with its cause), not every poll's."""
        if not self._failed:
            log.warning("the change feed %s; retrying", problem, exc_info=True)
        self._failed = True

    def _extend(self, page: EventPage) -> None:
        for event in page.events:
            if len(self._buffer) >= self._buffered:
                self._floor = self._buffer.popleft().sequence
            self._buffer.append(event)
        self._through = page.through
        if not self._buffer:
            self._floor = page.through


def _sequence(event: FeedEvent) -> int:
    return event.sequence


class _Waiter:
    """A watcher waiting for an event its filter matches."""

    __slots__ = ("where", "woken")

    def __init__(self, where: Node | None) -> None:
        self.where = where
        self.woken = asyncio.Event()
