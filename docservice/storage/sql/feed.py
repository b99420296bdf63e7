"""The change feed in the SQL stores: the history is the log, numbered by one counter.

Protocol. Every write transaction, after its other statements, takes the next number from the
one row of `document_feed` (``UPDATE ... SET head = head + 1 RETURNING head``) and inserts its
version row with it as `sequence`; then it commits. The UPDATE holds the counter row's lock
until the transaction ends, so:

- numbers are handed out in commit order: a writer waits for the previous holder to commit or
  roll back before it takes the next one (on SQLite the database's one write lock does the
  same). A reader that sees sequence n committed therefore sees every lower one: no event can
  commit below an event already read, which is what lets a watcher advance safely (on
  PostgreSQL a plain sequence would not: B can commit 11 before A commits 10);
- a write that rolls back also rolls back its number: the sequence has no holes;
- `head` is the last committed number. A reader reads it first, then the rows up to it: all of
  them are committed and visible.

Cost: writers to one database serialize from taking the number to their commit (one statement
and the commit); the benchmark in BENCHMARKS.md measures UpdateDocument with and without it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from docservice._proto.document import Document, DocumentStatus
from docservice.core.feed import EventPage, FeedEvent, FeedPosition
from docservice.core.model import etag_for, format_timestamp, stored_change
from docservice.storage.sql.schema import document_feed, document_versions

__all__ = ["events_after", "next_sequence", "position"]

_NEXT = (
    update(document_feed)
    .where(document_feed.c.id == 1)
    .values(head=document_feed.c.head + 1)
    .returning(document_feed.c.head)
)
_POSITION = select(document_feed.c.log_id, document_feed.c.head).where(document_feed.c.id == 1)
_COLUMNS = [
    c
    for c in document_versions.c
    if c.name not in ("comments",) and not c.name.startswith("content_")
]
_EVENTS = (
    select(*_COLUMNS)
    .where(
        document_versions.c.sequence > bindparam("after"),
        document_versions.c.sequence <= bindparam("head"),
    )
    .order_by(document_versions.c.sequence)
    .limit(bindparam("page_limit"))
)


async def next_sequence(conn: AsyncConnection) -> int:
    """The next number, its lock held until the caller's transaction ends."""
    return int((await conn.execute(_NEXT)).scalar_one())


async def position(conn: AsyncConnection) -> FeedPosition:
    row = (await conn.execute(_POSITION)).one()
    return FeedPosition(row.log_id, int(row.head))


async def events_after(conn: AsyncConnection, after: int, limit: int) -> EventPage:
    head = (await position(conn)).head
    params = {"after": after, "head": head, "page_limit": limit}
    rows = (await conn.execute(_EVENTS, params)).all()
    events = [_event(row) for row in rows]
    through = events[-1].sequence if len(events) == limit else max(after, head)
    return EventPage(events, through)


def _event(row: Row[Any]) -> FeedEvent:
    document = Document(
        id=row.document_id,
        title=row.title,
        status=DocumentStatus(row.status),
        author=row.author,
        tags=list(row.tags),
        category=row.category,
        created_at=format_timestamp(row.created_at),
        updated_at=format_timestamp(row.updated_at),
        is_deleted=row.deleted_at is not None,
        deleted_at=format_timestamp(row.deleted_at) if row.deleted_at is not None else "",
        version=row.version,
        etag=etag_for(row.document_id, row.version),
    )
    return FeedEvent(int(row.sequence), document, stored_change(row))
