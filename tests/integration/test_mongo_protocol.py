"""The MongoDB write protocol without transactions (see docservice/storage/mongo/repository.py):
concurrent writers produce contiguous versions, and a crash between the compare-and-set and the
snapshot insert is repaired."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from docservice._proto.document import ChangeKind, Document
from docservice.core.model import etag_for, format_timestamp, utc_now
from docservice.core.repository import Change
from docservice.storage.history import HistoryPolicy, next_content
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
