"""ListDocuments' filter and order on MongoDB: the filter tree (core/filtering.py) as a query
document whose keys are only ever our field names and operators, user text only ever a value
(a string or an integer, never a document: no `$where`, no operator injection), and the
keyset order of the page."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from docservice.core.filtering import And, Compare, HasTag, Node, Not
from docservice.core.repository import Order
from docservice.storage.mongo.models import microseconds

__all__ = ["after_condition", "filter_condition", "sort_keys"]

_OPERATORS = {"=": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
# Timestamps are compared as microseconds since the epoch (nx-27017, the test server, compares
# RFC 3339 strings as dates of one-second precision).
_STORED = {"updated_at": "updated_us", "created_at": "created_us"}


def _stored(field: str, value: str | int) -> tuple[str, str | int]:
    if field in _STORED:
        return _STORED[field], microseconds(str(value))
    return field, value


def filter_condition(node: Node) -> dict[str, Any]:
    if isinstance(node, Compare):
        field, value = _stored(node.field, node.value)
        return {field: {_OPERATORS[node.op]: value}}
    if isinstance(node, HasTag):
        return {"tags": {"$eq": node.tag}}
    if isinstance(node, Not):
        return {"$nor": [filter_condition(node.node)]}
    if isinstance(node, And):
        return {"$and": [filter_condition(n) for n in node.nodes]}
    return {"$or": [filter_condition(n) for n in node.nodes]}


def sort_keys(order: Order) -> list[tuple[str, int]]:
    direction = DESCENDING if order.descending else ASCENDING
    return [(_STORED.get(order.field, order.field), direction), ("_id", direction)]


def after_condition(order: Order, after: tuple[str, str]) -> dict[str, Any]:
    """Documents after (value, id) of the previous page's last, in `order`."""
    value, after_id = after
    field, bound = _stored(order.field, value)
    beyond = "$lt" if order.descending else "$gt"
    return {"$or": [{field: {beyond: bound}}, {field: bound, "_id": {beyond: after_id}}]}
