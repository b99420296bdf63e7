"""The MongoDB write protocol without transactions (see docservice/storage/mongo/repository.py):
concurrent writers produce contiguous versions, and a crash between the compare-and-set and the
snapshot insert is repaired; and the change feed's protocol (mongo/feed.py): each crash window
of a publisher is settled, never skipped, never delivered twice."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.errors import DuplicateKeyError

from docservice._proto.document import ChangeKind, Document
from docservice.core.feed import FeedEvent
from docservice.core.model import etag_for, format_timestamp, utc_now
from docservice.core.repository import Change
from docservice.storage.history import HistoryPolicy, next_content
from docservice.storage.mongo import feed
from docservice.storage.mongo.models import VersionRecord
from docservice.storage.mongo.repository import MongoDocumentRepository

WRITERS = 20


@pytest.fixture
async def repository(mongo_url: str) -> AsyncIterator[MongoDocumentRepository]:
    repository = MongoDocumentRepository(mongo_url, f"protocol-{uuid.uuid4().hex[:8]}")
    await repository.migrate()
    try:
        yield repository
    finally:
        await repository.close()


async def _create(repository: MongoDocumentRepository) -> Document:
    now = format_timestamp(utc_now())
    document_id = str(uuid.uuid4())
    document = Document(
        id=document_id,
        title="t",
        author="a",
        created_at=now,
        updated_at=now,
        version=1,
        etag=etag_for(document_id, 1),
    )
    return await repository.create(document, "", Change(ChangeKind.CREATED, "creator"))


def _next(current: Document, content: str) -> Document:
    version = current.version + 1
    return dataclasses.replace(
        current,
        content=content,
        version=version,
        updated_at=format_timestamp(utc_now()),
        etag=etag_for(current.id, version),
    )


async def _compare_and_set_only(
    repository: MongoDocumentRepository, document: Document, previous: Document, change: Change
) -> bool:
    """Step 2 of the protocol alone, as a writer that crashed right after it."""
    tip = await repository._tip(previous)
    assert tip is not None
    stored = next_content(
        previous.content, document.content, tip, document.version, HistoryPolicy()
    )
    fields = repository._changed_fields(document, previous, stored.tip, change)
    return await repository._compare_and_set(document, fields, previous.version)


async def _stored_versions(document_id: str) -> list[int]:
    records = await VersionRecord.find(VersionRecord.document_id == document_id).to_list()
    return sorted(r.version for r in records)


async def test_concurrent_writers_get_contiguous_versions_and_none_is_lost(
    repository: MongoDocumentRepository,
) -> None:
    document = await _create(repository)
    lost_races = 0

    async def writer(index: int) -> int:
        nonlocal lost_races
        for _ in range(10 * WRITERS):  # each lost race means another writer made progress
            current = await repository.get(document.id, fresh=True)
            assert current is not None
            changed = _next(current, f"writer {index}")
            if await repository.save(changed, current, Change(ChangeKind.UPDATED, f"w{index}")):
                return changed.version
            lost_races += 1
        raise AssertionError("writer starved")

    won = await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    assert sorted(won) == list(range(2, WRITERS + 2))
    assert await _stored_versions(document.id) == list(range(1, WRITERS + 2))
    history = [s.decode() for s in await repository.versions(document.id, 0, 1000)]
    assert sorted(d.content for d in history[1:]) == sorted(f"writer {i}" for i in range(WRITERS))
    assert lost_races > 0  # the writers really raced


async def test_a_retried_compare_and_set_that_had_applied_is_not_a_lost_race(
    repository: MongoDocumentRepository,
) -> None:
    """A retry after a reply lost in transit finds its own write in place: True, so the service
    does not apply the change a second time; another writer's version is still a lost race."""
    document = await _create(repository)
    change = Change(ChangeKind.UPDATED, "retrying writer")
    tip = await repository._tip(document)
    assert tip is not None

    def step_two(content: str) -> tuple[Document, dict[str, object]]:
        written = _next(document, content)
        stored = next_content(document.content, content, tip, 2, HistoryPolicy())
        return written, repository._changed_fields(written, document, stored.tip, change)

    mine, fields = step_two("applied, reply lost")
    assert await repository._compare_and_set(mine, fields, 1)
    assert await repository._compare_and_set(mine, fields, 1)  # the retry: the same fields
    theirs, rival = step_two("a rival for the same version")
    assert not await repository._compare_and_set(theirs, rival, 1)
    current = await repository.get(document.id, fresh=True)
    assert current is not None and (current.version, current.content) == (2, mine.content)

    # The retry may come after the next writer moved the document on (so the document holds
    # that writer's write_id): the snapshot of version 2, which the next writer repaired before
    # its compare-and-set, still says whose write it was.
    later = Change(ChangeKind.UPDATED, "the next writer")
    assert await repository.save(_next(current, "the next write"), current, later)
    assert await repository._compare_and_set(mine, fields, 1)
    assert not await repository._compare_and_set(theirs, rival, 1)
    contents = [s.decode().content for s in await repository.versions(document.id, 0, 1000)]
    assert contents == ["", mine.content, "the next write"]


async def test_crash_between_compare_and_set_and_snapshot_is_repaired(
    repository: MongoDocumentRepository,
) -> None:
    document = await _create(repository)
    crashed = _next(document, "written, then the process died")
    lost = Change(ChangeKind.UPDATED, "crashed writer", "its append never happened")
    assert await _compare_and_set_only(repository, crashed, document, lost)
    assert await _stored_versions(document.id) == [1]

    # A reader of the history sees the newest version anyway, and writes it down, with the
    # audit trail the document carries.
    snapshots = await repository.versions(document.id, 0, 1000)
    history = [s.decode() for s in snapshots]
    assert [d.version for d in history] == [1, 2]
    assert history[-1].content == crashed.content
    assert [s.change for s in snapshots] == [Change(ChangeKind.CREATED, "creator"), lost]
    assert await repository.version(document.id, 2) == snapshots[-1]
    assert await _stored_versions(document.id) == [1, 2]
    repaired = await repository.version(document.id, 2)
    assert repaired is not None and repaired.change == lost

    # A crash again; this time the next writer repairs it before moving on.
    current = await repository.get(document.id, fresh=True)
    assert current is not None
    again = _next(current, "crashed again")
    lost_again = Change(ChangeKind.DELETED, "second crash")
    assert await _compare_and_set_only(repository, again, current, lost_again)
    latest = await repository.get(document.id, fresh=True)
    assert latest is not None
    next_change = Change(ChangeKind.UPDATED, "next writer")
    assert await repository.save(_next(latest, "next writer"), latest, next_change)
    assert await _stored_versions(document.id) == [1, 2, 3, 4]
    snapshots = await repository.versions(document.id, 0, 1000)
    contents = [s.decode().content for s in snapshots]
    assert contents == ["", crashed.content, "crashed again", "next writer"]
    assert [s.change for s in snapshots[2:]] == [lost_again, next_change]


# -- the change feed's protocol (docservice/storage/mongo/feed.py) ----------------------------


@pytest.fixture
def quick_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Doubts settled and sweeps made after 0.2 s instead of seconds: the crash windows below
    are then reached within a test's time."""
    monkeypatch.setattr(feed, "SETTLE_SECONDS", 0.2)
    monkeypatch.setattr(feed, "SWEEP_SECONDS", 0.2)


async def _events_until(
    repository: MongoDocumentRepository, document_id: str, versions: int, after: int
) -> list[FeedEvent]:
    """The document's events in the feed after `after`, read until `versions` of them came
    (bounded). nx-27017 keeps one set of collections for every database name, so the log is
    the whole session's: read from where it stood when the test began."""
    mine: list[FeedEvent] = []
    for _ in range(200):
        page = await repository.events(after, 10_000)
        mine += [e for e in page.events if e.document.id == document_id]
        after = page.through
        if len(mine) >= versions:
            return mine
        if not page.events:
            await asyncio.sleep(0.05)
    raise AssertionError(f"the feed never delivered {versions} events of {document_id}")


async def test_feed_a_write_that_crashed_after_its_compare_and_set_is_published_by_the_sweep(
    repository: MongoDocumentRepository, quick_settling: None
) -> None:
    start = (await repository.feed_position()).head
    document = await _create(repository)
    crashed = _next(document, "written, then the process died")
    lost = Change(ChangeKind.UPDATED, "crashed writer")
    assert await _compare_and_set_only(repository, crashed, document, lost)
    events = await _events_until(repository, document.id, 2, start)
    assert [(e.document.version, e.change) for e in events] == [
        (1, Change(ChangeKind.CREATED, "creator")),
        (2, lost),
    ]
    assert events[0].sequence < events[1].sequence
    snapshot = await VersionRecord.get(f"{document.id}:2")
    assert snapshot is not None and snapshot.sequence == events[1].sequence


async def test_feed_a_hole_holds_readers_back_then_is_voided(
    repository: MongoDocumentRepository, quick_settling: None
) -> None:
    """A number claimed and never announced (a writer that died, or is slow): readers stop
    before it rather than pass it, then void it; an announcer that comes late gets another."""
    before = await repository.feed_position()
    hole = await repository._feed._claim()
    document = await _create(repository)
    first = await repository.events(before.head, 10_000)
    assert hole > before.head and first.through < hole
    assert document.id not in {e.document.id for e in first.events}
    events = await _events_until(repository, document.id, 1, before.head)
    assert events[0].sequence > hole
    with pytest.raises(DuplicateKeyError):  # what a late announcer of the hole runs into
        await repository._feed._events.insert_one({"_id": hole, "document_id": "late"})


async def test_feed_an_event_announced_without_its_snapshot_is_settled_by_a_reader(
    repository: MongoDocumentRepository, quick_settling: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that died between announcing its number and writing its snapshot: a reader
    writes the snapshot from the document, with that number. (The sweep would also publish
    it, under another number, voiding this one: it is kept out of the way here.)"""
    monkeypatch.setattr(feed, "SWEEP_SECONDS", 3600)
    repository._feed._swept_at = time.monotonic()
    start = (await repository.feed_position()).head
    document = await _create(repository)
    crashed = _next(document, "announced, then the process died")
    lost = Change(ChangeKind.UPDATED, "crashed writer")
    assert await _compare_and_set_only(repository, crashed, document, lost)
    sequence = await repository._feed._announce(document.id, 2)
    events = await _events_until(repository, document.id, 2, start)
    assert [e.sequence for e in events][1] == sequence
    assert events[1].change == lost
    versions = [s.decode().content for s in await repository.versions(document.id, 0, 10)]
    assert versions == ["", crashed.content]


async def test_feed_one_event_per_version_when_a_repair_races_the_writer(
    repository: MongoDocumentRepository,
) -> None:
    """The writer and a repair both publish version 2: the snapshot's key lets one number in;
    the other is void, so the feed holds version 2 once."""
    start = (await repository.feed_position()).head
    document = await _create(repository)
    changed = _next(document, "two publishers")
    change = Change(ChangeKind.UPDATED, "writer")
    assert await _compare_and_set_only(repository, changed, document, change)
    current = await repository.get(document.id, fresh=True)
    assert current is not None
    tip = await repository._tip(current)
    assert tip is not None
    await asyncio.gather(
        repository._repair_snapshot(current, tip),
        repository._repair_snapshot(current, tip),
    )
    events = await _events_until(repository, document.id, 2, start)
    assert [e.document.version for e in events] == [1, 2]
