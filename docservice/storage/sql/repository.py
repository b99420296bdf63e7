"""`SqlDocumentRepository`: documents and their history in SQLite or PostgreSQL.

Writes are compare-and-set: ``UPDATE documents ... WHERE id = :id AND version = :previous``
followed, in the same transaction, by the snapshot insert into `document_versions` (primary key
(document_id, version)). A writer that lost the race updates no row, writes nothing and is told
so; the service reads again and retries. Reads never touch the history table unless asked for it.

Each read and each transaction is one unit of work (units.py): a call cancelled at any await
gives its connection back, and a write cancelled before its COMMIT is rolled back.

Version content is stored as keyframes and deltas (docservice/storage/history.py). The delta
base is the previous version's content, which the writer has in hand, and where that content
sits in its chain (its `Tip`) comes with the writer's fresh read of the document, or is read in
the write transaction: a version's tip never changes, so either is as good.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from docservice._proto.document import Document
from docservice.core.errors import Unavailable
from docservice.core.feed import EventPage, FeedPosition
from docservice.core.model import (
    change_values,
    editable_values,
    format_timestamp,
    parse_timestamp,
    stored_change,
    stored_document,
)
from docservice.core.repository import (
    Change,
    DocumentRepository,
    ListQuery,
    Page,
    SearchHit,
    SearchPage,
    SearchQuery,
    Snapshot,
)
from docservice.storage.history import (
    HistoryPolicy,
    Rebuild,
    StoredContent,
    Tip,
    Tips,
    first_content,
    next_content,
)
from docservice.storage.idempotency import create_once
from docservice.storage.listing import equality_filters, page_of, rows_to_fetch
from docservice.storage.retries import retry_transient
from docservice.storage.sql import feed, search
from docservice.storage.sql.history import CHAIN_BELOW, FRESH_BY_ID, TIP, VERSION, tip_of
from docservice.storage.sql.querying import after_condition, filter_condition, order_columns
from docservice.storage.sql.schema import document_tags, document_versions, documents
from docservice.storage.sql.units import Unit, Units

__all__ = ["SqlDocumentRepository", "create_engine"]

T = TypeVar("T")


def create_engine(url: str) -> AsyncEngine:
    """An async engine tuned for the dialect: WAL and a busy timeout for SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_size=10, max_overflow=10)
        if parsed.get_driver_name() == "asyncpg":
            event.listen(engine.sync_engine, "connect", _notice_gone_clients)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 5})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


# A backend waiting on a lock does not notice that its client has gone. An abandoned statement
# is cancelled (units.py: asyncpg sends a cancel request, which SQLAlchemy's close of the
# connection waits for), but a forced close (its 2 s ran out) drops that request, and the
# backend would wait on, holding a connection slot, until the lock is released. PostgreSQL 14+
# can look at the socket while it waits, every this many ms.
CLIENT_CHECK_INTERVAL_MS = 1000


def _notice_gone_clients(dbapi_connection: Any, _record: Any) -> None:
    async def enable(connection: Any) -> None:
        import asyncpg  # type: ignore[import-untyped]

        if connection.get_server_version().major >= 14:
            with contextlib.suppress(asyncpg.PostgresError):  # not on every platform
                await connection.execute(
                    f"SET client_connection_check_interval = {CLIENT_CHECK_INTERVAL_MS}"
                )

    dbapi_connection.run_async(enable)


# PostgreSQL refusing or dropping connections while it shuts down or starts up (57P01-57P03):
# asyncpg raises these as plain server errors, not as connection errors.
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def is_transient(exc: BaseException) -> bool:
    """Faults worth another try: lost or refused connections, pool timeouts, SQLite locks."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated
        or getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES
        or _lost_connection(exc.orig)
    ):
        return True
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError | OSError)


def _lost_connection(exc: BaseException | None) -> bool:
    """A lost connection under the driver's error: a server restarting resets or closes a
    connection while asyncpg is still opening it (ConnectionDoesNotExistError, with or without
    the socket error as its cause), and SQLAlchemy reports that as the DBAPI's base `Error`."""
    from asyncpg.exceptions import ConnectionDoesNotExistError  # type: ignore[import-untyped]

    while exc is not None:
        if isinstance(exc, OSError | ConnectionDoesNotExistError):
            return True
        exc = exc.__cause__
    return False


_retry = retry_transient(is_transient)

# The hot statements are built once with bound parameters: building `.values(...)` and
# `.where(column == value)` per call costs a visible share of a create's server CPU (SQLAlchemy
# coercions and cache keys).
_BY_ID = select(documents).where(documents.c.id == bindparam("match_id"))
_BY_REQUEST_ID = select(documents).where(documents.c.request_id == bindparam("match_request_id"))
_INSERT_DOCUMENT = insert(documents)
_INSERT_SNAPSHOT = insert(document_versions)
_COMPARE_AND_SET = update(documents).where(
    documents.c.id == bindparam("match_id"), documents.c.version == bindparam("match_version")
)
_VERSIONS = (
    select(document_versions)
    .where(
        document_versions.c.document_id == bindparam("match_id"),
        document_versions.c.version > bindparam("after_version"),
    )
    .order_by(document_versions.c.version)
    .limit(bindparam("page_limit"))
)


class SqlDocumentRepository(DocumentRepository):
    def __init__(
        self,
        engine: AsyncEngine,
        history: HistoryPolicy | None = None,
        search_language: str = "english",
    ) -> None:
        self._engine = engine
        self._search_language = search_language
        # Reads are single statements: in autocommit they cost one round trip, not three
        # (no BEGIN before them, no ROLLBACK when the connection goes back to the pool).
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._units = Units(engine)  # each checkout to give-back in a task of its own
        # SQLite has one writer at a time. Left to its busy handler, waiting writers poll the
        # lock with growing sleeps, and one can lose to newer ones for seconds under load (an
        # update past a 5 s deadline in a CI run); in this process they queue here instead, in
        # order, and the busy timeout is left to writers of other processes. Measured (bench.ab,
        # UpdateDocument, 64 in flight): p99 1 044 -> 568 ms, max 2.7 -> 1.1 s, for 0.90x req/s
        # (a transaction's reads no longer overlap another's writes).
        self._one_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._history = history or HistoryPolicy()
        self._tips = Tips()
        self._counts: Counts = OrderedDict()  # of this database only

    async def get(self, document_id: str, *, fresh: bool = False) -> Document | None:
        if fresh:
            return await self._fetch_fresh(document_id)
        return await self._fetch_document(_BY_ID, {"match_id": document_id})

    @_retry
    async def _fetch_fresh(self, document_id: str) -> Document | None:
        """The document, remembering its version's tip for the write that follows."""
        row = await self._read(lambda conn: _first(conn, FRESH_BY_ID, {"match_id": document_id}))
        if row is None:
            return None
        if row.tip_content_version is not None:
            self._tips.remember(document_id, row.version, tip_of(row))
        return _document(row, row.id, row.version)

    async def get_by_request_id(self, request_id: str) -> Document | None:
        return await self._fetch_document(_BY_REQUEST_ID, {"match_request_id": request_id})

    @_retry
    async def _fetch_document(
        self, statement: Select[Any], params: dict[str, Any]
    ) -> Document | None:
        row = await self._read(lambda conn: _first(conn, statement, params))
        return None if row is None else _document(row, row.id, row.version)

    async def create(self, document: Document, request_id: str, change: Change) -> Document:
        return await create_once(
            document,
            request_id,
            lambda: self._write(
                lambda conn: self._insert_document(conn, document, request_id, change)
            ),
            duplicate=IntegrityError,
            by_request_id=self.get_by_request_id,
        )

    async def save(self, document: Document, previous: Document, change: Change) -> bool:
        # Encoded before the transaction when the tip is known, so that no lock waits on it.
        tip = self._tips.get(previous.id, previous.version)
        planned = None if tip is None else self._next_content(document, previous, tip)

        async def compare_and_set(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                _COMPARE_AND_SET,
                {
                    "match_id": document.id,
                    "match_version": previous.version,
                    "version": document.version,
                    **_content_values(document),
                },
            )
            if result.rowcount != 1:
                return False
            stored = planned
            if stored is None:
                params = {"match_id": previous.id, "match_version": previous.version}
                tip = tip_of((await conn.execute(TIP, params)).one())
                stored = self._next_content(document, previous, tip)
            if document.tags != previous.tags:
                await conn.execute(
                    delete(document_tags).where(document_tags.c.document_id == document.id)
                )
                await _insert_tags(conn, document)
            await _insert_version(conn, document, stored, change)
            return True

        return await self._write(compare_and_set)

    def _next_content(self, document: Document, previous: Document, tip: Tip) -> StoredContent:
        return next_content(
            previous.content, document.content, tip, document.version, self._history
        )

    @_retry
    async def list_page(self, query: ListQuery) -> Page:
        conditions = _filters(query)
        columns = _columns(query.basic)
        stmt = select(*columns).where(*conditions)
        if query.after is not None:
            stmt = stmt.where(after_condition(query.order, query.after))
        stmt = stmt.order_by(*order_columns(query.order))
        stmt = stmt.offset(query.offset).limit(rows_to_fetch(query))

        async def page(conn: AsyncConnection) -> tuple[list[Row[Any]], int]:
            rows = list((await conn.execute(stmt)).all())
            total = await _total_size(conn, conditions, self._counts) if query.count else 0
            return rows, total

        rows, total = await self._read(page)
        return page_of(rows, query, total, _basic_document if query.basic else _full_document)

    @_retry
    async def search_page(self, query: SearchQuery) -> SearchPage:
        conditions = [] if query.where is None else [filter_condition(query.where)]
        postgres = self._engine.dialect.name == "postgresql"
        language = self._search_language if postgres else None
        columns = _columns(query.basic)

        async def page(conn: AsyncConnection) -> tuple[list[Row[Any]], dict[Any, Row[Any]]]:
            ranks = list((await conn.execute(search.ranked(query, conditions, language))).all())
            keys = [rank.key for rank in ranks[: query.limit]]
            if not keys:
                return ranks, {}
            rows = await conn.execute(search.snippets(query.terms, keys, language, columns))
            return ranks, {row.search_key: row for row in rows}

        ranks, rows = await self._read(page)
        to_document = _basic_document if query.basic else _full_document
        hits = [
            SearchHit(rank.id, bytes(to_document(row)), rank.score, search.snippets_of(row))
            for rank in ranks[: query.limit]
            if (row := rows.get(rank.key)) is not None  # else deleted between the statements
        ]
        return SearchPage.of(hits, len(ranks) > query.limit, query.max_bytes)

    async def versions(self, document_id: str, after_version: int, limit: int) -> list[Snapshot]:
        before, rows = await self._fetch_versions(document_id, after_version, limit)
        rebuild = Rebuild(document_id)
        for row in before:
            rebuild.feed(row)
        snapshots = []
        for row in rows:
            rebuild.feed(row)
            document = _document(row, document_id, row.version, rebuild.content(row))
            snapshots.append(Snapshot.of(document, stored_change(row)))
        return snapshots

    @_retry
    async def _fetch_versions(
        self, document_id: str, after_version: int, limit: int
    ) -> tuple[list[Row[Any]], list[Row[Any]]]:
        """A page of rows, and the holders of its first row's chain that come before it."""
        params = {"match_id": document_id, "after_version": after_version, "page_limit": limit}

        async def fetch(conn: AsyncConnection) -> tuple[list[Row[Any]], list[Row[Any]]]:
            rows = list((await conn.execute(_VERSIONS, params)).all())
            before: list[Row[Any]] = []
            if rows and rows[0].content_chain < rows[0].version:
                below = {"match_id": document_id, "match_version": rows[0].version}
                before = sorted((await conn.execute(CHAIN_BELOW, below)).all(), key=_version)
            return before, rows

        return await self._read(fetch)

    async def version(self, document_id: str, version: int) -> Snapshot | None:
        rows = await self._fetch_version(document_id, version)
        if not rows:
            return None
        content = Rebuild(document_id).contents(rows, version)
        row = rows[-1]
        return Snapshot.of(_document(row, document_id, version, content), stored_change(row))

    @_retry
    async def _fetch_version(self, document_id: str, version: int) -> list[Row[Any]]:
        params = {"match_id": document_id, "match_version": version}
        rows = await self._read(lambda conn: _all(conn, VERSION, params))
        return sorted(rows, key=_version)

    @_retry
    async def feed_position(self) -> FeedPosition:
        return await self._read(feed.position)

    @_retry
    async def events(self, after: int, limit: int) -> EventPage:
        return await self._read(lambda conn: feed.events_after(conn, after, limit))

    async def migrate(self) -> None:
        from docservice.storage.sql.migrate import upgrade

        await upgrade(self._engine)
        async with self._engine.begin() as conn:
            await search.ensure_index(conn, self._search_language)

    @_retry
    async def ping(self) -> None:
        await self._read(lambda conn: conn.scalar(select(1)))

    async def close(self) -> None:
        await self._engine.dispose()

    async def _read(self, statements: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `statements` on an autocommit connection, as one unit (units.py)."""
        return await self._units.run(self._reader, lambda conn, _unit: statements(conn))

    @_retry
    async def _write(self, change: Callable[[AsyncConnection], Awaitable[bool]]) -> bool:
        """Run `change` in a transaction; commit if it returns True, else roll back.

        Faults before the commit are retried (nothing was written). A fault during the commit
        leaves the outcome unknown, so it is reported as Unavailable and never retried. A call
        cancelled before the commit rolls back (units.py).
        """

        async def transaction(conn: AsyncConnection, unit: Unit) -> bool:
            if self._one_writer is None:
                return await in_transaction(conn, unit)
            async with self._one_writer:  # held by the unit's task, to its end (units.py)
                if unit.abandoned:  # its caller left while it waited: nothing to do
                    raise asyncio.CancelledError
                return await in_transaction(conn, unit)

        async def in_transaction(conn: AsyncConnection, unit: Unit) -> bool:
            transaction = await conn.begin()
            outcome = await change(conn)
            unit.uninterrupted()
            if not outcome or unit.abandoned:
                await transaction.rollback()
                return outcome
            try:
                await transaction.commit()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                raise Unavailable("the document store failed while committing") from exc
            return outcome

        return await self._units.run(self._engine, transaction)

    @staticmethod
    async def _insert_document(
        conn: AsyncConnection, document: Document, request_id: str, change: Change
    ) -> bool:
        await conn.execute(
            _INSERT_DOCUMENT,
            {
                "id": document.id,
                "version": document.version,
                "request_id": request_id or None,
                **_content_values(document),
            },
        )
        await _insert_tags(conn, document)
        await _insert_version(
            conn, document, first_content(document.content, document.version), change
        )
        return True


# total_size is exact up to this many matches; above it an estimate (AIP-158 allows one), so
# that the first page of a huge set costs no more than of a small one: PostgreSQL's planner
# estimate, or on SQLite, which has none, an exact count at most COUNT_TTL_SECONDS old.
EXACT_TOTAL_UP_TO = 1000
COUNT_TTL_SECONDS = 5.0
COUNTS_KEPT = 256
# SQLite's recent exact counts, by statement and values: (when counted, count).
Counts = OrderedDict[tuple[str, tuple[str, ...]], tuple[float, int]]


async def _total_size(
    conn: AsyncConnection, conditions: list[ColumnElement[bool]], counts: Counts
) -> int:
    matching = select(documents.c.id).where(*conditions)
    bounded = matching.limit(EXACT_TOTAL_UP_TO + 1).subquery()
    total = await conn.scalar(select(func.count()).select_from(bounded)) or 0
    if total <= EXACT_TOTAL_UP_TO:
        return total
    # The statement with its values as bound parameters (never as SQL text).
    compiled = matching.compile(dialect=conn.dialect)
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    if conn.dialect.name == "postgresql":
        plan = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", params)
        estimate = int(plan.scalar_one()[0]["Plan"]["Plan Rows"])
        return min(max(estimate, total), 2**31 - 1)
    key = (compiled.string, tuple(repr(p) for p in params))
    now = time.monotonic()
    kept = counts.get(key)
    if kept is not None and now - kept[0] < COUNT_TTL_SECONDS:
        return kept[1]
    exact = await conn.scalar(select(func.count()).select_from(matching.subquery())) or 0
    counts[key] = (now, exact)
    counts.move_to_end(key)
    if len(counts) > COUNTS_KEPT:
        counts.popitem(last=False)
    return exact


async def _first(conn: AsyncConnection, statement: Select[Any], params: dict[str, Any]) -> Any:
    return (await conn.execute(statement, params)).first()


async def _all(
    conn: AsyncConnection, statement: Executable, params: dict[str, Any]
) -> list[Row[Any]]:
    return list((await conn.execute(statement, params)).all())


async def _insert_version(
    conn: AsyncConnection, document: Document, stored: StoredContent, change: Change
) -> None:
    """The version row, numbered in the change feed: the transaction's last statement, so
    that the feed's counter is held as briefly as can be (storage/sql/feed.py)."""
    values = _snapshot_values(document, stored, change)
    values["sequence"] = await feed.next_sequence(conn)
    await conn.execute(_INSERT_SNAPSHOT, values)


async def _insert_tags(conn: AsyncConnection, document: Document) -> None:
    if document.tags:
        await conn.execute(
            insert(document_tags),
            [{"document_id": document.id, "tag": tag} for tag in document.tags],
        )


def _filters(query: ListQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if not query.show_deleted:
        conditions.append(documents.c.deleted_at.is_(None))
    conditions += [documents.c[name] == value for name, value in equality_filters(query).items()]
    if query.tag:
        conditions.append(
            exists().where(
                document_tags.c.document_id == documents.c.id, document_tags.c.tag == query.tag
            )
        )
    if query.where is not None:
        conditions.append(filter_condition(query.where))
    return conditions


def _content_values(document: Document) -> dict[str, Any]:
    return {
        **editable_values(document),
        "created_at": parse_timestamp(document.created_at),
        "updated_at": parse_timestamp(document.updated_at),
        "deleted_at": parse_timestamp(document.deleted_at) if document.deleted_at else None,
    }


def _snapshot_values(document: Document, stored: StoredContent, change: Change) -> dict[str, Any]:
    values = _content_values(document)
    del values["content"]
    return {
        "document_id": document.id,
        "version": document.version,
        **values,
        **stored.fields(),
        **change_values(change),
    }


# The BASIC view (AIP-157) reads neither: they are what makes a document large.
BASIC_OMITS = frozenset({"content", "comments"})


def _columns(basic: bool) -> list[Any]:
    """The columns of `documents` a page reads: all, or those of the BASIC view."""
    return [c for c in documents.c if not (basic and c.name in BASIC_OMITS)]


def _basic_document(row: Row[Any]) -> Document:
    return _document(_Basic(row), row.id, row.version, "")


class _Basic:
    """A row of the BASIC view, read as a full one (no content, no comments)."""

    comments: tuple[str, ...] = ()

    def __init__(self, row: Row[Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def _full_document(row: Row[Any]) -> Document:
    return _document(row, row.id, row.version)


def _version(row: Row[Any]) -> int:
    return int(row.version)


def _document(
    row: Row[Any] | _Basic, document_id: str, version: int, content: str | None = None
) -> Document:
    return stored_document(
        document_id,
        version,
        row,
        created_at=format_timestamp(row.created_at),
        updated_at=format_timestamp(row.updated_at),
        deleted_at=format_timestamp(row.deleted_at) if row.deleted_at is not None else "",
        content=content,
    )
