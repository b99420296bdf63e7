"""`MongoDocumentRepository`: documents and their history in MongoDB, with Beanie 2 on PyMongo's
native asyncio client.

Collections (their models are in models.py): `documents` holds the current state (`_id` = the
UUID string, `version` an int); `document_versions` holds append-only snapshots (`_id` =
"{id}:{version}", unique on (document_id, version)). Reading a document never loads its history.

Write protocol, without multi-document transactions (a standalone mongod has none):

1. Repair. A writer that read the document at version p first makes sure snapshot p exists,
   inserting it from the state it read if a crash lost it (a duplicate key means it was there).
2. Compare-and-set. ``update_one({_id, version: p}, {$set: new state, version: p + 1})``: of
   concurrent writers exactly one matches; the others match nothing and retry from a fresh read.
3. Append. The winner inserts snapshot p + 1, then acknowledges the write.

Snapshots are only written for versions the document has reached, so none exists above the
document's version. The document never moves past version n before snapshot n exists (step 1),
so a crash between steps 2 and 3 loses nothing: the next writer, or a reader of the history that
finds it short, writes the missing snapshot from the document itself, which is still at exactly
that state. Version numbers are therefore contiguous, never duplicated, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from beanie import SortDirection, init_beanie
from pymongo import DESCENDING, AsyncMongoClient
from pymongo.errors import ConnectionFailure, DuplicateKeyError, ServerSelectionTimeoutError

from docservice._proto.document import Document
from docservice.core.repository import DocumentRepository, ListQuery, Page, Snapshot
from docservice.storage.idempotency import create_once
from docservice.storage.listing import equality_filters, page_of, rows_to_fetch
from docservice.storage.mongo.models import (
    DocumentRecord,
    VersionRecord,
    document_of,
    microseconds,
    stored_fields,
    version_id,
)
from docservice.storage.retries import retry_transient

__all__ = ["MongoDocumentRepository"]

# Server selection and connection timeouts short enough for the retry budget (< 2 s in all).
TIMEOUT_MS = 400


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionFailure | ServerSelectionTimeoutError)


# Applied to the methods that each make one round trip (or one read of a page and its count),
# never to the public methods that combine them: a retry never runs inside another.
_retry = retry_transient(is_transient)


class MongoDocumentRepository(DocumentRepository):
    def __init__(self, url: str, database: str) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=TIMEOUT_MS,
            connectTimeoutMS=TIMEOUT_MS,
            tz_aware=True,
        )
        self._database = database
        self._ready = False
        self._registering = asyncio.Lock()

    async def migrate(self) -> None:
        """Register the models with Beanie and create the indexes."""
        async with self._registering:
            await self._register_models(skip_indexes=False)
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
        return await self._find_document(document_id)

    async def get_by_request_id(self, request_id: str) -> Document | None:
        await self._ensure_ready()
        return await self._find_by_request_id(request_id)

    async def create(self, document: Document, request_id: str) -> Document:
        await self._ensure_ready()
        record = DocumentRecord(
            _id=document.id, request_id=request_id or None, **stored_fields(document)
        )

        async def insert() -> None:
            await self._insert_document(record)
            await self._insert_snapshot(document)

        return await create_once(
            document,
            request_id,
            insert,
            duplicate=DuplicateKeyError,
            by_request_id=self._find_by_request_id,
        )

    async def save(self, document: Document, previous: Document) -> bool:
        await self._ensure_ready()
        await self._insert_snapshot(previous)  # step 1: repair a snapshot a crash may have lost
        if not await self._compare_and_set(document, previous.version):
            return False
        await self._insert_snapshot(document)
        return True

    async def list_page(self, query: ListQuery) -> Page:
        await self._ensure_ready()
        rows, total = await self._find_page(query)
        return page_of(rows, query, total, _listed_document)

    async def versions(self, document_id: str, after_version: int, limit: int) -> list[Snapshot]:
        await self._ensure_ready()
        history = await self._find_versions(document_id, after_version, limit)
        if len(history) < limit:  # the end of the history: is the newest snapshot missing?
            current = await self._find_document(document_id)
            newest = history[-1].version if history else after_version
            if current is not None and current.version == newest + 1 and limit > 0:
                await self._insert_snapshot(current)
                history.append(current)
        return [Snapshot.of(s) for s in history]

    async def version(self, document_id: str, version: int) -> Document | None:
        await self._ensure_ready()
        snapshot = await self._find_version(document_id, version)
        if snapshot is not None:
            return snapshot
        current = await self._find_document(document_id)  # the newest may await its repair
        return current if current is not None and current.version == version else None

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
    async def _find_document(self, document_id: str) -> Document | None:
        record = await DocumentRecord.get(document_id)
        return None if record is None else document_of(record, document_id)

    @_retry
    async def _find_by_request_id(self, request_id: str) -> Document | None:
        record = await DocumentRecord.find_one(DocumentRecord.request_id == request_id)
        return None if record is None else document_of(record, record.id)

    @_retry
    async def _find_page(self, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
        """The rows of the page (and one more, see `rows_to_fetch`); the count if asked for."""
        conditions = _filters(query)
        collection = DocumentRecord.get_pymongo_collection()
        cursor = (
            collection.find({**conditions, **_after(query)})
            .sort([("updated_us", DESCENDING), ("_id", DESCENDING)])
            .skip(query.offset)
            .limit(rows_to_fetch(query))
        )
        rows = await cursor.to_list()
        total = await collection.count_documents(conditions) if query.count else 0
        return rows, total

    @_retry
    async def _find_versions(
        self, document_id: str, after_version: int, limit: int
    ) -> list[Document]:
        records = (
            await VersionRecord.find(
                VersionRecord.document_id == document_id,
                VersionRecord.version > after_version,
            )
            .sort([("version", SortDirection.ASCENDING)])
            .limit(limit)
            .to_list()
        )
        return [document_of(r, document_id) for r in records]

    @_retry
    async def _find_version(self, document_id: str, version: int) -> Document | None:
        record = await VersionRecord.get(version_id(document_id, version))
        return None if record is None else document_of(record, document_id)

    @_retry
    async def _insert_document(self, record: DocumentRecord) -> None:
        await record.insert()

    @_retry
    async def _compare_and_set(self, document: Document, expected_version: int) -> bool:
        result = await DocumentRecord.get_pymongo_collection().update_one(
            {"_id": document.id, "version": expected_version},
            {"$set": stored_fields(document)},
        )
        return result.matched_count == 1

    @_retry
    async def _insert_snapshot(self, document: Document) -> None:
        """Insert the snapshot of `document`; one already there (same content) is fine."""
        with contextlib.suppress(DuplicateKeyError):
            await VersionRecord(
                _id=version_id(document.id, document.version),
                document_id=document.id,
                **stored_fields(document),
            ).insert()


def _filters(query: ListQuery) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if not query.show_deleted:
        conditions["is_deleted"] = False
    conditions.update(equality_filters(query))
    if query.tag:
        conditions["tags"] = query.tag
    return conditions


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


def _listed_document(row: dict[str, Any]) -> Document:
    return document_of(DocumentRecord.model_validate(row), row["_id"])
