"""The change feed: each version's place in one total order (`sequence`), and the log's counter.

Existing history gets sequences in the order it was written (each version's timestamp, ties by
document and version); `document_feed` holds the log's identity and the last sequence handed
out (storage/sql/feed.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUMBER_HISTORY = """
UPDATE document_versions SET sequence = ordered.n
FROM (
    SELECT document_id, version,
           row_number() OVER (ORDER BY updated_at, document_id, version) AS n
    FROM document_versions
) AS ordered
WHERE document_versions.document_id = ordered.document_id
  AND document_versions.version = ordered.version
"""


def upgrade() -> None:
    op.add_column("document_versions", sa.Column("sequence", sa.BigInteger(), nullable=True))
    op.execute(NUMBER_HISTORY)
    op.create_index("ix_document_versions_sequence", "document_versions", ["sequence"], unique=True)
    feed = op.create_table(
        "document_feed",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("log_id", sa.String(32), nullable=False),
        sa.Column("head", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(feed, [{"id": 1, "log_id": uuid.uuid4().hex, "head": 0}])
    op.execute(
        "UPDATE document_feed SET head = (SELECT coalesce(max(sequence), 0) FROM document_versions)"
    )


def downgrade() -> None:
    op.drop_table("document_feed")
    op.drop_index("ix_document_versions_sequence", "document_versions")
    with op.batch_alter_table("document_versions") as batch:
        batch.drop_column("sequence")
