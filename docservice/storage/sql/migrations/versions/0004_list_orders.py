"""Indexes behind every ListDocuments order (AIP-132 order_by): create_time and title, each
also after author (the filter most lists carry), ties broken by id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_documents_created_order": ["created_at", "id"],
    "ix_documents_title_order": ["title", "id"],
    "ix_documents_author_created_order": ["author", "created_at", "id"],
    "ix_documents_author_title_order": ["author", "title", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "documents", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "documents")
