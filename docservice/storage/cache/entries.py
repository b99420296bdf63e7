"""What the cache stores under its keys, and how it reads it back.

Every value is sealed: b"ds2" + the sha1 hex of the payload + the payload. Garbage under a key
must read as a miss, and protobuf decodes most garbage without complaint; sha1 (an integrity
check, not security) because Redis's Lua can compute it too (scripts.py checks seals before a
store). The unpacking functions return None when there is no entry and raise `GarbageEntry`
when the value is not one this module wrote: both are misses, the second also an error.
"""

from __future__ import annotations

import hashlib
import json

from docservice._proto.document import ChangeKind, Document
from docservice.core.repository import Change, EncodedDocument, Page, Snapshot

__all__ = [
    "GarbageEntry",
    "document_entry",
    "pack_page",
    "pack_snapshot",
    "seal",
    "unpack_document",
    "unpack_encoded",
    "unpack_page",
    "unpack_snapshot",
    "unpack_snapshots",
    "unseal",
]

# The format's mark: ds2 since version entries carry their audit trail. A server of another
# format reads these values as garbage (a miss), never as entries of its own.
MAGIC = b"ds2"
CHECKSUM_END = len(MAGIC) + 40  # sha1 hex
TIMESTAMP_LENGTH = len("2026-11-26T10:00:00.123456Z")
DELETED, LIVE = b"1", b"0"


class GarbageEntry(ValueError):
    """A value under a cache key that is not an entry the cache wrote (or of another format)."""


def seal(payload: bytes) -> bytes:
    return MAGIC + hashlib.sha1(payload).hexdigest().encode() + payload


def unseal(raw: object) -> bytes:
    """The payload of a sealed value; GarbageEntry if `raw` is not one."""
    if not isinstance(raw, bytes) or not raw.startswith(MAGIC):
        raise GarbageEntry("not sealed")
    checksum, payload = raw[len(MAGIC) : CHECKSUM_END], raw[CHECKSUM_END:]
    if hashlib.sha1(payload).hexdigest().encode() != checksum:
        raise GarbageEntry("wrong checksum")
    return payload


# -- documents: a hash {v: version, b: sealed encoded Document, x: deleted flag} ----------------


def document_entry(document: Document) -> tuple[bytes, bytes]:
    """The sealed bytes and the deleted flag stored for a document (fields b and x)."""
    return seal(bytes(document)), DELETED if document.is_deleted else LIVE


def unpack_document(sealed: object) -> Document | None:
    """The Document in field b of a document entry."""
    return None if sealed is None else _parse(unseal(sealed))


def unpack_encoded(fields: list[object]) -> EncodedDocument | None:
    """The encoded Document and its deleted flag from fields [b, x] of a document entry."""
    sealed, deleted = fields
    if sealed is None:
        return None
    payload = unseal(sealed)
    if deleted not in (DELETED, LIVE):
        raise GarbageEntry("no deleted flag")
    return EncodedDocument(payload, deleted == DELETED)


# -- versions: a sealed `updated_at` line, a JSON line of the change, the encoded Document -----


def pack_snapshot(snapshot: Snapshot) -> bytes:
    change = snapshot.change
    audit = [int(change.kind), change.by, change.message, change.reverted_from]
    header = json.dumps(audit, separators=(",", ":"), ensure_ascii=True).encode()
    return seal(snapshot.updated_at.encode() + b"\n" + header + b"\n" + snapshot.encoded)


def unpack_snapshot(raw: object, version: int) -> Snapshot | None:
    if raw is None:
        return None
    updated_at, _, rest = unseal(raw).partition(b"\n")
    # A timestamp as format_timestamp writes it; anything else (say, an entry written in an
    # older format, which starts with the Document itself) is garbage.
    if len(updated_at) != TIMESTAMP_LENGTH or not updated_at.endswith(b"Z"):
        raise GarbageEntry("no timestamp line")
    header, _, encoded = rest.partition(b"\n")
    try:
        kind, by, message, reverted_from = json.loads(header)
        change = Change(ChangeKind(int(kind)), str(by), str(message), int(reverted_from))
    except (ValueError, TypeError) as exc:  # also an entry of the format before the audit
        raise GarbageEntry(f"change line: {exc}") from None
    return Snapshot(version, updated_at.decode("ascii", "replace"), encoded, change)


def unpack_snapshots(values: object, after_version: int) -> list[Snapshot] | None:
    """The versions after `after_version` from their entries in order (a READ_VERSIONS reply);
    None unless every one is cached (a history partly cached is a miss, not an error)."""
    if not isinstance(values, list):
        return None  # the document itself is not cached: which versions exist is unknown
    snapshots = [unpack_snapshot(raw, after_version + n) for n, raw in enumerate(values, start=1)]
    found = [s for s in snapshots if s is not None]
    return found if len(found) == len(snapshots) else None


# -- list pages: a sealed JSON header line (with each document's length), then the documents ---


def pack_page(page: Page) -> bytes:
    lengths = [len(d) for d in page.encoded]
    header = [page.total_size, page.has_more, page.last, lengths]
    return seal(json.dumps(header, separators=(",", ":")).encode() + b"\n" + b"".join(page.encoded))


def unpack_page(raw: object) -> Page | None:
    if raw is None:
        return None
    header, _, body = unseal(raw).partition(b"\n")
    try:
        total_size, has_more, last, lengths = json.loads(header)
        last = tuple(last) if last else None
        total_size, has_more = int(total_size), bool(has_more)
        consistent = sum(lengths) == len(body) and all(type(n) is int and n >= 0 for n in lengths)
    except (ValueError, TypeError) as exc:
        raise GarbageEntry(f"page header: {exc}") from None
    if not consistent:
        raise GarbageEntry("page lengths do not add up")
    view = memoryview(body)
    encoded, start = [], 0
    for length in lengths:
        encoded.append(bytes(view[start : start + length]))
        start += length
    return Page(encoded, total_size, has_more, last)


def _parse(payload: bytes) -> Document:
    try:
        return Document.parse(payload)
    except Exception as exc:  # a checksummed payload that does not decode: still garbage
        raise GarbageEntry(f"not a Document: {exc!r}") from None
