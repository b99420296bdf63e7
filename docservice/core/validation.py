"""Request validation: turns raw request fields into clean values or an InvalidArgument.

Every violation names the proto field so that clients can point at it; all violations of a
request are reported together.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from docservice._proto.document import DocumentStatus
from docservice.core.errors import FieldViolation, InvalidArgument
from docservice.core.model import EDITABLE_FIELDS
from docservice.settings import Settings

__all__ = ["Limits", "Validator", "check_actor", "check_mask_paths"]

MAX_ACTOR_LENGTH = 256
ACTOR_FIELD = "x-actor"
KNOWN_STATUSES = frozenset(
    int(s) for s in (DocumentStatus.DRAFT, DocumentStatus.PUBLISHED, DocumentStatus.ARCHIVED)
)


@dataclass(frozen=True, slots=True)
class Limits:
    title: int
    author: int
    content_bytes: int
    tags: int
    tag: int
    category: int
    comments: int
    comment: int
    change_message: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            title=settings.max_title_length,
            author=settings.max_author_length,
            content_bytes=settings.max_content_bytes,
            tags=settings.max_tags,
            tag=settings.max_tag_length,
            category=settings.max_category_length,
            comments=settings.max_comments,
            comment=settings.max_comment_length,
            change_message=settings.max_change_message_length,
        )


class Validator:
    """Checks editable document fields against the configured limits."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def clean(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate `values` (a subset of EDITABLE_FIELDS) and return them normalised.

        Raises InvalidArgument listing every bad field.
        """
        violations: list[FieldViolation] = []
        cleaned: dict[str, Any] = {}
        for name, value in values.items():
            checker = getattr(self, f"_{name}")
            try:
                cleaned[name] = checker(value, name)
            except InvalidArgument as exc:
                violations.extend(exc.violations)
        if violations:
            raise InvalidArgument(violations)
        return cleaned

    def _title(self, value: str, field: str) -> str:
        if is_blank(value):
            raise InvalidArgument.of(field, "must not be empty or blank")
        return _bounded_text(value, self._limits.title, field)

    def _author(self, value: str, field: str) -> str:
        if is_blank(value):
            raise InvalidArgument.of(field, "must not be empty or blank")
        return _bounded_text(value, self._limits.author, field)

    def _content(self, value: str, field: str) -> str:
        size = len(_utf8(value, field))
        if size > self._limits.content_bytes:
            raise InvalidArgument.of(
                field, f"must be at most {self._limits.content_bytes} bytes of UTF-8, got {size}"
            )
        return value

    def _category(self, value: str, field: str) -> str:
        return _bounded_text(value, self._limits.category, field)

    def change_message(self, value: str) -> str:
        """A write's change_message, or InvalidArgument naming it."""
        return _bounded_text(value, self._limits.change_message, "change_message")

    def status(self, value: DocumentStatus) -> DocumentStatus:
        """A known status or InvalidArgument naming `status` (for filters)."""
        return self._status(value, "status")

    def _status(self, value: DocumentStatus, field: str) -> DocumentStatus:
        if int(value) not in KNOWN_STATUSES:
            raise InvalidArgument.of(field, f"unknown DocumentStatus value {int(value)}")
        return DocumentStatus(int(value))

    def _tags(self, value: Sequence[str], field: str) -> list[str]:
        tags = list(dict.fromkeys(value))  # de-duplicate, keeping the first occurrence's place
        violations = _item_violations(list(value), self._limits.tag, field, allow_empty=False)
        if len(tags) > self._limits.tags:
            violations.append(
                FieldViolation(field, f"at most {self._limits.tags} tags, got {len(tags)}")
            )
        if violations:
            raise InvalidArgument(violations)
        return tags

    def _comments(self, value: Sequence[str], field: str) -> list[str]:
        comments = list(value)
        violations = _item_violations(comments, self._limits.comment, field, allow_empty=True)
        if len(comments) > self._limits.comments:
            violations.append(
                FieldViolation(
                    field, f"at most {self._limits.comments} comments, got {len(comments)}"
                )
            )
        if violations:
            raise InvalidArgument(violations)
        return comments


def check_actor(value: str) -> str:
    """Who a write says it comes from (the unverified `x-actor` request header, printable
    ASCII as all gRPC metadata): at most MAX_ACTOR_LENGTH characters, or InvalidArgument
    naming the header. (gRPC metadata cannot hold anything else; an HTTP header can.)"""
    if not value.isascii() or not value.isprintable():
        raise InvalidArgument.of(ACTOR_FIELD, "must be printable ASCII")
    return _bounded_text(value, MAX_ACTOR_LENGTH, ACTOR_FIELD)


def is_blank(value: str) -> bool:
    """Nothing visible: only white space and invisible format characters (Unicode category
    Cf: zero-width spaces and joiners, BOMs, direction marks)."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in value)


def check_mask_paths(paths: Iterable[str]) -> tuple[str, ...]:
    """Return the editable fields an update mask names ('*' names them all)."""
    named: list[str] = []
    for index, path in enumerate(paths):
        if path != "*" and path not in EDITABLE_FIELDS:
            raise InvalidArgument.of(
                f"update_mask.paths[{index}]",
                f"unknown field {path!r}; allowed: {', '.join(EDITABLE_FIELDS)} or *",
            )
        named.extend(EDITABLE_FIELDS if path == "*" else [path])
    return tuple(dict.fromkeys(named))


def _utf8(value: str, field: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise InvalidArgument.of(field, "must be valid UTF-8") from None


def _bounded_text(value: str, limit: int, field: str) -> str:
    _utf8(value, field)
    if len(value) > limit:
        raise InvalidArgument.of(field, f"must be at most {limit} characters, got {len(value)}")
    return value


def _item_violations(
    items: list[str], limit: int, field: str, *, allow_empty: bool
) -> list[FieldViolation]:
    """Violations of the items of a repeated field, each named by its request index."""
    violations: list[FieldViolation] = []
    for index, item in enumerate(items):
        item_field = f"{field}[{index}]"
        try:
            if not allow_empty and is_blank(item):
                raise InvalidArgument.of(item_field, "must not be empty or blank")
            _bounded_text(item, limit, item_field)
        except InvalidArgument as exc:
            violations.extend(exc.violations)
    return violations
