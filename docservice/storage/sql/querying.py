"""ListDocuments' filter and order in SQL: the filter tree (core/filtering.py) as a SQLAlchemy
condition, every value a bound parameter, and the keyset order of the page."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, not_, or_, tuple_

from docservice.core.filtering import And, Compare, HasTag, Node, Not
from docservice.core.model import parse_timestamp
from docservice.core.repository import Order
from docservice.storage.sql.schema import document_tags, documents

__all__ = ["after_condition", "filter_condition", "order_columns"]

_OPERATORS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
TIMESTAMPS = frozenset({"created_at", "updated_at"})


def filter_condition(node: Node) -> ColumnElement[bool]:
    if isinstance(node, Compare):
        value = parse_timestamp(str(node.value)) if node.field in TIMESTAMPS else node.value
        return _OPERATORS[node.op](documents.c[node.field], value)
    if isinstance(node, HasTag):
        return exists().where(
            document_tags.c.document_id == documents.c.id, document_tags.c.tag == node.tag
        )
    if isinstance(node, Not):
        return not_(filter_condition(node.node))
    if isinstance(node, And):
        return and_(*(filter_condition(n) for n in node.nodes))
    return or_(*(filter_condition(n) for n in node.nodes))


def order_columns(order: Order) -> tuple[Any, Any]:
    column, key = documents.c[order.field], documents.c.id
    return (column.desc(), key.desc()) if order.descending else (column.asc(), key.asc())


def after_condition(order: Order, after: tuple[str, str]) -> ColumnElement[bool]:
    """Rows after (value, id) in `order`: a row-value comparison, which both dialects answer
    from the (field, id) index."""
    value, after_id = after
    bound: Any = parse_timestamp(value) if order.field in TIMESTAMPS else value
    row = tuple_(documents.c[order.field], documents.c.id)
    position = tuple_(bound, after_id)
    return row < position if order.descending else row > position
