"""The MongoDB migration steps. First, to the delta history format: full-copy snapshots (a `content`
field) to keyframes and deltas (docservice/storage/history.py).

Resumable without transactions. Snapshots are converted one at a time, in version order, each
with one update (its new fields set, `content` unset), so each is either a full copy or
converted. A document is done when its record carries a tip, set last; an interrupted run leaves
documents without one, and the next run converts their remaining snapshots, starting a new chain
(a keyframe) at the first of them. A marker in `docservice_migrations` records that every
document is done, so that later starts cost one lookup.

Then the audit trail: snapshots written before it get the kind of change their rows tell
(`derive_change_kinds`), with its own marker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from docservice._proto.document import Document
from docservice.storage.history import HistoryPolicy, Tip, first_content, next_content
from docservice.storage.mongo.models import microseconds, tip_fields, version_id
from docservice.storage.mongo.search import Analyzer

__all__ = [
    "AUDIT_MARKER",
    "CREATED_MARKER",
    "MARKER",
    "convert_history",
    "derive_change_kinds",
    "derive_created_us",
    "index_for_search",
]

MARKER = "history-deltas"
BATCH = 100

Collection = AsyncCollection[dict[str, Any]]


async def convert_history(
    database: AsyncDatabase[dict[str, Any]],
    policy: HistoryPolicy,
    *,
    after_document: Callable[[int], None] | None = None,
) -> int:
    """Convert every document not yet converted; returns how many were.

    `after_document` is told the running count after each document (tests interrupt there).
    """
    migrations = database["docservice_migrations"]
    if await migrations.find_one({"_id": MARKER}) is not None:
        return 0
    documents, versions = database["documents"], database["document_versions"]
    converted = 0
    async for record in _without(documents, "content_version", ["version", "content"]):
        newest = await _convert_snapshots(versions, record["_id"], policy)
        if newest is not None and newest[0] == record["version"]:
            tip = newest[1]
        else:  # its newest snapshot was lost in a crash: the next writer repairs it
            tip = first_content(record["content"], record["version"]).tip
        await documents.update_one({"_id": record["_id"]}, {"$set": tip_fields(tip)})
        converted += 1
        if after_document is not None:
            after_document(converted)
    await migrations.update_one({"_id": MARKER}, {"$set": {"done": True}}, upsert=True)
    return converted


async def _without(
    collection: Collection, field: str, fields: list[str], value: object = None
) -> AsyncIterator[dict[str, Any]]:
    """The records of `collection` that have no `field` yet (or, given a `value`, not that
    value), with `fields` and `_id`, in `_id` order, a batch at a time from where the last one
    ended: one pass in all."""
    after_id = ""
    projection = {"_id": 1, **dict.fromkeys(fields, 1)}
    missing = {"$exists": False} if value is None else {"$ne": value}
    while True:
        batch = (
            await collection.find({field: missing, "_id": {"$gt": after_id}}, projection=projection)
            .sort("_id", 1)
            .limit(BATCH)
            .to_list()
        )
        if not batch:
            return
        after_id = batch[-1]["_id"]
        for record in batch:
            yield record


async def _convert_snapshots(
    versions: Collection, document_id: str, policy: HistoryPolicy
) -> tuple[int, Tip] | None:
    """Convert the full-copy snapshots of one document; the version and tip of its newest."""
    previous: tuple[str, Tip] | None = None
    newest: tuple[int, Tip] | None = None
    after = 0
    while True:
        records = (
            await versions.find({"document_id": document_id, "version": {"$gt": after}})
            .sort("version", 1)
            .limit(BATCH)
            .to_list()
        )
        if not records:
            return newest
        for record in records:
            version = record["version"]
            if "content" not in record:  # converted by an interrupted run
                previous, newest = None, (version, Tip.of(_Fields(record)))
                continue
            content = record["content"]
            if previous is None:
                stored = first_content(content, version)
            else:
                stored = next_content(previous[0], content, previous[1], version, policy)
            fields = {name: value for name, value in stored.fields().items() if value is not None}
            await versions.update_one(
                {"_id": record["_id"]}, {"$set": fields, "$unset": {"content": ""}}
            )
            previous, newest = (content, stored.tip), (version, stored.tip)
        after = records[-1]["version"]


class _Fields:
    """Attribute access to a raw record's fields, for `Tip.of`."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.__dict__.update(record)


AUDIT_MARKER = "audit-trail"
# ChangeKind numbers (proto/document.proto): frozen on the wire.
CREATED, UPDATED, DELETED, RESTORED = 1, 2, 3, 4


async def derive_change_kinds(database: AsyncDatabase[dict[str, Any]]) -> int:
    """Give snapshots written before the audit trail the kind their rows tell: version 1 was
    created, one that sets `is_deleted` a delete, one that clears it a restore, every other an
    update (a revert left no mark). Documents get the kind of their current version too, for
    the snapshot a crash may have lost. One update per record, so an interrupted run resumes
    with those still without a kind. Returns how many records were given one."""
    migrations = database["docservice_migrations"]
    if await migrations.find_one({"_id": AUDIT_MARKER}) is not None:
        return 0
    versions = database["document_versions"]
    derived = 0
    for collection, document_id in ((versions, "document_id"), (database["documents"], "_id")):
        fields = [document_id, "version", "is_deleted"]
        async for record in _without(collection, "change_kind", fields):
            kind = await _kind_of(versions, record[document_id], record)
            changes = {"change_kind": kind, "changed_by": "", "change_message": ""}
            # Only if still without a kind: a write by a server of this version since the
            # read set its own, which must stand.
            await collection.update_one(
                {"_id": record["_id"], "change_kind": {"$exists": False}}, {"$set": changes}
            )
            derived += 1
    await migrations.update_one({"_id": AUDIT_MARKER}, {"$set": {"done": True}}, upsert=True)
    return derived


async def _kind_of(versions: Collection, document_id: str, record: dict[str, Any]) -> int:
    if record["version"] == 1:
        return CREATED
    previous = await versions.find_one(
        {"_id": version_id(document_id, record["version"] - 1)}, projection={"is_deleted": 1}
    )
    was_deleted = bool(previous and previous.get("is_deleted"))
    is_deleted = bool(record.get("is_deleted"))
    return {(False, True): DELETED, (True, False): RESTORED}.get((was_deleted, is_deleted), UPDATED)


CREATED_MARKER = "created-us"


async def derive_created_us(database: AsyncDatabase[dict[str, Any]]) -> int:
    """Give documents written before the create_time order their `created_us` (from
    `created_at`), one update each, so an interrupted run resumes. Returns how many."""
    migrations = database["docservice_migrations"]
    if await migrations.find_one({"_id": CREATED_MARKER}) is not None:
        return 0
    documents = database["documents"]
    derived = 0
    async for record in _without(documents, "created_us", ["created_at"]):
        created = microseconds(record["created_at"])
        await documents.update_one({"_id": record["_id"]}, {"$set": {"created_us": created}})
        derived += 1
    await migrations.update_one({"_id": CREATED_MARKER}, {"$set": {"done": True}}, upsert=True)
    return derived


async def index_for_search(database: AsyncDatabase[dict[str, Any]], analyzer: Analyzer) -> int:
    """Give documents written before search, or analysed for another SEARCH_LANGUAGE, their
    search fields (mongo/search.py), one update each, so an interrupted run resumes. Returns
    how many."""
    documents = database["documents"]
    indexed = 0
    records = _without(
        documents, "search_language", ["title", "tags", "content"], analyzer.language
    )
    async for record in records:
        fields = analyzer.fields(
            Document(title=record["title"], tags=record["tags"], content=record["content"])
        )
        await documents.update_one({"_id": record["_id"]}, {"$set": fields})
        indexed += 1
    return indexed
