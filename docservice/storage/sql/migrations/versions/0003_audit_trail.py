"""The audit trail of each version: what kind of write made it, who, why, and for a revert
which version it restored.

Existing history gets the kind derived where the rows tell it (version 1 was created, a version
that sets `deleted_at` was a delete, one that clears it a restore, every other an update; a
revert left no mark, so it reads as an update) and no author (`changed_by` empty).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ChangeKind numbers (proto/document.proto): frozen on the wire, so safe to write down here.
CREATED, UPDATED, DELETED, RESTORED = 1, 2, 3, 4

DERIVE_KINDS = f"""
UPDATE document_versions SET change_kind = CASE
    WHEN version = 1 THEN {CREATED}
    WHEN deleted_at IS NOT NULL AND (
        SELECT previous.deleted_at FROM document_versions AS previous
        WHERE previous.document_id = document_versions.document_id
          AND previous.version = document_versions.version - 1
    ) IS NULL THEN {DELETED}
    WHEN deleted_at IS NULL AND (
        SELECT previous.deleted_at FROM document_versions AS previous
        WHERE previous.document_id = document_versions.document_id
          AND previous.version = document_versions.version - 1
    ) IS NOT NULL THEN {RESTORED}
    ELSE {UPDATED}
END
WHERE change_kind = 0
"""


def upgrade() -> None:
    with op.batch_alter_table("document_versions") as batch:
        batch.add_column(
            sa.Column("change_kind", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("changed_by", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("change_message", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("reverted_from", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(DERIVE_KINDS)


def downgrade() -> None:
    with op.batch_alter_table("document_versions") as batch:
        for name in ("reverted_from", "change_message", "changed_by", "change_kind"):
            batch.drop_column(name)
