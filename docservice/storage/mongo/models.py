"""The Beanie models of the Mongo backend, their indexes, and how a Document maps onto them.

`documents` holds the current state (`_id` = the UUID string, `version` an int) with the tip of
its version's content; `document_versions` holds append-only snapshots (`_id` =
"{id}:{version}", unique on (document_id, version)): the metadata whole, the content as a
keyframe, a delta or a reference (the `content_*` fields of docservice/storage/history.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from beanie import Document as BeanieDocument
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from docservice._proto.document import Document
from docservice.core.model import change_values, editable_values, parse_timestamp, stored_document
from docservice.core.repository import Change
from docservice.storage.history import StoredContent as StoredHistory
from docservice.storage.history import Tip

__all__ = [
    "DocumentRecord",
    "StoredContent",
    "VersionRecord",
    "document_of",
    "microseconds",
    "stored_fields",
    "tip_of",
    "version_fields",
    "version_id",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoredContent(BaseModel):
    """The fields a document and each of its snapshots both have (timestamps as RFC 3339
    strings, as on the wire: BSON dates would lose the microseconds)."""

    version: int
    title: str
    status: int
    author: str
    tags: list[str]
    category: str
    comments: list[str]
    created_at: str
    updated_at: str
    deleted_at: str | None = None
    # updated_at in microseconds since the epoch: the list order and keyset position. (nx-27017,
    # the test server, reads RFC 3339 strings as dates of one-second precision when comparing.)
    updated_us: int
    # created_at likewise, for the create_time order and filter (None only on documents
    # written before it, which the migration gives one).
    created_us: int | None = None
    # Kept beside deleted_at for the live-documents filter: nx-27017 (the test server) counts
    # and combines `{deleted_at: None}` wrongly.
    is_deleted: bool = False
    # The audit trail of the change that made this version (core.repository.Change). The
    # document carries it too, so that a snapshot lost in a crash is repaired with it.
    change_kind: int = 0
    changed_by: str = ""
    change_message: str = ""
    reverted_from: int = 0
    # The compare-and-set that made this version (None for a create): a retry of it whose reply
    # was lost recognises its write here, on the document or, once it moved on, on the snapshot
    # (repository.py).
    write_id: str | None = None


class DocumentRecord(BeanieDocument, StoredContent):
    id: str = Field(alias="_id")  # type: ignore[assignment]
    request_id: str | None = None
    content: str
    # The tip of this version's content (history.Tip): the next writer's delta starts there.
    # None only on documents written before the history migration, which sets it.
    content_version: int | None = None
    content_chain: int | None = None
    content_depth: int | None = None
    content_bytes: int | None = None
    content_checksum: int | None = None
    # Full-text search (mongo/search.py); written with the rest, never read back here.
    search_terms: list[str] | None = None
    search_tf: dict[str, int] | None = None
    search_language: str | None = None

    class Settings:
        name = "documents"
        # nx-27017 (the test server) fails every insert into a collection with a compound
        # index over _id, so the list order is indexed on updated_at alone; ties are rare.
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("updated_us", DESCENDING)]),
            IndexModel([("created_us", DESCENDING)]),
            IndexModel([("title", ASCENDING)]),
            IndexModel([("author", ASCENDING), ("created_us", DESCENDING)]),
            IndexModel([("author", ASCENDING), ("title", ASCENDING)]),
            IndexModel([("author", ASCENDING), ("updated_us", DESCENDING)]),
            IndexModel([("category", ASCENDING), ("updated_us", DESCENDING)]),
            IndexModel([("status", ASCENDING), ("updated_us", DESCENDING)]),
            IndexModel([("tags", ASCENDING), ("updated_us", DESCENDING)]),
            IndexModel([("request_id", ASCENDING)], unique=True, sparse=True),
            IndexModel([("search_terms", ASCENDING)]),
        ]


class VersionRecord(BeanieDocument, StoredContent):
    id: str = Field(alias="_id")  # type: ignore[assignment]
    document_id: str
    content_version: int
    content_chain: int
    content_depth: int
    content_bytes: int
    content_checksum: int
    content_kind: int | None = None
    content_base: int | None = None
    content_payload: bytes | None = None
    # The version's event in the change feed (mongo/feed.py).
    sequence: int | None = None

    class Settings:
        name = "document_versions"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("document_id", ASCENDING), ("version", ASCENDING)], unique=True),
        ]


def microseconds(timestamp: str) -> int:
    """An RFC 3339 timestamp as microseconds since the epoch (`updated_us`)."""
    return (parse_timestamp(timestamp) - EPOCH) // timedelta(microseconds=1)


def version_id(document_id: str, version: int) -> str:
    return f"{document_id}:{version}"


def stored_fields(document: Document, tip: Tip, change: Change) -> dict[str, Any]:
    """The fields of `document`'s record: its state, the tip of its version's content and the
    change that made it."""
    return {
        **_metadata(document),
        "content": document.content,
        **tip_fields(tip),
        **change_values(change),
    }


def version_fields(document: Document, stored: StoredHistory, change: Change) -> dict[str, Any]:
    """The fields of the snapshot of `document`: its metadata, its content as `stored`."""
    content = {name: value for name, value in stored.fields().items() if value is not None}
    return {
        "_id": version_id(document.id, document.version),
        "document_id": document.id,
        **_metadata(document),
        **change_values(change),
        **content,  # a row that stores no content has no kind, base or payload at all
    }


def _metadata(document: Document) -> dict[str, Any]:
    values = editable_values(document)
    del values["content"]
    return {
        "version": document.version,
        **values,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
        "updated_us": microseconds(document.updated_at),
        "created_us": microseconds(document.created_at),
        "deleted_at": document.deleted_at or None,
        "is_deleted": document.is_deleted,
    }


def tip_fields(tip: Tip) -> dict[str, int]:
    return {
        "content_version": tip.content_version,
        "content_chain": tip.content_chain,
        "content_depth": tip.content_depth,
        "content_bytes": tip.content_bytes,
        "content_checksum": tip.content_checksum,
    }


def tip_of(record: DocumentRecord) -> Tip | None:
    """The tip a document record carries (None before the history migration)."""
    if record.content_version is None:
        return None
    return Tip.of(record)


def document_of(record: StoredContent, document_id: str, content: str | None = None) -> Document:
    """The Document of a record; a snapshot's `content` is rebuilt apart (history.Rebuild)."""
    return stored_document(
        document_id,
        record.version,
        record,
        created_at=record.created_at,
        updated_at=record.updated_at,
        deleted_at=record.deleted_at or "",
        content=content,
    )
