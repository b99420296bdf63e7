"""The change feed on MongoDB, without transactions: numbers claimed from a counter, events
published before their snapshot, and readers that never pass a number still in doubt.

Records. `document_feed` holds the log: `{_id: "log", log_id, next}` (`next`: the last number
claimed). `document_events` holds one record per claimed number that a publisher used:
`{_id: sequence, document_id, version}`, or `{_id: sequence, void: true}`. Each snapshot in
`document_versions` carries the `sequence` of its event.

Publishing version v of a document (repository.py's step 3, and every repair that writes a
missing snapshot) — `publish`:

1. Claim: ``next += 1`` (one atomic update) gives s.
2. Announce: insert event `{_id: s, document_id, version: v}`. A duplicate key means a reader
   voided s (below), because this publisher was slow: claim again.
3. Insert snapshot v with `sequence: s`. The snapshot's unique key (document, version) decides
   which event is v's, when several publishers race (the writer, and a repair): the one whose
   snapshot went in. A publisher that lost marks its own event void.

**Event s is confirmed** when snapshot v exists with sequence s, **void** when its record says
so or snapshot v exists with another sequence, and **in doubt** otherwise: a number claimed but
not announced (a hole), or announced but snapshot v not yet written. Both states but doubt are
final. Readers (`events`) deliver in sequence order and stop at the first number in doubt, so
no reader ever passes an event that could still be confirmed. Doubt is settled by the
publisher within a round trip, or, after `SETTLE_SECONDS`, by a reader:

- a hole: the reader inserts `{_id: s, void: true}`; a publisher still to announce s gets the
  duplicate key and claims again (nothing depended on s yet);
- an announced event whose snapshot is missing: the reader writes the snapshot itself from the
  document, which the write protocol keeps at exactly version v until snapshot v exists (its
  step 1); with sequence s if no publisher did meanwhile — then s is confirmed or void.

Per document, events are in version order: the write of v + 1 claims its number after its
compare-and-set, which follows its step 1, which makes sure snapshot v — and so v's event —
exists. A write that crashed after its compare-and-set and before step 3 leaves the document at
v without snapshot v: the next writer's step 1 repairs it, and so does the sweep of `events`,
which looks at the documents changed since its last look (at most every `SWEEP_SECONDS`) for
any whose snapshot is missing. Every change therefore gets exactly one confirmed event.

History written before the feed is numbered by `setup` in the order it was written (each
snapshot's update time, ties by document and version): claim, announce, then set the
snapshot's sequence if it has none. An interrupted run leaves announced events whose snapshot
has no sequence; readers settle them like the others (setting it, or finding another).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from docservice._proto.document import Document, DocumentStatus
from docservice.core.feed import EventPage, FeedEvent, FeedPosition
from docservice.core.model import etag_for, stored_change
from docservice.storage.mongo.faults import retry
from docservice.storage.mongo.models import version_id

__all__ = ["MongoFeed"]

Collection = AsyncCollection[dict[str, Any]]
LOG_ID = "log"
SETTLE_SECONDS = 2.0
SWEEP_SECONDS = 5.0
SWEEP_OVERLAP_US = 5_000_000
MAX_LOOKUP = 256  # event numbers looked up at once
# What a snapshot holds besides its content, read to build an event.
EVENT_FIELDS = [
    "document_id",
    "version",
    "sequence",
    "title",
    "status",
    "author",
    "tags",
    "category",
    "created_at",
    "updated_at",
    "deleted_at",
    "change_kind",
    "changed_by",
    "change_message",
    "reverted_from",
]

# Writes snapshot v of a document from the document itself (it is still at v), with the given
# sequence; returns False if the document is not at version v.
Repair = Callable[[str, int, int], Awaitable[bool]]


class MongoFeed:
    def __init__(
        self, database: Callable[[], AsyncDatabase[dict[str, Any]]], repair: Repair
    ) -> None:
        # The database the repository's models are bound to, looked up at each use (Beanie
        # binds them at start): the feed always reads and writes beside them.
        self._database = database
        self._repair = repair
        self._doubt_seen: dict[int, float] = {}  # number in doubt -> when first seen here
        self._swept_at = 0.0

    @property
    def _log(self) -> Collection:
        return self._database()["document_feed"]

    @property
    def _events(self) -> Collection:
        return self._database()["document_events"]

    @property
    def _versions(self) -> Collection:
        return self._database()["document_versions"]

    @property
    def _documents(self) -> Collection:
        return self._database()["documents"]

    async def setup(self) -> None:
        """Create the log if there is none, and number the history written before it."""
        await self._create_log()
        while batch := await self._unnumbered():
            for snapshot in batch:
                sequence = await self._announce(snapshot["document_id"], snapshot["version"])
                await self._number(snapshot["_id"], sequence)

    async def position(self) -> FeedPosition:
        """The log and its settled head: the last number before the first one in doubt.
        Readers record how far they settled (`settled`), so this reads only what is newer."""
        log = await self._read_log()
        recorded = through = int(log.get("settled", 0))
        while (page := await self.events(through, MAX_LOOKUP)).through > through:
            through = page.through
        if through > recorded:
            await self._advance("settled", through)
        return FeedPosition(str(log["log_id"]), through)

    async def publish(self, document: Document, insert: Callable[[int], Awaitable[bool]]) -> None:
        """Publish `document`'s version: `insert(sequence)` inserts its snapshot with that
        sequence and returns False if a snapshot of that version was already there."""
        sequence = await self._announce(document.id, document.version)
        if not await insert(sequence):
            await self._settle_existing(sequence, document.id, document.version)

    async def _announce(self, document_id: str, version: int) -> int:
        while True:
            sequence = await self._claim()
            record = {"_id": sequence, "document_id": document_id, "version": version}
            if await self._insert_event(record):
                return sequence
            # Voided while we were slow (or a retried insert that had gone in: that one is
            # settled like any other announced number): another number.

    async def _settle_existing(self, sequence: int, document_id: str, version: int) -> None:
        """Snapshot v was there when ours was inserted: it is ours (a retried insert whose
        first attempt went in), or takes our number if it has none (history numbered before
        the feed), or has another publisher's number: then our event is void."""
        key = version_id(document_id, version)
        await self._number(key, sequence)
        found = await self._find_snapshot(key, ["sequence"])
        if found is None or found.get("sequence") != sequence:
            await self._void(sequence)

    async def events(self, after: int, limit: int) -> EventPage:
        await self._sweep()
        records = await self._find_events(after, min(limit, MAX_LOOKUP))
        ids = [version_id(r["document_id"], r["version"]) for r in records if not r.get("void")]
        snapshots = await self._find_snapshots(ids) if ids else {}
        found: list[FeedEvent] = []
        through, expected = after, after + 1
        for record in records:
            while expected < record["_id"]:  # a hole
                if not await self._void_hole(expected):
                    return EventPage(found, through)
                through, expected = expected, expected + 1
            sequence = expected
            if not record.get("void"):
                key = version_id(record["document_id"], record["version"])
                snapshot = snapshots.get(key)
                if snapshot is None or snapshot.get("sequence") is None:
                    snapshot = await self._settle_doubt(sequence, record, snapshot)
                    if snapshot is None:
                        return EventPage(found, through)
                if snapshot.get("sequence") == sequence:
                    found.append(_event(snapshot))
            self._doubt_seen.pop(sequence, None)
            through, expected = sequence, sequence + 1
        return EventPage(found, through)

    def _doubtful_for_long(self, sequence: int) -> bool:
        now = time.monotonic()
        first = self._doubt_seen.setdefault(sequence, now)
        if len(self._doubt_seen) > 10_000:  # bounded: keep the newest doubts
            for stale in sorted(self._doubt_seen)[:5_000]:
                del self._doubt_seen[stale]
        return now - first >= SETTLE_SECONDS

    async def _void_hole(self, sequence: int) -> bool:
        """Settle a hole: void it once it has been in doubt long enough."""
        if not self._doubtful_for_long(sequence):
            return False
        if not await self._insert_event({"_id": sequence, "void": True}):
            return False  # announced meanwhile: read it next time
        self._doubt_seen.pop(sequence, None)
        return True

    async def _settle_doubt(
        self, sequence: int, record: dict[str, Any], snapshot: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The snapshot of an announced event without one (or without a sequence): once in
        doubt long enough, written or numbered by this reader; `{}` when the event is void.
        None: still in doubt."""
        if not self._doubtful_for_long(sequence):
            return None
        document_id, version = record["document_id"], record["version"]
        key = version_id(document_id, version)
        if snapshot is None:
            await self._repair(document_id, version, sequence)
        else:  # numbered before the feed, by an interrupted setup
            await self._number(key, sequence)
        settled = await self._find_snapshot(key, EVENT_FIELDS)
        if settled is None:
            # Not writable from the document: it is gone, or past v without snapshot v, which
            # the protocol never leaves (removed by hand?). No write can confirm s any more.
            await self._void(sequence)
            return {}
        if settled.get("sequence") != sequence:
            await self._void(sequence)
        return settled

    async def _sweep(self) -> None:
        """Publish the changes of writers that crashed after their compare-and-set: documents
        changed since the last sweep whose snapshot is missing."""
        now = time.monotonic()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        log = await self._read_log()
        # Overlapping the last sweep: processes' clocks may differ a little.
        since = max(0, int(log.get("swept_us", 0)) - SWEEP_OVERLAP_US)
        until = now_us() - int(SETTLE_SECONDS * 1_000_000)
        if until <= since:
            return
        changed = await self._changed_documents(since, until)
        ids = [version_id(d["_id"], d["version"]) for d in changed]
        present = await self._find_snapshots(ids) if ids else {}
        for document in changed:
            document_id, version = document["_id"], document["version"]
            if version_id(document_id, version) not in present:
                sequence = await self._announce(document_id, version)
                if not await self._repair(document_id, version, sequence):
                    await self._settle_existing(sequence, document_id, version)
        await self._advance("swept_us", until)

    # -- single round trips, each retried on its own ----------------------------------------

    @retry
    async def _create_log(self) -> None:
        await self._log.update_one(
            {"_id": LOG_ID},
            # The sweep starts now: a snapshot lost before the feed existed is the next
            # writer's to repair, as it always was.
            {"$setOnInsert": {"log_id": uuid.uuid4().hex, "next": 0, "swept_us": now_us()}},
            upsert=True,
        )

    @retry
    async def _read_log(self) -> dict[str, Any]:
        log = await self._log.find_one({"_id": LOG_ID})
        if log is None:
            raise RuntimeError("the change feed's log is missing: run the migrations")
        return log

    @retry
    async def _advance(self, field: str, value: int) -> None:
        await self._log.update_one({"_id": LOG_ID}, {"$max": {field: value}})

    @retry
    async def _claim(self) -> int:
        """The next number. A retry after a lost reply claims another: the first becomes a
        hole, which readers void."""
        log = await self._log.find_one_and_update(
            {"_id": LOG_ID}, {"$inc": {"next": 1}}, return_document=ReturnDocument.AFTER
        )
        if log is None:
            raise RuntimeError("the change feed's log is missing: run the migrations")
        return int(log["next"])

    @retry
    async def _insert_event(self, record: dict[str, Any]) -> bool:
        """False if the number has a record already."""
        try:
            await self._events.insert_one(record)
        except DuplicateKeyError:
            return False
        return True

    @retry
    async def _void(self, sequence: int) -> None:
        await self._events.update_one({"_id": sequence}, {"$set": {"void": True}})

    async def _find_events(self, after: int, count: int) -> list[dict[str, Any]]:
        """The records of the numbers after `after` (at most `count`) that have one: only of
        numbers claimed so far, so that an idle reader costs one lookup of the log."""
        claimed = int((await self._read_log())["next"])
        if claimed <= after:
            return []
        return await self._lookup_events(after, min(count, claimed - after))

    @retry
    async def _lookup_events(self, after: int, count: int) -> list[dict[str, Any]]:
        # By `_id` only (the numbers that can come next): nx-27017, the test server, answers a
        # range of _id by reading the whole collection.
        wanted = list(range(after + 1, after + 1 + count))
        found = await self._events.find({"_id": {"$in": wanted}}).to_list()
        return sorted(found, key=_number)

    @retry
    async def _find_snapshots(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        cursor = self._versions.find({"_id": {"$in": ids}}, projection=EVENT_FIELDS)
        return {s["_id"]: s async for s in cursor}

    @retry
    async def _find_snapshot(self, key: str, fields: list[str]) -> dict[str, Any] | None:
        return await self._versions.find_one({"_id": key}, projection=fields)

    @retry
    async def _number(self, key: str, sequence: int) -> None:
        """Give snapshot `key` this number, unless it has one."""
        await self._versions.update_one(
            {"_id": key, "sequence": {"$exists": False}}, {"$set": {"sequence": sequence}}
        )

    @retry
    async def _unnumbered(self) -> list[dict[str, Any]]:
        return (
            await self._versions.find(
                {"sequence": {"$exists": False}}, projection={"document_id": 1, "version": 1}
            )
            .sort([("updated_us", ASCENDING), ("document_id", ASCENDING), ("version", 1)])
            .limit(500)
            .to_list()
        )

    @retry
    async def _changed_documents(self, since: int, until: int) -> list[dict[str, Any]]:
        return await self._documents.find(
            {"updated_us": {"$gte": since, "$lt": until}}, projection={"_id": 1, "version": 1}
        ).to_list()


def now_us() -> int:
    return int(time.time() * 1_000_000)


def _number(record: dict[str, Any]) -> int:
    return int(record["_id"])


def _event(snapshot: dict[str, Any]) -> FeedEvent:
    document_id, version = snapshot["document_id"], int(snapshot["version"])
    deleted_at = snapshot.get("deleted_at") or ""
    document = Document(
        id=document_id,
        title=snapshot["title"],
        status=DocumentStatus(snapshot["status"]),
        author=snapshot["author"],
        tags=list(snapshot["tags"]),
        category=snapshot["category"],
        created_at=snapshot["created_at"],
        updated_at=snapshot["updated_at"],
        is_deleted=bool(deleted_at),
        deleted_at=deleted_at,
        version=version,
        etag=etag_for(document_id, version),
    )
    return FeedEvent(int(snapshot["sequence"]), document, stored_change(_Record(snapshot)))


class _Record:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.change_kind = raw.get("change_kind", 0)
        self.changed_by = raw.get("changed_by", "")
        self.change_message = raw.get("change_message", "")
        self.reverted_from = raw.get("reverted_from", 0)
