"""SQLAlchemy Core tables for the SQL backends (SQLite and PostgreSQL).

The live schema is created by Alembic migrations (`migrations/` beside this module); these
definitions describe it for queries and must stay in step with the newest migration (a test checks).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)

__all__ = [
    "UtcDateTime",
    "document_feed",
    "document_tags",
    "document_versions",
    "documents",
    "metadata",
]


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in and out; SQLite stores it as sortable naive ISO text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


metadata = MetaData()


def _history_columns() -> list[Column[object]]:
    """How a version's content is stored: keyframe, delta or a reference (storage/history.py)."""
    return [
        Column("content_version", BigInteger, nullable=False),
        Column("content_chain", BigInteger, nullable=False),
        Column("content_depth", Integer, nullable=False),
        Column("content_bytes", BigInteger, nullable=False),
        Column("content_checksum", BigInteger, nullable=False),
        Column("content_kind", SmallInteger, nullable=True),
        Column("content_base", BigInteger, nullable=True),
        Column("content_payload", LargeBinary, nullable=True),
    ]


def _audit_columns() -> list[Column[object]]:
    """Who made a version, with which kind of write and why (core.repository.Change)."""
    return [
        Column("change_kind", SmallInteger, nullable=False, server_default="0"),
        Column("changed_by", Text, nullable=False, server_default=""),
        Column("change_message", Text, nullable=False, server_default=""),
        Column("reverted_from", BigInteger, nullable=False, server_default="0"),
    ]


def _content_columns() -> list[Column[object]]:
    """The columns a document and each of its version snapshots both have."""
    return [
        Column("title", Text, nullable=False),
        Column("status", SmallInteger, nullable=False),
        Column("author", Text, nullable=False),
        Column("tags", JSON, nullable=False),
        Column("category", Text, nullable=False),
        Column("comments", JSON, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("deleted_at", UtcDateTime, nullable=True),
    ]


documents = Table(
    "documents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("request_id", String(128), nullable=True, unique=True),
    Column("content", Text, nullable=False),
    *_content_columns(),
)
# The list order (updated_at DESC, id DESC) for live documents, for everything, and per filter.
Index(
    "ix_documents_live_order",
    documents.c.updated_at,
    documents.c.id,
    postgresql_where=documents.c.deleted_at.is_(None),
    sqlite_where=documents.c.deleted_at.is_(None),
)
Index("ix_documents_order", documents.c.updated_at, documents.c.id)
Index("ix_documents_author_order", documents.c.author, documents.c.updated_at, documents.c.id)
Index("ix_documents_category_order", documents.c.category, documents.c.updated_at, documents.c.id)
Index("ix_documents_status_order", documents.c.status, documents.c.updated_at, documents.c.id)
# The other orders (order_by create_time, title), alone and after author.
Index("ix_documents_created_order", documents.c.created_at, documents.c.id)
Index("ix_documents_title_order", documents.c.title, documents.c.id)
Index(
    "ix_documents_author_created_order", documents.c.author, documents.c.created_at, documents.c.id
)
Index("ix_documents_author_title_order", documents.c.author, documents.c.title, documents.c.id)

document_versions = Table(
    "document_versions",
    metadata,
    Column("document_id", String(36), ForeignKey("documents.id"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    *_content_columns(),
    *_history_columns(),
    *_audit_columns(),
    # The version's place in the change feed (storage/sql/feed.py); every write sets it.
    Column("sequence", BigInteger, nullable=True),
    Index("ix_document_versions_sequence", "sequence", unique=True),
)
# The rows that hold content (keyframes and deltas), for reading a chain past the rows between.
Index(
    "ix_document_versions_holders",
    document_versions.c.document_id,
    document_versions.c.version,
    postgresql_where=document_versions.c.content_kind.is_not(None),
    sqlite_where=document_versions.c.content_kind.is_not(None),
)

# One row per (document, tag) so that the tag filter is an index lookup on both dialects.
document_tags = Table(
    "document_tags",
    metadata,
    Column("document_id", String(36), ForeignKey("documents.id"), primary_key=True),
    Column("tag", Text, primary_key=True),
    Index("ix_document_tags_tag", "tag", "document_id"),
)

# The change feed's one row: the log's identity and the last sequence handed out.
document_feed = Table(
    "document_feed",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("log_id", String(32), nullable=False),
    Column("head", BigInteger, nullable=False),
)
