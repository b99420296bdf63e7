"""What every backend does alike to answer a `ListQuery`: the filters on plain fields, and the
keyset arithmetic (fetch one row beyond the page to learn whether another page follows)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from docservice._proto.document import Document
from docservice.core.repository import ListQuery, Page

__all__ = ["equality_filters", "page_of", "rows_to_fetch"]

Row = TypeVar("Row")


def equality_filters(query: ListQuery) -> dict[str, object]:
    """The filters that compare one stored field with a value, by field name (the deleted and
    tag filters are stored differently by each backend)."""
    filters: dict[str, object] = {}
    if query.status is not None:
        filters["status"] = query.status
    if query.author:
        filters["author"] = query.author
    if query.category:
        filters["category"] = query.category
    return filters


def rows_to_fetch(query: ListQuery) -> int:
    """The page and one row more: whether that one exists says whether another page follows."""
    return query.limit + 1


def page_of(
    rows: Sequence[Row],
    query: ListQuery,
    total_size: int,
    to_document: Callable[[Row], Document],
) -> Page:
    """The page for `rows` fetched with `rows_to_fetch(query)` as their limit, in list order."""
    documents = [to_document(row) for row in rows[: query.limit]]
    has_more = len(rows) > query.limit
    return Page.of(
        documents, total_size, has_more, max_bytes=query.max_bytes, order_field=query.order.field
    )
