"""Documents, their version snapshots and their tags.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from docservice.storage.sql.schema import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _content_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("comments", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True, unique=True),
        *_content_columns(),
    )
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_documents_live_order",
        "documents",
        ["updated_at", "id"],
        postgresql_where=live,
        sqlite_where=live,
    )
    op.create_index("ix_documents_order", "documents", ["updated_at", "id"])
    op.create_index("ix_documents_author_order", "documents", ["author", "updated_at", "id"])
    op.create_index("ix_documents_category_order", "documents", ["category", "updated_at", "id"])
    op.create_index("ix_documents_status_order", "documents", ["status", "updated_at", "id"])
    op.create_table(
        "document_versions",
        sa.Column("document_id", sa.String(36), sa.ForeignKey("documents.id"), primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True),
        *_content_columns(),
    )
    op.create_table(
        "document_tags",
        sa.Column("document_id", sa.String(36), sa.ForeignKey("documents.id"), primary_key=True),
        sa.Column("tag", sa.Text(), primary_key=True),
    )
    op.create_index("ix_document_tags_tag", "document_tags", ["tag", "document_id"])


def downgrade() -> None:
    op.drop_table("document_tags")
    op.drop_table("document_versions")
    op.drop_table("documents")
