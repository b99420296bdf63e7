"""`MongoDocumentRepository`: documents and their history in MongoDB, with Beanie 2 on PyMongo's
native asyncio client.

Collections (their models are in models.py): `documents` holds the current state (`_id` = the
UUID string, `version` an int) and the tip of its version's content; `document_versions` holds
append-only snapshots (`_id` = "{id}:{version}", unique on (document_id, version)), their content
as keyframes and deltas (docservice/storage/history.py). Reading a document never loads its
history.

Write protocol, without multi-document transactions (a standalone mongod has none):

1. Repair. A writer that read the document at version p first makes sure snapshot p exists,
   inserting it from the state it read if a crash lost it (a duplicate key means it was there).
   The document carries the tip snapshot p was to have; the repaired snapshot has that tip and
   its content whole (`history.repaired_content`), so it rebuilds the same content in the same
   chain as the lost one would have, whichever of the two was written.
2. Compare-and-set. ``update_one({_id, version: p}, {$set: new state and its tip, version:
   p + 1})``: of concurrent writers exactly one matches; the others match nothing and retry
   from a fresh read. The new tip (and the delta against the content of p, which the writer
   has in hand) is computed before, from the tip of p. The update also sets a `write_id` of
   this write alone, which every snapshot of version p + 1 carries too (the writer's own, or a
   repair's made from the document): a retry after a reply lost in transit that matches nothing
   looks for it on the document, then on snapshot p + 1, and reports success if its first
   attempt applied (never a lost race, which would make the service apply the change twice).
   The document first: it moves past p + 1 only after snapshot p + 1 exists (step 1 of the
   next writer), so if it no longer holds the write_id, the snapshot already does, or the
   write never applied. The search fields (mongo/search.py) travel in the same
   update, so the index needs no step of its own.
3. Append. The winner inserts snapshot p + 1, then acknowledges the write.

Snapshots are only written for versions the document has reached, so none exists above the
document's version. The document never moves past version n before snapshot n exists (step 1),
so a crash between steps 2 and 3 loses nothing: the next writer, or a reader of the history that
finds it short, writes the missing snapshot from the document itself, which is still at exactly
that state. Version numbers are therefore contiguous, never duplicated, never lost; and a delta
is only ever written after its base (a snapshot at or below p), so no crash leaves a delta whose
base is missing.

`migrate` also converts history written before the delta format (full copies) document by
document (mongo/convert.py); an interrupted conversion resumes at the next start.
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections.abc import Coroutine
from typing import Any, NamedTuple

from beanie import SortDirection, init_beanie
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from docservice._proto.document import Document
from docservice.core.feed import EventPage, FeedPosition
from docservice.core.model import stored_change
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
    CONTENT_FIELDS,
    KINDS,
    HistoryPolicy,
    Rebuild,
    StoredContent,
    Tip,
    Tips,
    first_content,
    next_content,
    repaired_content,
)
from docservice.storage.idempotency import create_once
from docservice.storage.listing import equality_filters, page_of, rows_to_fetch
from docservice.storage.mongo.convert import (
    convert_history,
    derive_change_kinds,
    derive_created_us,
    index_for_search,
)
from docservice.storage.mongo.faults import retry
from docservice.storage.mongo.feed import MongoFeed
from docservice.storage.mongo.models import (
    DocumentRecord,
    VersionRecord,
    document_of,
    microseconds,
    stored_fields,
    tip_of,
    version_fields,
    version_id,
)
from docservice.storage.mongo.querying import after_condition, filter_condition, sort_keys
from docservice.storage.mongo.search import SEARCH_FIELDS, Analyzer, Search

__all__ = ["MongoDocumentRepository"]


# Server selection and connection timeouts (MONGO_TIMEOUT_MS) short enough for the retry
# budget (< 2 s in all). The connection timeout is also the socket timeout of the client's
# monitor: a server that takes longer to answer its check is marked down and its pool cleared.
TIMEOUT_MS = 400


# Applied to the methods that each make one round trip (or one read of a page and its count),
# never to the public methods that combine them: a retry never runs inside another.
_retry = retry

# A chain's holders are looked up by _id when its span has at most this many versions.
MAX_SPAN_IDS = 256
CHAIN_FIELDS = ["version", *CONTENT_FIELDS]


class Current(NamedTuple):
    """What `_find_document` reads: the document, the tip of its version's content, the change
    that made it and that change's write_id (None for a create)."""

    document: Document
    tip: Tip | None
    change: Change
    write_id: str | None


class ChainRecord:
    """A holder of a chain as `_find_chain` reads it: the fields `history.Rebuild` needs."""

    __slots__ = tuple(CHAIN_FIELDS)
    version: int
    content_version: int
    content_chain: int
    content_depth: int
    content_bytes: int
    content_checksum: int
    content_kind: int | None
    content_base: int | None
    content_payload: bytes | None

    def __init__(self, raw: dict[str, Any]) -> None:
        for name in CHAIN_FIELDS:
            setattr(self, name, raw.get(name))


def _by_version(record: ChainRecord) -> int:
    return record.version


def _holders(window: list[ChainRecord], record: VersionRecord) -> list[ChainRecord]:
    """The rows of `window` that hold `record`'s chain below it (what `_find_chain` asks)."""
    last = min(record.content_version, record.version - 1)
    return sorted(
        (
            r
            for r in window
            if r.content_chain == record.content_chain
            and r.version <= last
            and r.content_kind in KINDS
        ),
        key=_by_version,
    )


class MongoDocumentRepository(DocumentRepository):
    def __init__(
        self,
        url: str,
        database: str,
        history: HistoryPolicy | None = None,
        search_language: str = "english",
        timeout_ms: int = TIMEOUT_MS,
    ) -> None:
        self._analyzer = Analyzer(search_language)
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            tz_aware=True,
        )
        self._database = database
        self._ready = False
        self._registering = asyncio.Lock()
        self._history = history or HistoryPolicy()
        self._tips = Tips()
        self._feed = MongoFeed(
            lambda: VersionRecord.get_pymongo_collection().database, self._repair_for_feed
        )

    async def migrate(self) -> None:
        """Register the models with Beanie, create the indexes, convert old history."""
        async with self._registering:
            await self._register_models(skip_indexes=False)
            await convert_history(self._client[self._database], self._history)
            await derive_change_kinds(self._client[self._database])
            await derive_created_us(self._client[self._database])
            await index_for_search(self._client[self._database], self._analyzer)
            await self._feed.setup()
            self._ready = True

    async def _ensure_ready(self) -> None:
        """Register the models at the first call; concurrent first calls wait for that one."""
        if self._ready:
            return
        async with self._registering:
            if not self._ready:
                await self._register_models(skip_indexes=True)
                self._ready = True

    # -- the repository: each method combines the single round trips below -----------------

    async def get(self, document_id: str, *, fresh: bool = False) -> Document | None:
        await self._ensure_ready()
        found = await self._find_document(document_id)
        if found is None:
            return None
        document, tip = found.document, found.tip
        if fresh and tip is not None:  # remembered for the write that follows
            self._tips.remember(document_id, document.version, tip)
        return document

    async def get_by_request_id(self, request_id: str) -> Document | None:
        await self._ensure_ready()
        return await self._find_by_request_id(request_id)

    async def create(self, document: Document, request_id: str, change: Change) -> Document:
        await self._ensure_ready()
        stored = first_content(document.content, document.version)
        fields = stored_fields(document, stored.tip, change) | self._analyzer.fields(document)
        record = DocumentRecord(_id=document.id, request_id=request_id or None, **fields)

        async def insert() -> None:
            await self._insert_document(record)
            await self._publish(document, stored, change, None)

        return await create_once(
            document,
            request_id,
            insert,
            duplicate=DuplicateKeyError,
            by_request_id=self._find_by_request_id,
        )

    async def save(self, document: Document, previous: Document, change: Change) -> bool:
        await self._ensure_ready()
        tip = await self._tip(previous)
        if tip is None:
            return False  # the document moved on: the compare-and-set would fail
        await self._repair_snapshot(previous, tip)  # step 1
        stored = next_content(
            previous.content, document.content, tip, document.version, self._history
        )
        fields = self._changed_fields(document, previous, stored.tip, change)
        if not await self._compare_and_set(document, fields, previous.version):
            return False
        await self._publish(document, stored, change, fields["write_id"])
        return True

    def _changed_fields(
        self, document: Document, previous: Document, tip: Tip, change: Change
    ) -> dict[str, Any]:
        """What step 2 sets: the new state, a write_id of this write alone (which a retried
        step 2 looks for), and the search fields if the text changed."""
        fields = stored_fields(document, tip, change) | {"write_id": uuid.uuid4().hex}
        if any(getattr(document, f) != getattr(previous, f) for f in ("title", "tags", "content")):
            fields |= self._analyzer.fields(document)
        return fields

    async def _tip(self, previous: Document) -> Tip | None:
        """The tip of `previous`'s version: remembered from the writer's read, else read again
        (None if the document is no longer at that version)."""
        tip = self._tips.get(previous.id, previous.version)
        if tip is not None:
            return tip
        found = await self._find_document(previous.id)
        if found is None or found.document.version != previous.version:
            return None
        return found.tip

    async def list_page(self, query: ListQuery) -> Page:
        await self._ensure_ready()
        rows, total = await self._find_page(query)
        return page_of(rows, query, total, _listed_document)

    async def search_page(self, query: SearchQuery) -> SearchPage:
        await self._ensure_ready()
        search = self._analyzer.search(query.terms)
        ranked = await self._rank(query, search)
        page = ranked[: query.limit]
        records = await self._find_by_ids([_id for _, _id in page])
        hits = [
            SearchHit(
                _id,
                bytes(_listed_document(dict(record), basic=query.basic)),
                score,
                search.snippets(record),
            )
            for score, _id in page
            if (record := records.get(_id)) is not None  # else gone between the reads
        ]
        return SearchPage.of(hits, len(ranked) > query.limit, query.max_bytes)

    @_retry
    async def _rank(self, query: SearchQuery, search: Search) -> list[tuple[float, str]]:
        """(score, id) of the page's matches and one more, best first, ties by id."""
        conditions = _filters(
            ListQuery(limit=0, show_deleted=query.show_deleted, where=query.where)
        )
        cursor = DocumentRecord.get_pymongo_collection().find(
            {"$and": [conditions, search.condition]}, projection=search.projection
        )
        ranked = [(search.score(row), row["_id"]) async for row in cursor if search.confirms(row)]
        if query.after is not None:
            after = (-query.after[0], query.after[1])
            ranked = [r for r in ranked if (-r[0], r[1]) > after]
        return heapq.nsmallest(query.limit + 1, ranked, key=lambda r: (-r[0], r[1]))

    @_retry
    async def _find_by_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        cursor = DocumentRecord.get_pymongo_collection().find(
            {"_id": {"$in": ids}}, projection=NOT_SEARCH
        )
        return {row["_id"]: row async for row in cursor}

    async def versions(self, document_id: str, after_version: int, limit: int) -> list[Snapshot]:
        await self._ensure_ready()
        records = await self._find_versions(document_id, after_version, limit)
        rebuild = Rebuild(document_id)
        if records and records[0].content_chain < records[0].version:
            first = records[0]
            for held in await self._find_chain(document_id, first, below=first.version):
                rebuild.feed(held)
        history = []
        for record in records:
            rebuild.feed(record)
            document = document_of(record, document_id, rebuild.content(record))
            history.append(Snapshot.of(document, stored_change(record)))
        if len(history) < limit:  # the end of the history: is the newest snapshot missing?
            found = await self._find_document(document_id)
            newest = history[-1].version if history else after_version
            if found is not None and found.document.version == newest + 1 and limit > 0:
                if found.tip is not None:
                    await self._repair_snapshot(found.document, found.tip, found)
                history.append(Snapshot.of(found.document, found.change))
        return history

    async def version(self, document_id: str, version: int) -> Snapshot | None:
        await self._ensure_ready()
        # One round trip for the version and, speculatively, the K + 1 versions below it: the
        # rows that rebuild it are among those unless metadata-only versions stretch its chain
        # further back, and only then does a second lookup fetch the chain.
        first = max(1, version - self._history.max_chain - 1)
        record, window = await self._find_window(document_id, first, version)
        if record is not None:
            rows: list[ChainRecord] = []
            if record.content_kind is None or record.content_chain < record.version:
                if record.content_chain >= first:
                    rows = _holders(window, record)
                else:
                    rows = await self._find_chain(document_id, record, below=record.version)
            content = Rebuild(document_id).contents([*rows, record], version)
            return Snapshot.of(document_of(record, document_id, content), stored_change(record))
        found = await self._find_document(document_id)  # the newest may await its repair
        if found is None or found.document.version != version:
            return None
        return Snapshot.of(found.document, found.change)

    async def feed_position(self) -> FeedPosition:
        await self._ensure_ready()
        return await self._feed.position()

    async def events(self, after: int, limit: int) -> EventPage:
        await self._ensure_ready()
        return await self._feed.events(after, limit)

    @_retry
    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def close(self) -> None:
        await self._client.close()

    # -- single round trips, each retried on its own ----------------------------------------

    @_retry
    async def _register_models(self, *, skip_indexes: bool) -> None:
        await init_beanie(
            database=self._client[self._database],
            document_models=[DocumentRecord, VersionRecord],
            skip_indexes=skip_indexes,
        )

    @_retry
    async def _find_document(self, document_id: str) -> Current | None:
        row = await DocumentRecord.get_pymongo_collection().find_one(
            {"_id": document_id}, projection=NOT_SEARCH
        )
        if row is None:
            return None
        record = DocumentRecord.model_validate(row)
        return Current(
            document_of(record, document_id), tip_of(record), stored_change(record), record.write_id
        )

    @_retry
    async def _find_by_request_id(self, request_id: str) -> Document | None:
        record = await DocumentRecord.find_one(DocumentRecord.request_id == request_id)
        return None if record is None else document_of(record, record.id)

    @_retry
    async def _find_page(self, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
        """The rows of the page (and one more, see `rows_to_fetch`); the count if asked for."""
        conditions = _filters(query)
        collection = DocumentRecord.get_pymongo_collection()
        where = conditions
        if query.after is not None:
            where = {"$and": [conditions, after_condition(query.order, query.after)]}
        projection = {"content": 0, "comments": 0, **NOT_SEARCH} if query.basic else NOT_SEARCH
        cursor = (
            collection.find(where, projection=projection)
            .sort(sort_keys(query.order))
            .skip(query.offset)
            .limit(rows_to_fetch(query))
        )
        rows = await cursor.to_list()
        total = await collection.count_documents(conditions) if query.count else 0
        return rows, total

    @_retry
    async def _find_versions(
        self, document_id: str, after_version: int, limit: int
    ) -> list[VersionRecord]:
        return (
            await VersionRecord.find(
                VersionRecord.document_id == document_id,
                VersionRecord.version > after_version,
            )
            .sort([("version", SortDirection.ASCENDING)])
            .limit(limit)
            .to_list()
        )

    @_retry
    async def _find_chain(
        self, document_id: str, record: VersionRecord, *, below: int
    ) -> list[ChainRecord]:
        """The holders of `record`'s chain, from its keyframe up to its holder, below `below`.

        Looked up by `_id` (the versions of the span are known) rather than by range: the
        primary key answers as fast on nx-27017, the test server, whose range scans slow down
        with everything else stored beside. Only the fields a rebuild reads are sent.
        """
        last = min(record.content_version, below - 1)
        span = range(record.content_chain, last + 1)
        where: dict[str, Any] = {"document_id": document_id, "content_chain": record.content_chain}
        if len(span) <= MAX_SPAN_IDS:
            where["_id"] = {"$in": [version_id(document_id, v) for v in span]}
        else:
            where["version"] = {"$gte": span.start, "$lte": last}
        # Not `$ne: None`: nx-27017 (the test server) gets null filters wrong.
        where["content_kind"] = {"$in": KINDS}
        cursor = VersionRecord.get_pymongo_collection().find(where, projection=CHAIN_FIELDS)
        return sorted((ChainRecord(r) for r in await cursor.to_list()), key=_by_version)

    @_retry
    async def _find_window(
        self, document_id: str, first: int, version: int
    ) -> tuple[VersionRecord | None, list[ChainRecord]]:
        """Version `version` whole, and versions `first` to `version - 1` as chain rows."""
        # By `_id` only, whole rows: a filter on `$or` or on the content fields makes
        # nx-27017 (the test server) scan the collection, some 60x slower.
        ids = [version_id(document_id, v) for v in range(first, version + 1)]
        cursor = VersionRecord.get_pymongo_collection().find({"_id": {"$in": ids}})
        record, window = None, []
        for raw in await cursor.to_list():
            if raw["version"] == version:
                record = VersionRecord.model_validate(raw)
            else:
                window.append(ChainRecord(raw))
        return record, window

    @_retry
    async def _insert_document(self, record: DocumentRecord) -> None:
        await record.insert()

    @_retry
    async def _compare_and_set(
        self, document: Document, fields: dict[str, Any], expected_version: int
    ) -> bool:
        collection = DocumentRecord.get_pymongo_collection()
        result = await collection.update_one(
            {"_id": document.id, "version": expected_version}, {"$set": fields}
        )
        if result.matched_count == 1:
            return True
        # This may be a retry (retries.py) of an attempt whose reply was lost after it applied:
        # the document, or once it moved on the snapshot of this version, then holds exactly
        # this write (its write_id), and reporting a lost race would make the service apply the
        # change a second time. The document first (see the module docstring).
        write_id = fields["write_id"]
        if await collection.find_one({"_id": document.id, "write_id": write_id}, {"_id": 1}):
            return True
        snapshot = {"_id": version_id(document.id, document.version), "write_id": write_id}
        versions = VersionRecord.get_pymongo_collection()
        return await versions.find_one(snapshot, {"_id": 1}) is not None

    @_retry
    async def _snapshot_exists(self, document: Document) -> bool:
        found = await VersionRecord.get_pymongo_collection().find_one(
            {"_id": version_id(document.id, document.version)}, projection={"_id": 1}
        )
        return found is not None

    async def _repair_snapshot(
        self, document: Document, tip: Tip, current: Current | None = None
    ) -> None:
        """Step 1: write the snapshot of `document` (at the version it is at) if it is missing,
        with the change and write_id the document record carries (read again unless given)."""
        if await self._snapshot_exists(document):
            return
        if current is None:
            current = await self._find_document(document.id)
            if current is None or current.document.version != document.version:
                return  # it moved on, so its snapshot was written (the protocol's invariant)
        stored = repaired_content(document.content, document.version, tip)
        await self._publish(document, stored, current.change, current.write_id)

    async def _publish(
        self, document: Document, stored: StoredContent, change: Change, write_id: str | None
    ) -> None:
        """Step 3: the snapshot, numbered in the change feed (mongo/feed.py)."""

        def insert(sequence: int) -> Coroutine[Any, Any, bool]:
            return self._insert_snapshot(document, stored, change, write_id, sequence)

        await self._feed.publish(document, insert)

    async def _repair_for_feed(self, document_id: str, version: int, sequence: int) -> bool:
        """Snapshot `version` from the document, if it is still at that version, numbered
        `sequence`; False if not written (the document moved on, or it was there)."""
        found = await self._find_document(document_id)
        if found is None:
            return False
        document, tip, change, write_id = found
        if document.version != version or tip is None:
            return False
        stored = repaired_content(document.content, document.version, tip)
        return await self._insert_snapshot(document, stored, change, write_id, sequence)

    @_retry
    async def _insert_snapshot(
        self,
        document: Document,
        stored: StoredContent,
        change: Change,
        write_id: str | None,
        sequence: int,
    ) -> bool:
        """Insert the snapshot of `document`; False if one was already there."""
        fields = version_fields(document, stored, change)
        if write_id is not None:
            fields["write_id"] = write_id
        try:
            await VersionRecord.get_pymongo_collection().insert_one(fields | {"sequence": sequence})
        except DuplicateKeyError:
            return False
        return True


def _filters(query: ListQuery) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if not query.show_deleted:
        conditions["is_deleted"] = False
    conditions.update(equality_filters(query))
    if query.tag:
        conditions["tags"] = query.tag
    if query.where is None:
        return conditions
    return {"$and": [conditions, filter_condition(query.where)]}


def _after(query: ListQuery) -> dict[str, Any]:
    """The keyset condition: documents after (updated_at, id) of the previous page's last."""
    if query.after is None:
        return {}
    after_time, after_id = query.after
    after_us = microseconds(after_time)
    return {
        "$or": [
            {"updated_us": {"$lt": after_us}},
            {"updated_us": after_us, "_id": {"$lt": after_id}},
        ]
    }


def _listed_document(row: dict[str, Any], *, basic: bool = False) -> Document:
    if basic:
        row["content"], row["comments"] = "", []
    row.setdefault("content", "")  # the BASIC view reads neither
    row.setdefault("comments", [])
    return document_of(DocumentRecord.model_validate(row), row["_id"])


# Reads of documents leave out what only search reads.
NOT_SEARCH = dict.fromkeys(SEARCH_FIELDS, 0)
