"""Pure tests of validation, page tokens and the document helpers (no server, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from docservice._proto.document import DocumentStatus
from docservice.core.errors import InvalidArgument
from docservice.core.model import (
    EDITABLE_FIELDS,
    etag_for,
    format_timestamp,
    parse_document_id,
    parse_timestamp,
)
from docservice.core.validation import Limits, Validator, check_mask_paths
from docservice.settings import Settings

SMALL = Limits(title=5, author=3, content_bytes=4, tags=2, tag=3, category=3, comments=2, comment=3)


def fields_of(error: InvalidArgument) -> list[str]:
    return [v.field for v in error.violations]


def rejected(values: dict[str, Any]) -> list[str]:
    """The fields Validator(SMALL) names when it rejects `values`."""
    with pytest.raises(InvalidArgument) as caught:
        Validator(SMALL).clean(values)
    return fields_of(caught.value)


def test_limits_come_from_settings() -> None:
    settings = Settings.model_validate(
        {
            "max_title_length": 7,
            "max_author_length": 8,
            "max_content_bytes": 9,
            "max_tags": 10,
            "max_tag_length": 11,
            "max_category_length": 12,
            "max_comments": 13,
            "max_comment_length": 14,
        }
    )
    assert Limits.from_settings(settings) == Limits(
        title=7, author=8, content_bytes=9, tags=10, tag=11, category=12, comments=13, comment=14
    )


def test_clean_normalises_valid_values() -> None:
    cleaned = Validator(SMALL).clean(
        {
            "title": "abcde",
            "author": "abc",
            "content": "\u20aca",
            "tags": ["b", "a", "b"],
            "category": "",
            "comments": ["", ""],
            "status": DocumentStatus.ARCHIVED,
        }
    )
    assert cleaned == {
        "title": "abcde",
        "author": "abc",
        "content": "\u20aca",
        "tags": ["b", "a"],
        "category": "",
        "comments": ["", ""],
        "status": DocumentStatus.ARCHIVED,
    }
    assert Validator(SMALL).clean({}) == {}


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"title": "abcdef"}, ["title"]),
        ({"title": ""}, ["title"]),
        ({"title": " \n"}, ["title"]),
        ({"author": "abcd"}, ["author"]),
        ({"author": ""}, ["author"]),
        ({"content": "\u20ac\u20ac"}, ["content"]),  # 2 characters, 6 bytes
        ({"content": "abcde"}, ["content"]),
        ({"content": "\ud800"}, ["content"]),  # a lone surrogate is not encodable UTF-8
        ({"category": "abcd"}, ["category"]),
        ({"tags": ["a", "b", "c"]}, ["tags"]),
        ({"tags": ["a", "abcd"]}, ["tags[1]"]),
        ({"tags": [""]}, ["tags[0]"]),
        ({"tags": ["a", " "]}, ["tags[1]"]),
        ({"comments": ["a", "b", "c"]}, ["comments"]),
        ({"comments": ["abcd", "ok"]}, ["comments[0]"]),
        ({"status": DocumentStatus(3)}, ["status"]),
    ],
)
def test_each_limit_is_enforced(values: dict[str, Any], fields: list[str]) -> None:
    assert rejected(values) == fields


def test_values_at_the_limits_are_accepted() -> None:
    values = {
        "title": "x" * 5,
        "author": "y",
        "content": "\u20aca",
        "category": "abc",
        "tags": ["abc", "a", "abc"],
        "comments": ["abc", ""],
    }
    assert Validator(SMALL).clean(values)["tags"] == ["abc", "a"]


def test_every_violation_is_reported() -> None:
    fields = rejected(
        {
            "title": "",
            "author": "abcd",
            "tags": ["abcd", "", "ok"],
            "comments": ["ok", "long"],
            "status": DocumentStatus(5),
        }
    )
    assert sorted(fields) == [
        "author",
        "comments[1]",
        "status",
        "tags",
        "tags[0]",
        "tags[1]",
        "title",
    ]
    fields = rejected({"tags": ["abcd", ""], "category": "long"})
    assert sorted(fields) == ["category", "tags[0]", "tags[1]"]


def test_violation_descriptions_name_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        Validator(SMALL).clean({"content": "abcde", "tags": ["ok", "abcd"]})
    message = str(caught.value)
    assert "content" in message and "tags[1]" in message


def test_status_filter_check() -> None:
    validator = Validator(SMALL)
    assert validator.status(DocumentStatus.PUBLISHED) == DocumentStatus.PUBLISHED
    with pytest.raises(InvalidArgument) as caught:
        validator.status(DocumentStatus(42))
    assert fields_of(caught.value) == ["status"]


def test_mask_paths() -> None:
    assert check_mask_paths(["tags", "title", "tags"]) == ("tags", "title")
    assert check_mask_paths(["*"]) == EDITABLE_FIELDS
    assert check_mask_paths([]) == ()
    for bad, index in (
        (["title", "id"], 1),
        (["version"], 0),
        (["title", "", "tags"], 1),
        (["tags.0"], 0),
        (["Title"], 0),
    ):
        with pytest.raises(InvalidArgument) as caught:
            check_mask_paths(bad)
        assert fields_of(caught.value) == [f"update_mask.paths[{index}]"]


def test_parse_document_id_canonicalises() -> None:
    raw = uuid.uuid4()
    assert parse_document_id(str(raw).upper()) == str(raw)
    assert parse_document_id(raw.hex) == str(raw)
    assert parse_document_id(str(raw)) == str(raw)


@pytest.mark.parametrize("raw", ["", "nope", "1234", str(uuid.uuid4())[:-1]])
def test_parse_document_id_rejects_malformed(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_document_id(raw, field="document.id")
    assert fields_of(caught.value) == ["document.id"]


def test_etag_is_quoted_and_differs_per_version_and_document() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    etag = etag_for(first, 1)
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert etag == etag_for(first, 1)
    tags = {etag_for(first, v) for v in range(1, 101)}
    assert len(tags) == 100
    assert etag_for(second, 1) not in tags


def test_timestamps_round_trip() -> None:
    moment = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)
    text = format_timestamp(moment)
    assert text == "2026-11-26T10:00:00.123456Z"
    assert parse_timestamp(text) == moment
    assert parse_timestamp(text).tzinfo is not None

    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert format_timestamp(whole) == "2026-01-02T03:04:05.000000Z"
    assert parse_timestamp(format_timestamp(whole)) == whole
    assert parse_timestamp("2026-01-02T03:04:05Z") == whole


def test_timestamps_are_formatted_in_utc() -> None:
    local = datetime(2026, 11, 26, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(local) == "2026-11-26T10:00:00.000001Z"
    assert parse_timestamp("2026-11-26T12:00:00.000001+02:00") == local
    assert format_timestamp(parse_timestamp("2026-11-26T12:00:00+02:00")).endswith(
        "10:00:00.000000Z"
    )
