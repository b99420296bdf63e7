"""The statements that read version history in the SQL store (the format is
docservice/storage/history.py): a version with the rows that rebuild it, the holders of a chain
below a row, and the writer's fresh read of a document with the tip of its version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, null, select, type_coerce, union_all

from docservice.storage.history import CONTENT_FIELDS, Tip
from docservice.storage.sql.schema import document_versions, documents

__all__ = ["CHAIN_BELOW", "FRESH_BY_ID", "TIP", "VERSION", "tip_of"]

_held = document_versions.alias("held")
_row = document_versions.alias("row")
_V = document_versions.c


def _of_the_row(column: str) -> Any:
    """A field of the row named by the parameters, as a scalar subquery: evaluated once, so
    the chain below is a range scan of the holders' index whatever the planner estimates."""
    return (
        select(_row.c[column])
        .where(
            _row.c.document_id == bindparam("match_id"),
            _row.c.version == bindparam("match_version"),
        )
        .scalar_subquery()
    )


def _chain_below(columns: list[Any]) -> Select[Any]:
    """The holders of a row's chain below it, from the keyframe up to the row's holder: what
    rebuilds its content (at most K + 1 rows)."""
    chain = _of_the_row("content_chain")
    return select(*columns).where(
        _held.c.document_id == bindparam("match_id"),
        _held.c.version >= chain,
        _held.c.version <= _of_the_row("content_version"),
        _held.c.version < bindparam("match_version"),
        _held.c.content_kind.is_not(None),
        _held.c.content_chain == chain,
    )


# The rows that rebuild content carry only what a rebuild reads.
_REBUILT_FROM = ("version", *CONTENT_FIELDS)
CHAIN_BELOW = _chain_below([_held.c[name] for name in _REBUILT_FROM])
# Version n, then the rows that rebuild it (their other columns NULL), in one statement.
VERSION = union_all(
    select(document_versions).where(
        _V.document_id == bindparam("match_id"), _V.version == bindparam("match_version")
    ),
    _chain_below(
        [
            _held.c[c.name]
            if c.name in _REBUILT_FROM
            else type_coerce(null(), c.type).label(c.name)
            for c in document_versions.columns
        ]
    ),
)
# The writer's fresh read: the document and the tip of its current version, in one statement.
TIP_COLUMNS = [
    document_versions.c[name].label(f"tip_{name}")
    for name in (
        "content_version",
        "content_chain",
        "content_depth",
        "content_bytes",
        "content_checksum",
    )
]
FRESH_BY_ID = (
    select(documents, *TIP_COLUMNS)
    .outerjoin(
        document_versions,
        and_(
            document_versions.c.document_id == documents.c.id,
            document_versions.c.version == documents.c.version,
        ),
    )
    .where(documents.c.id == bindparam("match_id"))
)
TIP = select(*TIP_COLUMNS).where(
    document_versions.c.document_id == bindparam("match_id"),
    document_versions.c.version == bindparam("match_version"),
)


def tip_of(row: Row[Any]) -> Tip:
    """The tip selected by FRESH_BY_ID or TIP."""
    return Tip(
        row.tip_content_version,
        row.tip_content_chain,
        row.tip_content_depth,
        row.tip_content_bytes,
        row.tip_content_checksum,
    )
