"""Version content as keyframes and deltas (docservice/storage/history.py) instead of full copies.

Three steps, the first two safe to run again: add the content columns (nullable, where missing);
convert the history document by document, committing each batch (storage/sql/convert.py), so an
interrupted run resumes where it stopped; then drop the full-copy column, make the new columns
required and index the rows that hold content. The revision is stamped only when all three are done.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from docservice.storage.history import HistoryPolicy
from docservice.storage.sql.convert import convert_history, restore_full_copies

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REQUIRED: dict[str, sa.types.TypeEngine[Any]] = {
    "content_version": sa.BigInteger(),
    "content_chain": sa.BigInteger(),
    "content_depth": sa.Integer(),
    "content_bytes": sa.BigInteger(),
    "content_checksum": sa.BigInteger(),
}
OPTIONAL: dict[str, sa.types.TypeEngine[Any]] = {
    "content_kind": sa.SmallInteger(),
    "content_base": sa.BigInteger(),
    "content_payload": sa.LargeBinary(),
}


def upgrade() -> None:
    bind = op.get_bind()
    present = {c["name"] for c in sa.inspect(bind).get_columns("document_versions")}
    for name, kind in {**REQUIRED, **OPTIONAL}.items():
        if name not in present:
            op.add_column("document_versions", sa.Column(name, kind, nullable=True))
    with op.get_context().autocommit_block():  # commits the new columns
        convert_history(bind.engine, HistoryPolicy())
    with op.batch_alter_table("document_versions") as batch:
        if "content" in present:
            batch.drop_column("content")
        for name, kind in REQUIRED.items():
            batch.alter_column(name, existing_type=kind, nullable=False)
    holders = sa.text("content_kind IS NOT NULL")
    op.create_index(
        "ix_document_versions_holders",
        "document_versions",
        ["document_id", "version"],
        postgresql_where=holders,
        sqlite_where=holders,
    )


def downgrade() -> None:
    """Every version a full copy again (in one transaction: a downgrade is rare)."""
    op.drop_index("ix_document_versions_holders", "document_versions")
    with op.batch_alter_table("document_versions") as batch:
        batch.add_column(sa.Column("content", sa.Text(), nullable=True))
    restore_full_copies(op.get_bind())
    with op.batch_alter_table("document_versions") as batch:
        batch.alter_column("content", existing_type=sa.Text(), nullable=False)
        for name in (*REQUIRED, *OPTIONAL):
            batch.drop_column(name)
