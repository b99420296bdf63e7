"""The wire codec: grpclib's protobuf codec with a cap on request size."""

from __future__ import annotations

from typing import Any

from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError

__all__ = ["LimitedCodec"]


class LimitedCodec(ProtoCodec):
    """Refuses to decode a message larger than `max_bytes` (RESOURCE_EXHAUSTED), like gRPC's own
    max receive message length. grpclib has no such limit of its own."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > self._max_bytes:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"message of {len(data)} bytes exceeds the limit of {self._max_bytes}",
            )
        return super().decode(data, message_type)
