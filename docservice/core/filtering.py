"""AIP-160 filters and AIP-132 order_by for ListDocuments: parsed here into a small typed tree,
which each store translates into its own query with the values bound as parameters (so user
text is only ever a value, never SQL or MongoDB syntax).

Filter grammar (a subset of AIP-160; keywords upper case, as the AIP has them):

    filter     := or ( [AND] or )*          juxtaposition is AND, as in AIP-160
    or         := unary ( OR unary )*       OR binds tighter than AND, as in AIP-160
    unary      := [NOT | -] primary
    primary    := "(" filter ")" | FIELD OP VALUE | "tags" ":" VALUE
    OP         := = | != | < | <= | > | >=
    VALUE      := "a quoted string" (\\" and \\\\ escape) | a bare word

Fields: title, author, category (text); status (DRAFT, PUBLISHED, ARCHIVED; = and != only);
create_time, update_time (RFC 3339 timestamps); version (an integer); on the change feed also
id (the document's). Stores translate a tree into their queries; `matches` evaluates one on a
document in memory (the change feed filters events so), with the same meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from docservice._proto.document import Document, DocumentStatus
from docservice.core.errors import InvalidArgument
from docservice.core.model import format_timestamp, parse_timestamp
from docservice.core.repository import Order

__all__ = [
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "And",
    "Compare",
    "HasTag",
    "Node",
    "Not",
    "Or",
    "Order",
    "matches",
    "parse_filter",
    "parse_order_by",
]

FIELD = "filter"
MAX_FILTER_LENGTH = 2000
MAX_FILTER_TERMS = 32
MAX_DEPTH = 8
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
TEXT_FIELDS = frozenset({"title", "author", "category"})
TIME_FIELDS = {"create_time": "created_at", "update_time": "updated_at"}
STATUS_NAMES = {s.name: s for s in DocumentStatus if s.name}
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Compare:
    """`field op value`: field is a stored column name (created_at, not create_time); value a
    str (text fields; timestamps in format_timestamp's form) or an int (status, version)."""

    field: str
    op: str
    value: str | int


@dataclass(frozen=True, slots=True)
class HasTag:
    tag: str


@dataclass(frozen=True, slots=True)
class Not:
    node: Node


@dataclass(frozen=True, slots=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    nodes: tuple[Node, ...]


Node = Compare | HasTag | Not | And | Or


# -- tokens ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<op><=|>=|!=|=|<|>|:)
  | (?P<paren>[()])
  | (?P<minus>-(?=[(A-Za-z_"]))
  | (?P<word>(?:[^\s()"=<>!:]|(?<=\d):(?=\d))+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, op, paren, minus, word, end
    text: str
    at: int  # 1-based character position, for the error message


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            raise _error(at + 1, f"unexpected character {text[at]!r}")
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup, match.group(), at + 1))
        at = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _error(at: int, problem: str) -> InvalidArgument:
    return InvalidArgument.of(FIELD, f"{problem} at position {at}")


def _unquote(token: _Token) -> str:
    if token.kind == "string":
        return re.sub(r"\\(.)", r"\1", token.text[1:-1])
    return token.text


# -- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, fields: frozenset[str]) -> None:
        self._tokens = _tokens(text)
        self._at = 0
        self._terms = 0
        self._text_fields = fields

    def parse(self) -> Node:
        node = self._and(0)
        token = self._peek()
        if token.kind != "end":
            raise _error(token.at, f"unexpected {token.text!r}")
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _next(self) -> _Token:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token.kind == "word" and token.text == word:
            self._at += 1
            return True
        return False

    def _and(self, depth: int) -> Node:
        nodes = [self._or(depth)]
        while True:
            if self._keyword("AND"):
                nodes.append(self._or(depth))
                continue
            token = self._peek()
            if token.kind in ("end",) or (token.kind == "paren" and token.text == ")"):
                break
            nodes.append(self._or(depth))  # juxtaposition: AND
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def _or(self, depth: int) -> Node:
        nodes = [self._unary(depth)]
        while self._keyword("OR"):
            nodes.append(self._unary(depth))
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def _unary(self, depth: int) -> Node:
        if self._keyword("NOT"):
            return Not(self._primary(depth))
        if self._peek().kind == "minus":
            self._next()
            return Not(self._primary(depth))
        return self._primary(depth)

    def _primary(self, depth: int) -> Node:
        token = self._next()
        if token.kind == "paren" and token.text == "(":
            if depth >= MAX_DEPTH:
                raise _error(token.at, f"nests parentheses deeper than {MAX_DEPTH}")
            node = self._and(depth + 1)
            closing = self._next()
            if closing.kind != "paren" or closing.text != ")":
                raise _error(closing.at, "expected ')'")
            return node
        if token.kind != "word" or token.text in ("AND", "OR", "NOT"):
            raise _error(token.at, f"expected a field name, got {token.text or 'the end'!r}")
        self._terms += 1
        if self._terms > MAX_FILTER_TERMS:
            raise _error(token.at, f"has more than {MAX_FILTER_TERMS} comparisons")
        op = self._next()
        if op.kind != "op":
            raise _error(op.at, f"expected an operator after {token.text!r}")
        value = self._next()
        if value.kind not in ("word", "string"):
            raise _error(value.at, f"expected a value after {op.text!r}")
        return _comparison(token, op, value, self._text_fields)


def _comparison(field: _Token, op: _Token, value: _Token, text_fields: frozenset[str]) -> Node:
    name, text = field.text, _unquote(value)
    if name == "tags":
        if op.text != ":":
            raise _error(op.at, 'tags takes ":" (tags:"x"), not ' + repr(op.text))
        return HasTag(text)
    if op.text == ":":
        raise _error(op.at, f"{name!r} takes a comparison (=, !=, <, <=, >, >=), not ':'")
    if name in text_fields:
        return Compare(name, op.text, text)
    if name in TIME_FIELDS:
        try:
            moment: datetime = parse_timestamp(text)
        except (ValueError, OverflowError):
            raise _error(value.at, f"{name} needs an RFC 3339 timestamp, got {text!r}") from None
        return Compare(TIME_FIELDS[name], op.text, format_timestamp(moment))
    if name == "version":
        if value.kind != "word" or not text.isascii() or not text.isdigit() or len(text) > 19:
            raise _error(value.at, f"version needs an integer, got {text!r}")
        number = int(text)
        if number > MAX_INT64:
            raise _error(value.at, "version is out of range")
        return Compare("version", op.text, number)
    if name == "status":
        if op.text not in ("=", "!="):
            raise _error(op.at, "status takes = or != only")
        status = STATUS_NAMES.get(text)
        if status is None:
            known = ", ".join(STATUS_NAMES)
            raise _error(value.at, f"status is one of {known}, got {text!r}")
        return Compare("status", op.text, int(status))
    known = "title, author, category, status, create_time, update_time, version, tags"
    known = ("id, " if "id" in text_fields else "") + known
    raise _error(field.at, f"unknown field {name!r} (filterable: {known})")


def parse_filter(text: str, *, by_id: bool = False) -> Node | None:
    """The tree of an AIP-160 filter; None for an empty one. InvalidArgument naming `filter`
    and the position of the problem otherwise. `by_id`: `id` is a field too."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument.of(FIELD, f"must be at most {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        return None
    return _Parser(text, TEXT_FIELDS | {"id"} if by_id else TEXT_FIELDS).parse()


# -- evaluation in memory --------------------------------------------------------------------

_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def matches(node: Node | None, document: Document) -> bool:
    """Whether `document` satisfies `node` (None: every document does)."""
    if node is None:
        return True
    if isinstance(node, Compare):
        value = _value_of(node.field, document)
        return bool(_COMPARE[node.op](value, node.value))
    if isinstance(node, HasTag):
        return node.tag in document.tags
    if isinstance(node, Not):
        return not matches(node.node, document)
    if isinstance(node, And):
        return all(matches(n, document) for n in node.nodes)
    return any(matches(n, document) for n in node.nodes)


def _value_of(field: str, document: Document) -> str | int:
    if field in TIME_FIELDS.values():
        # Stored and compared as format_timestamp's fixed-width form.
        return format_timestamp(parse_timestamp(getattr(document, field)))
    if field == "status":
        return int(document.status)
    value: str | int = getattr(document, field)
    return value


# -- order_by --------------------------------------------------------------------------------


ORDER_FIELDS = {"update_time": "updated_at", "create_time": "created_at", "title": "title"}


def parse_order_by(text: str) -> Order:
    """AIP-132 `order_by`: one of update_time, create_time, title, optionally followed by
    `desc` or `asc`; empty: `update_time desc` (the order before order_by existed)."""
    parts = text.split()
    if not parts:
        return Order()
    if (
        len(parts) > 2
        or parts[0] not in ORDER_FIELDS
        or (len(parts) == 2 and parts[1] not in ("asc", "desc"))
    ):
        raise InvalidArgument.of(
            "order_by", "must be one of update_time, create_time, title, each with asc or desc"
        )
    descending = len(parts) == 2 and parts[1] == "desc"
    return Order(ORDER_FIELDS[parts[0]], descending)
