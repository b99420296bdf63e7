"""Small pure helpers around the generated `Document` message: ids, etags, timestamps."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from docservice._proto.document import Document, DocumentVersion
from docservice.errors import InvalidArgument

__all__ = [
    "EDITABLE_FIELDS",
    "etag_for",
    "format_timestamp",
    "parse_document_id",
    "parse_timestamp",
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


def etag_for(document_id: str, version: int) -> str:
    """AIP-154 etag: a quoted opaque string that changes with every version."""
    digest = hashlib.blake2b(f"{document_id}:{version}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. 2026-11-26T10:00:00.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Inverse of format_timestamp; ValueError unless `text` is an ISO time with an offset."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.astimezone(UTC)


def version_message(snapshot: Document) -> DocumentVersion:
    """Wrap a stored snapshot as the legacy DocumentVersion message."""
    return DocumentVersion(
        version_id=str(snapshot.version),
        document=snapshot,
        timestamp=snapshot.updated_at,
        version=snapshot.version,
    )
