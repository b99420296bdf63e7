"""How version content is stored, on every backend: keyframes and bounded chains of deltas.

Each version keeps its small metadata whole (title, status, tags, timestamps, ...); its content
is described by the `content_*` fields of the same row or record:

* `content_version`: the version whose row holds this content. A version whose content equals
  its predecessor's (a metadata-only update, a delete, a revert that leaves the content as it
  is) stores no content and points at the predecessor's holder.
* A holder stores a payload of one `content_kind`: a keyframe (the whole text, zstd-compressed
  when that is smaller) or a delta against `content_base`, the previous holder in its chain
  (delta.py: the common prefix and suffix lengths of the two texts' UTF-8 bytes and the bytes
  between, zstd-compressed against the base's bytes between when that is smaller).
* `content_chain` is the version of the keyframe the chain starts at, `content_depth` the
  number of deltas from it to this content (at most `HistoryPolicy.max_chain`, the K of the
  bound), `content_bytes` the payload bytes read from the keyframe up to here, and
  `content_checksum` the CRC-32 of the content's bytes. Rows that store nothing carry their
  holder's values, so one row says which rows rebuild it: those of chain `content_chain` with
  versions from `content_chain` to `content_version`.

Writing version n (the writer has the previous content in hand, and the previous version's
`Tip`): unchanged content stores nothing; otherwise a delta against the previous content, unless
the chain would pass K deltas or its byte budget (`HistoryPolicy.budget`), or the delta would not
pay off (it saves less than half of a keyframe's size): then a keyframe, and a new chain
starts. So reading any version decompresses one keyframe and applies at most K deltas, of at
most the budget in bytes.

Bases are only ever earlier rows, rows are never changed once written, and each backend writes a
row only after every row it may refer to (in the same transaction on SQL; after the repair step
of the CAS + append protocol on MongoDB). `Rebuild` checks every link as it goes (a delta whose
base is not the row before it in its chain, a holder that is missing) and every content it returns
against its checksum: bad data raises `CorruptHistory` for the versions that depend on it, never
a wrong text.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import zstandard

from docservice.storage.delta import COMPRESS_FROM, apply_delta, encode_delta

__all__ = [
    "CONTENT_FIELDS",
    "KINDS",
    "ContentKind",
    "CorruptHistory",
    "HistoryPolicy",
    "Rebuild",
    "StoredContent",
    "Tip",
    "Tips",
    "first_content",
    "next_content",
    "repaired_content",
]

# The fields (SQL columns, Mongo record fields) a version row has besides its metadata.
CONTENT_FIELDS = (
    "content_version",
    "content_chain",
    "content_depth",
    "content_bytes",
    "content_checksum",
    "content_kind",
    "content_base",
    "content_payload",
)

ZSTD_LEVEL = 3  # keyframes: written once per chain, read often
# When a delta is this small a fraction of the text, it beats any keyframe: skip computing one.
SURE_DELTA_FRACTION = 8


class ContentKind(IntEnum):
    KEYFRAME_RAW = 0
    KEYFRAME_ZSTD = 1
    DELTA = 2


# Every kind's number: a filter for the rows that hold content.
KINDS = [int(kind) for kind in ContentKind]


class CorruptHistory(RuntimeError):
    """Stored history that does not rebuild into the content it was written from."""


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """When a keyframe is written instead of a delta."""

    max_chain: int = 32  # K: deltas applied at most to read any version
    # A chain's payload bytes stay within this many times the content's size ...
    chain_bytes_factor: int = 2
    # ... or this many bytes, for small documents.
    min_chain_bytes: int = 4096

    def budget(self, content_size: int) -> int:
        return max(self.chain_bytes_factor * content_size, self.min_chain_bytes)


@dataclass(frozen=True, slots=True)
class Tip:
    """Where one version's content sits in its chain: what the writer of the next version
    needs to know (every row carries it)."""

    content_version: int
    content_chain: int
    content_depth: int
    content_bytes: int
    content_checksum: int

    @classmethod
    def of(cls, row: Any) -> Tip:
        """The tip of a row or record that has the `content_*` fields."""
        return cls(
            row.content_version,
            row.content_chain,
            row.content_depth,
            row.content_bytes,
            row.content_checksum,
        )


class Tips:
    """Tips of versions that writers just read, by (document id, version), for the write that
    follows: a version's tip never changes, so a remembered one is as good as one read in the
    write. Bounded: the oldest is dropped first."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._tips: dict[tuple[str, int], Tip] = {}

    def remember(self, document_id: str, version: int, tip: Tip) -> None:
        if len(self._tips) >= self._limit:
            del self._tips[next(iter(self._tips))]
        self._tips[(document_id, version)] = tip

    def get(self, document_id: str, version: int) -> Tip | None:
        return self._tips.get((document_id, version))


@dataclass(frozen=True, slots=True)
class StoredContent:
    """The `content_*` fields of one version row."""

    tip: Tip
    kind: ContentKind | None = None  # None: the content is stored at tip.content_version
    base: int | None = None
    payload: bytes | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "content_version": self.tip.content_version,
            "content_chain": self.tip.content_chain,
            "content_depth": self.tip.content_depth,
            "content_bytes": self.tip.content_bytes,
            "content_checksum": self.tip.content_checksum,
            "content_kind": None if self.kind is None else int(self.kind),
            "content_base": self.base,
            "content_payload": self.payload,
        }


def checksum(data: bytes) -> int:
    return zlib.crc32(data)


# -- writing ---------------------------------------------------------------------------------


def first_content(content: str, version: int) -> StoredContent:
    """A keyframe: the first version of a document, or a chain's start."""
    data = content.encode()
    kind, payload = _keyframe(data)
    return StoredContent(
        Tip(version, version, 0, len(payload), checksum(data)), kind, None, payload
    )


def next_content(
    previous: str, content: str, previous_tip: Tip, version: int, policy: HistoryPolicy
) -> StoredContent:
    """The content fields of `version`, whose predecessor had `previous` at `previous_tip`."""
    if content == previous:
        return StoredContent(previous_tip)
    if previous_tip.content_depth >= policy.max_chain:
        return first_content(content, version)
    data = content.encode()
    delta = encode_delta(previous.encode(), data)
    chain_bytes = previous_tip.content_bytes + len(delta)
    if chain_bytes > policy.budget(len(data)):
        return first_content(content, version)
    if len(delta) * SURE_DELTA_FRACTION > len(data):
        # A delta costs its readers a link of the chain: it pays off when it saves at least
        # half of what a keyframe would store.
        keyframe = first_content(content, version)
        if keyframe.payload is not None and len(keyframe.payload) <= 2 * len(delta):
            return keyframe
    tip = Tip(
        version,
        previous_tip.content_chain,
        previous_tip.content_depth + 1,
        chain_bytes,
        checksum(data),
    )
    return StoredContent(tip, ContentKind.DELTA, previous_tip.content_version, delta)


def repaired_content(content: str, version: int, tip: Tip) -> StoredContent:
    """The row of `version` that a crash lost, written again from the document's state
    (MongoDB's repair step). It has the tip the lost row was to have, and holds its content
    whole where the lost row held a delta: whichever of the two was written first, the row
    rebuilds the same content in the same chain, so the next writer's delta finds its base.
    (Its `content_bytes` stays the plan's: a chain through a repaired row may read one
    keyframe more than its byte budget says.)"""
    if tip.content_version != version:
        return StoredContent(tip)
    kind, payload = _keyframe(content.encode())
    return StoredContent(tip, kind, None, payload)


def _keyframe(data: bytes) -> tuple[ContentKind, bytes]:
    if len(data) >= COMPRESS_FROM:
        compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
        if len(compressed) < len(data):
            return ContentKind.KEYFRAME_ZSTD, compressed
    return ContentKind.KEYFRAME_RAW, data


# -- reading ---------------------------------------------------------------------------------


class Rebuild:
    """Rebuilds the contents of one document's rows, fed in ascending version order.

    Feed every holder row of the chain (from its keyframe) before the rows that need it;
    `content(row)` then returns that row's content, checked against its checksum.
    """

    def __init__(self, document_id: str) -> None:
        self._document_id = document_id
        self._holder: int | None = None  # the version whose content `_data` is
        self._chain: int | None = None
        self._data = bytearray()
        self._checked: tuple[int, int, str] | None = None  # holder, checksum, content

    def feed(self, row: Any) -> None:
        """Take in a row: a holder's payload moves the rebuild on; other rows change nothing."""
        kind = row.content_kind
        if kind is None:
            return
        try:
            if kind == ContentKind.DELTA:
                if self._holder != row.content_base or self._chain != row.content_chain:
                    raise self._corrupt(
                        row.version,
                        f"the base of its delta (version {row.content_base}) is missing",
                    )
                apply_delta(self._data, row.content_payload)
            elif kind == ContentKind.KEYFRAME_ZSTD:
                self._data = bytearray(zstandard.ZstdDecompressor().decompress(row.content_payload))
            elif kind == ContentKind.KEYFRAME_RAW:
                self._data = bytearray(row.content_payload)
            else:
                raise self._corrupt(row.version, f"unknown content kind {kind}")
        except (ValueError, zstandard.ZstdError) as exc:
            self._holder = self._chain = None
            raise self._corrupt(row.version, f"its payload does not decode ({exc})") from exc
        self._holder, self._chain = row.version, row.content_chain

    def content(self, row: Any) -> str:
        """The content of `row`, whose holder must be the last holder fed."""
        holder = row.content_version
        if self._checked is not None and self._checked[:2] == (holder, row.content_checksum):
            return self._checked[2]
        if self._holder != holder:
            raise self._corrupt(row.version, f"the row holding its content ({holder}) is missing")
        data = bytes(self._data)
        if checksum(data) != row.content_checksum:
            raise self._corrupt(row.version, "its content does not match its checksum")
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise self._corrupt(row.version, "its content is not UTF-8") from exc
        self._checked = (holder, row.content_checksum, text)
        return text

    def contents(self, rows: Iterable[Any], wanted: int) -> str:
        """Feed `rows` and return the content of the one at version `wanted`."""
        target = None
        for row in rows:
            self.feed(row)
            if row.version == wanted:
                target = row
        if target is None:
            raise self._corrupt(wanted, "its row is missing")
        return self.content(target)

    def _corrupt(self, version: int, cause: str) -> CorruptHistory:
        return CorruptHistory(
            f"version {version} of document {self._document_id} cannot be read: {cause}"
        )
