"""The wire codec: grpclib's protobuf codec with a cap on request size."""

from __future__ import annotations

from typing import Any

from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError

__all__ = ["Encoded", "LimitedCodec", "message_field", "varint_field"]


class Encoded:
    """A message already in wire form; the codec sends its bytes as they are."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def message_field(number: int, payload: bytes) -> bytes:
    """Field `number` holding `payload` (an encoded message, or UTF-8 text) in wire form."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def varint_field(number: int, value: int) -> bytes:
    """Field `number` holding a non-negative integer in wire form."""
    return _varint(number << 3) + _varint(value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class LimitedCodec(ProtoCodec):
    """Refuses to decode a message larger than `max_bytes` (RESOURCE_EXHAUSTED), like gRPC's own
    max receive message length (grpclib has no such limit of its own), and sends `Encoded`
    messages without encoding them again."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, Encoded):
            return message.data
        return super().encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > self._max_bytes:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"message of {len(data)} bytes exceeds the limit of {self._max_bytes}",
            )
        return super().decode(data, message_type)
