"""The byte-level delta between two versions' contents, as history.py stores it.

A delta is the length of the prefix the two byte strings share, of the suffix, and the target's
bytes between: raw, or zstd-compressed with the base's bytes between as a raw-content
dictionary when that is smaller. Edits are usually local, so the common prefix and suffix
(found a block at a time, with memcmp) reduce most deltas to a few bytes and a copy; when they
are not, zstd still finds what the two middles share, in time linear in their size.
"""

from __future__ import annotations

import zstandard

__all__ = ["COMPRESS_FROM", "apply_delta", "encode_delta"]

# Below this many bytes zstd's frame header costs more than compression saves.
COMPRESS_FROM = 64
# Level 1 loads the dictionary in half the time of level 3 and finds the same long matches
# (bench/storage.py measures the methods).
DELTA_ZSTD_LEVEL = 1
RAW_MIDDLE, ZSTD_MIDDLE = 0, 1
BLOCK = 2048


def encode_delta(base: bytes, target: bytes) -> bytes:
    """`target` as: the length of the prefix it shares with `base`, of the suffix, and the bytes
    between (raw, or zstd with the base's bytes between as a raw-content dictionary)."""
    prefix = _common_prefix(base, target)
    suffix = _common_suffix(base, target, prefix)
    middle = target[prefix : len(target) - suffix]
    header = _varint(prefix) + _varint(suffix)
    if len(middle) >= COMPRESS_FROM:
        old_middle = base[prefix : len(base) - suffix]
        compressed = _compressor(old_middle).compress(middle)
        if len(compressed) < len(middle):
            return header + bytes([ZSTD_MIDDLE]) + compressed
    return header + bytes([RAW_MIDDLE]) + middle


def apply_delta(base: bytearray, delta: bytes) -> None:
    """Turn `base` into the target of `delta`, in place; ValueError if they do not fit."""
    prefix, at = _read_varint(delta, 0)
    suffix, at = _read_varint(delta, at)
    if prefix + suffix > len(base) or at >= len(delta):
        raise ValueError("delta does not fit its base")
    method, body = delta[at], delta[at + 1 :]
    end = len(base) - suffix
    if method == RAW_MIDDLE:
        middle = body
    elif method == ZSTD_MIDDLE:
        old_middle = bytes(base[prefix:end])
        dictionary = _dictionary(old_middle)
        decompressor = (
            zstandard.ZstdDecompressor(dict_data=dictionary)
            if dictionary is not None
            else zstandard.ZstdDecompressor()
        )
        middle = decompressor.decompress(body)
    else:
        raise ValueError(f"unknown delta method {method}")
    base[prefix:end] = middle


def _dictionary(data: bytes) -> zstandard.ZstdCompressionDict | None:
    if not data:
        return None
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _compressor(old_middle: bytes) -> zstandard.ZstdCompressor:
    dictionary = _dictionary(old_middle)
    if dictionary is None:
        return zstandard.ZstdCompressor(level=DELTA_ZSTD_LEVEL)
    return zstandard.ZstdCompressor(level=DELTA_ZSTD_LEVEL, dict_data=dictionary)


def _common_prefix(a: bytes, b: bytes) -> int:
    """Compared a block at a time (memcmp), then narrowed down within the first differing one."""
    limit = min(len(a), len(b))
    i = 0
    while i + BLOCK <= limit and a[i : i + BLOCK] == b[i : i + BLOCK]:
        i += BLOCK
    low, high = i, min(limit, i + BLOCK)
    while low < high:
        middle = (low + high + 1) // 2
        if a[i:middle] == b[i:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(a: bytes, b: bytes, prefix: int) -> int:
    """Like `_common_prefix` from the end, never overlapping the prefix."""
    limit = min(len(a), len(b)) - prefix
    la, lb = len(a), len(b)
    i = 0
    while i + BLOCK <= limit and a[la - i - BLOCK : la - i] == b[lb - i - BLOCK : lb - i]:
        i += BLOCK
    low, high = i, min(limit, i + BLOCK)
    while low < high:
        middle = (low + high + 1) // 2
        if a[la - middle : la - i] == b[lb - middle : lb - i]:
            low = middle
        else:
            high = middle - 1
    return low


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated delta")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at
