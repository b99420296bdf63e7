"""What the stored history of a document looks like underneath the API, on any backend: the
`content_*` fields of each version row (docservice/storage/history.py), and ways to damage them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from docservice.app import App
from docservice.core.repository import DocumentRepository
from docservice.storage.mongo.models import VersionRecord, version_id
from docservice.storage.mongo.repository import MongoDocumentRepository
from docservice.storage.sql.repository import SqlDocumentRepository
from docservice.storage.sql.schema import document_versions

__all__ = ["StoredRow", "damage", "store_of", "stored_rows"]


@dataclass(frozen=True)
class StoredRow:
    version: int
    content_version: int
    content_chain: int
    content_depth: int
    content_kind: int | None
    payload_bytes: int


def store_of(app: App) -> DocumentRepository:
    """The database repository of an app, under the cache if there is one."""
    repository = app.repository
    return getattr(repository, "inner", repository)


async def stored_rows(app: App, document_id: str) -> list[StoredRow]:
    store = store_of(app)
    if isinstance(store, SqlDocumentRepository):
        table = document_versions.c
        statement = (
            select(document_versions)
            .where(table.document_id == document_id)
            .order_by(table.version)
        )
        async with store._engine.connect() as conn:
            rows: list[Any] = list((await conn.execute(statement)).all())
    else:
        assert isinstance(store, MongoDocumentRepository)
        rows = await VersionRecord.find({"document_id": document_id}).sort("version").to_list()
    return [
        StoredRow(
            r.version,
            r.content_version,
            r.content_chain,
            r.content_depth,
            r.content_kind,
            len(r.content_payload or b""),
        )
        for r in rows
    ]


async def damage(app: App, document_id: str, version: int, **fields: Any) -> None:
    """Overwrite stored `content_*` fields of one version row, as a bad disk or a bug would."""
    store = store_of(app)
    if isinstance(store, SqlDocumentRepository):
        table = document_versions.c
        statement = (
            update(document_versions)
            .where(table.document_id == document_id, table.version == version)
            .values(**fields)
        )
        async with store._engine.begin() as conn:
            assert (await conn.execute(statement)).rowcount == 1
    else:
        assert isinstance(store, MongoDocumentRepository)
        collection = VersionRecord.get_pymongo_collection()
        result = await collection.update_one(
            {"_id": version_id(document_id, version)}, {"$set": fields}
        )
        assert result.matched_count == 1


async def delete_row(app: App, document_id: str, version: int) -> None:
    """Remove one version row entirely (a base gone missing)."""
    store = store_of(app)
    if isinstance(store, SqlDocumentRepository):
        table = document_versions.c
        async with store._engine.begin() as conn:
            await conn.execute(
                document_versions.delete().where(
                    table.document_id == document_id, table.version == version
                )
            )
    else:
        assert isinstance(store, MongoDocumentRepository)
        collection = VersionRecord.get_pymongo_collection()
        await collection.delete_one({"_id": version_id(document_id, version)})
