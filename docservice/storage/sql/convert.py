"""The data step of migration 0002: full-copy history rows to keyframes and deltas.

Runs on connections of its own from Alembic's (synchronous) engine, while the migration's
connection waits outside any transaction. Documents are converted a batch at a time, each
batch committed on its own: a migration interrupted midway keeps what it finished, and the next
run (the revision is stamped only at its end) converts the rest. A document is converted in one
transaction with all its rows, so it is either still a full copy or wholly converted; rows not
yet converted have no `content_version`.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from docservice.storage.history import (
    HistoryPolicy,
    Rebuild,
    StoredContent,
    first_content,
    next_content,
)

__all__ = ["BATCH_DOCUMENTS", "convert_history", "restore_full_copies"]

BATCH_DOCUMENTS = 50
ROWS_PER_READ = 200

# The table as it is while the migration runs: the old content column beside the new ones.
_versions = sa.table(
    "document_versions",
    sa.column("document_id", sa.String),
    sa.column("version", sa.BigInteger),
    sa.column("content", sa.Text),
    sa.column("content_version", sa.BigInteger),
    sa.column("content_chain", sa.BigInteger),
    sa.column("content_depth", sa.Integer),
    sa.column("content_bytes", sa.BigInteger),
    sa.column("content_checksum", sa.BigInteger),
    sa.column("content_kind", sa.SmallInteger),
    sa.column("content_base", sa.BigInteger),
    sa.column("content_payload", sa.LargeBinary),
)

# In document order from where the last batch ended: one pass over the primary key in all.
_UNCONVERTED = (
    sa.select(_versions.c.document_id)
    .where(
        _versions.c.content_version.is_(None),
        _versions.c.document_id > sa.bindparam("after_id"),
    )
    .distinct()
    .order_by(_versions.c.document_id)
    .limit(sa.bindparam("batch"))
)
_ROWS = (
    sa.select(_versions.c.version, _versions.c.content)
    .where(
        _versions.c.document_id == sa.bindparam("match_id"),
        _versions.c.version > sa.bindparam("after_version"),
    )
    .order_by(_versions.c.version)
    .limit(ROWS_PER_READ)
)
_SET_CONTENT = (
    sa.update(_versions)
    .where(
        _versions.c.document_id == sa.bindparam("match_id"),
        _versions.c.version == sa.bindparam("match_version"),
    )
    .values(
        {
            name: sa.bindparam(name)
            for name in (
                "content_version",
                "content_chain",
                "content_depth",
                "content_bytes",
                "content_checksum",
                "content_kind",
                "content_base",
                "content_payload",
            )
        }
    )
)


def convert_history(
    engine: Engine,
    policy: HistoryPolicy,
    *,
    batch: int = BATCH_DOCUMENTS,
    after_batch: Callable[[int], None] | None = None,
) -> int:
    """Convert every full-copy document, committing after each batch; returns how many.

    `after_batch` is told the running count after each commit (tests interrupt there).
    """
    converted, after_id = 0, ""
    while True:
        with engine.begin() as connection:
            params = {"batch": batch, "after_id": after_id}
            ids = connection.execute(_UNCONVERTED, params).scalars().all()
            for document_id in ids:
                _convert_document(connection, document_id, policy)
        if not ids:
            return converted
        converted += len(ids)
        after_id = ids[-1]
        if after_batch is not None:
            after_batch(converted)


def _convert_document(connection: Connection, document_id: str, policy: HistoryPolicy) -> None:
    previous: tuple[str, StoredContent] | None = None
    after = 0
    while True:
        rows = connection.execute(_ROWS, {"match_id": document_id, "after_version": after}).all()
        if not rows:
            return
        updates = []
        for version, content in rows:
            if previous is None:
                stored = first_content(content, version)
            else:
                stored = next_content(previous[0], content, previous[1].tip, version, policy)
            updates.append({"match_id": document_id, "match_version": version, **stored.fields()})
            previous = (content, stored)
        connection.execute(_SET_CONTENT, updates)
        after = rows[-1].version


_HISTORY_ROWS = (
    sa.select(
        _versions.c.version,
        *(
            _versions.c[name]
            for name in (
                "content_version",
                "content_chain",
                "content_depth",
                "content_bytes",
                "content_checksum",
                "content_kind",
                "content_base",
                "content_payload",
            )
        ),
    )
    .where(
        _versions.c.document_id == sa.bindparam("match_id"),
        _versions.c.version > sa.bindparam("after_version"),
    )
    .order_by(_versions.c.version)
    .limit(ROWS_PER_READ)
)
_SET_COPY = (
    sa.update(_versions)
    .where(
        _versions.c.document_id == sa.bindparam("match_id"),
        _versions.c.version == sa.bindparam("match_version"),
    )
    .values(content=sa.bindparam("copy"))
)


def restore_full_copies(connection: Connection) -> None:
    """The downgrade's data step: every version's content rebuilt into the `content` column
    (on the migration's connection, in its one transaction)."""
    ids = connection.execute(sa.select(_versions.c.document_id).distinct()).scalars().all()
    for document_id in ids:
        rebuild = Rebuild(document_id)
        after = 0
        while rows := connection.execute(
            _HISTORY_ROWS, {"match_id": document_id, "after_version": after}
        ).all():
            copies = []
            for row in rows:
                rebuild.feed(row)
                copies.append(
                    {
                        "match_id": document_id,
                        "match_version": row.version,
                        "copy": rebuild.content(row),
                    }
                )
            connection.execute(_SET_COPY, copies)
            after = rows[-1].version
