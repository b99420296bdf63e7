"""Databases written by the previous formats (every version a full copy, no audit trail) are
converted to keyframes and deltas, with the change kind derived from the rows: Alembic's 0002
and 0003 on SQLite and PostgreSQL, the conversion steps of `migrate` on MongoDB. Every version
reads back identical, and a conversion interrupted midway (inside a document, after others were
done) resumes on the next run and finishes."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pymongo import AsyncMongoClient

from docservice._proto.document import ChangeKind
from docservice.core.model import format_timestamp
from docservice.core.repository import Change, DocumentRepository
from docservice.storage.mongo import convert as mongo_convert
from docservice.storage.mongo.repository import MongoDocumentRepository
from docservice.storage.sql import convert as sql_convert
from docservice.storage.sql.migrate import downgrade, upgrade
from docservice.storage.sql.repository import SqlDocumentRepository, create_engine
from tests.support.backends import scratch_database

HEAD = "0005"
DOCUMENTS = 120  # more than one batch of the SQL conversion (50)
START = datetime(2026, 1, 1, tzinfo=UTC)


def histories(seed: int) -> dict[str, list[str]]:
    """Contents of each version of each document: edits, repeats, shrinking to empty, unicode."""
    rng = random.Random(seed)
    base = "".join(
        rng.choice(["alpha ", "beta ", "gamma\n", "δέλτα ", "😀 ", "𠜎"]) for _ in range(3000)
    )
    result = {}
    for n in range(DOCUMENTS):
        content = base[: rng.randrange(0, len(base))] if n % 3 else ""
        versions = [content]
        for _ in range(rng.randrange(0, 12)):
            roll = rng.random()
            if roll < 0.2:  # metadata-only: the same content again
                pass
            elif roll < 0.3:
                content = ""
            elif roll < 0.4 and len(versions) > 1:
                content = versions[rng.randrange(len(versions))]
            else:
                at = rng.randrange(len(content) + 1)
                content = (
                    content[:at] + rng.choice(["x", "🏳️‍🌈", "новый ", ""]) * 3 + content[at + 5 :]
                )
            versions.append(content)
        result[str(uuid.UUID(int=rng.getrandbits(128)))] = versions
    return result


def _state(document_id: str, version: int, content: str) -> dict[str, Any]:
    moment = START + timedelta(seconds=version)
    return {
        "title": f"v{version}",
        "content": content,
        "status": version % 3,
        "author": "migrated",
        "tags": [f"t{version}"],
        "category": "",
        "comments": [],
        "created_at": START,
        "updated_at": moment,
        "deleted_at": moment if _deleted(version) else None,
    }


def _deleted(version: int) -> bool:
    """Whether the migrated history has the document soft-deleted at `version`."""
    return version % 5 == 4


def _derived_kind(version: int) -> ChangeKind:
    """The change kind the migration derives from the rows (a revert left no mark)."""
    if version == 1:
        return ChangeKind.CREATED
    if _deleted(version) != _deleted(version - 1):
        return ChangeKind.DELETED if _deleted(version) else ChangeKind.RESTORED
    return ChangeKind.UPDATED


async def _read_all(repository: DocumentRepository, written: dict[str, list[str]]) -> None:
    for document_id, contents in written.items():
        page = await repository.versions(document_id, 0, 1000)
        assert [s.decode().content for s in page] == contents
        assert [s.version for s in page] == list(range(1, len(contents) + 1))
        assert [s.change for s in page] == [Change(_derived_kind(s.version)) for s in page]
        for number, content in enumerate(contents, 1):
            found = await repository.version(document_id, number)
            assert found is not None
            snapshot = found.decode()
            assert (snapshot.content, snapshot.title) == (content, f"v{number}")
            assert snapshot.content.encode() == content.encode()


class Interrupt(Exception):
    pass


def _failing_after(calls: int, function: Any) -> Any:
    """`function`, raising Interrupt from its `calls`-th call on (a process killed midway)."""
    count = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        if count >= calls:
            raise Interrupt
        return function(*args, **kwargs)

    return wrapper


# -- SQL -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    async with scratch_database(request.getfixturevalue("postgres_url"), "migration") as url:
        yield url


async def _write_full_copies(engine: Any, written: dict[str, list[str]]) -> None:
    """What revision 0001 stored: the document, and every version in full."""
    metadata = sa.MetaData()
    async with engine.begin() as conn:
        documents = await conn.run_sync(
            lambda sync: sa.Table("documents", metadata, autoload_with=sync)
        )
        versions = await conn.run_sync(
            lambda sync: sa.Table("document_versions", metadata, autoload_with=sync)
        )
        for document_id, contents in written.items():
            last = len(contents)
            await conn.execute(
                sa.insert(documents),
                {"id": document_id, "version": last, **_state(document_id, last, contents[-1])},
            )
            await conn.execute(
                sa.insert(versions),
                [
                    {"document_id": document_id, "version": n, **_state(document_id, n, c)}
                    for n, c in enumerate(contents, 1)
                ],
            )


async def _revision(engine: Any) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(sa.text("SELECT version_num FROM alembic_version")))


async def test_sql_full_copies_are_converted_and_an_interrupted_run_resumes(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = histories(1)
    engine = create_engine(sql_url)
    try:
        await upgrade(engine, "0001")
        await _write_full_copies(engine, written)
        versions_before = sum(len(c) for c in written.values())

        # Killed in the second batch: the first batch stays converted, the second is not.
        first_run = _failing_after(versions_before // 2, sql_convert.next_content)
        monkeypatch.setattr(sql_convert, "next_content", first_run)
        with pytest.raises(Interrupt):
            await upgrade(engine)
        monkeypatch.undo()
        assert await _revision(engine) == "0001"
        async with engine.connect() as conn:
            done = await conn.scalar(
                sa.text(
                    "SELECT count(DISTINCT document_id) FROM document_versions"
                    " WHERE content_version IS NOT NULL"
                )
            )
        assert done is not None and 0 < done < DOCUMENTS and done % sql_convert.BATCH_DOCUMENTS == 0

        converted: list[str] = []
        original = sql_convert._convert_document

        def counting(connection: Any, document_id: str, policy: Any) -> None:
            converted.append(document_id)
            original(connection, document_id, policy)

        monkeypatch.setattr(sql_convert, "_convert_document", counting)
        await upgrade(engine)  # resumes: only what the first run did not finish
        assert len(converted) == DOCUMENTS - done
        assert await _revision(engine) == HEAD
        await _read_all(SqlDocumentRepository(engine), written)

        await downgrade(engine, "0001")  # full copies again, then deltas again
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT document_id, version, content FROM document_versions")
            )
            copies = {(r.document_id, r.version): r.content for r in rows}
        assert copies == {
            (i, n): c for i, contents in written.items() for n, c in enumerate(contents, 1)
        }
        await upgrade(engine)
        await _read_all(SqlDocumentRepository(engine), written)
    finally:
        await engine.dispose()


# -- MongoDB -------------------------------------------------------------------------------


async def _write_mongo_full_copies(url: str, database: str, written: dict[str, list[str]]) -> None:
    """What the previous Mongo format stored. The last document lost its newest snapshot in a
    crash (the window the CAS + append protocol repairs)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        db = client[database]
        for index, (document_id, contents) in enumerate(written.items()):
            last = len(contents)
            state = _mongo_state(last, contents[-1])
            await db["documents"].insert_one({"_id": document_id, "request_id": None, **state})
            records = [
                {"_id": f"{document_id}:{n}", "document_id": document_id, **_mongo_state(n, c)}
                for n, c in enumerate(contents, 1)
            ]
            if index == len(written) - 1 and len(records) > 1:
                records.pop()
            await db["document_versions"].insert_many(records)
    finally:
        await client.close()


async def _forget_conversion(url: str, database: str) -> None:
    """Drop the marker of a finished conversion: nx-27017, the test server, keeps one set of
    collections whatever the database name, so the session's other apps have left theirs (on
    a real server a database written by the previous format has none)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client[database]["docservice_migrations"].delete_many({})
    finally:
        await client.close()


def _mongo_state(version: int, content: str) -> dict[str, Any]:
    state = _state("", version, content)
    moment: datetime = state["updated_at"]
    return {
        **state,
        "version": version,
        "created_at": format_timestamp(START),
        "updated_at": format_timestamp(moment),
        "updated_us": int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6),
        "deleted_at": format_timestamp(moment) if _deleted(version) else None,
        "is_deleted": _deleted(version),
    }


async def test_mongo_full_copies_are_converted_and_an_interrupted_run_resumes(
    mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = dict(list(histories(2).items())[:40])  # nx-27017 is slow; 40 documents will do
    while len(list(written.values())[-1]) < 3:  # the crashed one needs history to lose
        written.popitem()
    database = f"migration-{uuid.uuid4().hex[:8]}"
    await _write_mongo_full_copies(mongo_url, database, written)
    await _forget_conversion(mongo_url, database)
    snapshots = sum(len(c) for c in written.values())

    first_run = _failing_after(snapshots // 2, mongo_convert.next_content)
    monkeypatch.setattr(mongo_convert, "next_content", first_run)
    repository = MongoDocumentRepository(mongo_url, database)
    try:
        with pytest.raises(Interrupt):
            await repository.migrate()
    finally:
        await repository.close()
    monkeypatch.undo()

    converted: list[int] = []
    original = mongo_convert.convert_history

    async def counting(*args: Any, **kwargs: Any) -> int:
        converted.append(await original(*args, **kwargs))
        return converted[-1]

    monkeypatch.setattr("docservice.storage.mongo.repository.convert_history", counting)
    repository = MongoDocumentRepository(mongo_url, database)
    try:
        await repository.migrate()
        assert 0 < converted[0] < len(written)  # the documents the first run had not finished
        await _read_all(repository, written)
        await repository.migrate()
        assert converted[1] == 0  # done: later starts convert nothing
    finally:
        await repository.close()
