"""The stored history format (docservice/storage/history.py) without a database: chains rebuild
every content exactly, stay within their bounds, and bad data is refused, never returned."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docservice.app import make_repository
from docservice.settings import Settings
from docservice.storage.delta import apply_delta, encode_delta
from docservice.storage.history import (
    ContentKind,
    CorruptHistory,
    HistoryPolicy,
    Rebuild,
    StoredContent,
    first_content,
    next_content,
)


@dataclasses.dataclass
class Row:
    version: int
    content_version: int
    content_chain: int
    content_depth: int
    content_bytes: int
    content_checksum: int
    content_kind: int | None
    content_base: int | None
    content_payload: bytes | None


def row(version: int, stored: StoredContent) -> Row:
    return Row(version=version, **stored.fields())


def write(contents: list[str], policy: HistoryPolicy) -> list[Row]:
    rows = [row(1, first_content(contents[0], 1))]
    for version, (previous, content) in enumerate(itertools.pairwise(contents), 2):
        tip = rows[-1]
        stored = next_content(previous, content, _tip(tip), version, policy)
        rows.append(row(version, stored))
    return rows


def _tip(r: Row) -> Any:
    from docservice.storage.history import Tip

    return Tip.of(r)


def read(rows: list[Row], version: int) -> str:
    """Read one version as a backend does: the chain's holders up to its holder, then its row."""
    target = rows[version - 1]
    chain = [
        r
        for r in rows
        if r.content_kind is not None
        and target.content_chain <= r.version <= target.content_version
        and r.content_chain == target.content_chain
    ]
    return Rebuild("doc").contents([*chain, target] if target not in chain else chain, version)


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=300)


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, min_size=1, max_size=40), st.integers(1, 6))
def test_every_version_rebuilds_exactly_within_the_bound(contents: list[str], k: int) -> None:
    policy = HistoryPolicy(max_chain=k)
    rows = write(contents, policy)
    for version, content in enumerate(contents, 1):
        assert read(rows, version) == content
    assert all(r.content_depth <= k for r in rows)
    # A page read sequentially from the first keyframe gives the same contents.
    rebuild = Rebuild("doc")
    for r, content in zip(rows, contents, strict=True):
        rebuild.feed(r)
        assert rebuild.content(r) == content


def test_unchanged_content_stores_nothing() -> None:
    text = "x" * 5000
    rows = write([text, text, text + "!", text + "!"], HistoryPolicy())
    assert [r.content_kind for r in rows] == [
        ContentKind.KEYFRAME_ZSTD,
        None,
        ContentKind.DELTA,
        None,
    ]
    assert [r.content_version for r in rows] == [1, 1, 3, 3]


def test_small_edits_of_a_large_text_are_small_deltas_and_chains_end_at_k() -> None:
    rng = random.Random(7)
    text = "".join(rng.choice("abcdefgh ") for _ in range(100_000))
    contents = [text]
    for _ in range(70):
        at = rng.randrange(len(text) - 10)
        text = text[:at] + "0123456789" + text[at + 10 :]
        contents.append(text)
    rows = write(contents, HistoryPolicy(max_chain=32))
    kinds = [r.content_kind for r in rows]
    assert [n for n, kind in enumerate(kinds, 1) if kind != ContentKind.DELTA] == [1, 34, 67]
    assert (
        max(len(r.content_payload or b"") for r in rows if r.content_kind == ContentKind.DELTA) < 40
    )


def test_a_rewrite_is_a_keyframe_when_the_delta_does_not_pay_off() -> None:
    rng = random.Random(3)
    one = "".join(rng.choice("abcdefgh") for _ in range(10_000))
    other = "".join(rng.choice("ijklmnop") for _ in range(10_000))
    rows = write([one, other], HistoryPolicy())
    assert rows[1].content_kind != ContentKind.DELTA
    assert rows[1].content_chain == 2


def test_deltas_reach_their_target() -> None:
    for base, target in [
        (b"", b""),
        (b"", b"abc"),
        (b"abc", b""),
        (b"abcabc", b"abc"),
        (b"a" * 5000, b"a" * 4000 + b"b" * 2000),
    ]:
        data = bytearray(base)
        apply_delta(data, encode_delta(base, target))
        assert bytes(data) == target


@pytest.mark.parametrize("damage", ["payload", "checksum", "base", "missing"])
def test_bad_data_is_refused(damage: str) -> None:
    contents = ["a" * 1000 + str(n) for n in range(5)]
    rows = write(contents, HistoryPolicy())
    if damage == "payload":
        payload = rows[2].content_payload
        assert payload is not None
        rows[2].content_payload = payload[:-1] + bytes([payload[-1] ^ 1])
    elif damage == "checksum":
        rows[2].content_checksum ^= 1
    elif damage == "base":
        rows[2].content_base = 7
    else:
        del rows[1]
        with pytest.raises(CorruptHistory):
            Rebuild("doc").contents(rows, 3)
        return
    with pytest.raises(CorruptHistory, match="version 3"):
        read(rows, 3)
    assert read(rows, 2) == contents[1]  # versions before the damage still read


@pytest.mark.parametrize(
    ("db_type", "chain", "expected"),
    [("sqlite", None, 32), ("postgres", None, 32), ("mongo", None, 16), ("mongo", 5, 5)],
)
def test_the_chain_bound_defaults_per_backend(
    db_type: str, chain: int | None, expected: int
) -> None:
    url = "postgresql+asyncpg://u@127.0.0.1/db" if db_type == "postgres" else ""
    extra = {"database_url": url} if url else {}
    repository = make_repository(Settings(db_type=db_type, history_max_chain=chain, **extra))
    assert repository._history.max_chain == expected  # type: ignore[attr-defined]
