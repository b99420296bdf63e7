"""Small pure helpers around the generated `Document` message: ids, etags, timestamps."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from docservice._proto.document import ChangeKind, Document, DocumentStatus, DocumentVersion
from docservice.core.errors import InvalidArgument
from docservice.core.repository import Change, Snapshot

__all__ = [
    "EDITABLE_FIELDS",
    "change_values",
    "editable_values",
    "etag_for",
    "format_timestamp",
    "parse_document_id",
    "parse_timestamp",
    "stored_change",
    "stored_document",
    "utc_now",
    "version_message",
]

# The fields a client may set; everything else is owned by the service.
EDITABLE_FIELDS = ("title", "content", "status", "author", "tags", "category", "comments")


def parse_document_id(raw: str, field: str = "id") -> str:
    """Return the canonical (lower-case, hyphenated) form of a UUID or raise InvalidArgument."""
    if not raw:
        raise InvalidArgument.of(field, "is required")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidArgument.of(field, "must be a UUID") from None


def editable_values(document: Document) -> dict[str, Any]:
    """The client-editable fields as plain values, for a storage backend to write."""
    return {
        "title": document.title,
        "content": document.content,
        "status": int(document.status),
        "author": document.author,
        "tags": list(document.tags),
        "category": document.category,
        "comments": list(document.comments),
    }


def stored_document(
    document_id: str,
    version: int,
    record: Any,
    *,
    created_at: str,
    updated_at: str,
    deleted_at: str,
    content: str | None = None,
) -> Document:
    """The message for a stored state: `record` has the editable fields as attributes (a SQL
    row, a Beanie model); timestamps come as RFC 3339 strings, deleted_at "" when live.
    `content` is given for a version row, which stores its content apart (storage/history.py)."""
    return Document(
        id=document_id,
        title=record.title,
        content=record.content if content is None else content,
        status=DocumentStatus(record.status),
        author=record.author,
        tags=list(record.tags),
        category=record.category,
        comments=list(record.comments),
        created_at=created_at,
        updated_at=updated_at,
        is_deleted=bool(deleted_at),
        version=version,
        etag=etag_for(document_id, version),
        deleted_at=deleted_at,
    )


def etag_for(document_id: str, version: int) -> str:
    """AIP-154 etag: a quoted opaque string that changes with every version."""
    digest = hashlib.blake2b(f"{document_id}:{version}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. 2026-11-26T10:00:00.123456Z."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"  # %Y need not pad years before 1000


def parse_timestamp(text: str) -> datetime:
    """Inverse of format_timestamp; ValueError unless `text` is an ISO time with an offset."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.astimezone(UTC)


def version_message(snapshot: Snapshot) -> DocumentVersion:
    """A stored snapshot as the DocumentVersion message (grpc/wire.py frames the same bytes)."""
    return DocumentVersion(
        version_id=str(snapshot.version),
        document=snapshot.decode(),
        timestamp=snapshot.updated_at,
        version=snapshot.version,
        changed_by=snapshot.change.by,
        change_kind=snapshot.change.kind,
        change_message=snapshot.change.message,
        reverted_from=snapshot.change.reverted_from,
    )


def stored_change(record: Any) -> Change:
    """The audit trail of a stored version: `record` has the change_* fields as attributes."""
    kind = ChangeKind(record.change_kind)  # a kind unknown here stays its number
    return Change(kind, record.changed_by, record.change_message, record.reverted_from)


def change_values(change: Change) -> dict[str, Any]:
    """The fields a version's record stores for `change` (read back by stored_change)."""
    return {
        "change_kind": int(change.kind),
        "changed_by": change.by,
        "change_message": change.message,
        "reverted_from": change.reverted_from,
    }
