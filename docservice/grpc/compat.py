"""Every use of a library's private API, in one place (grpclib 0.4.9, betterproto2 0.10.0).

Each function here leans on something its library does not promise to keep; each has a test in
tests/unit/test_compat.py that fails when an upgrade changes what it relies on. Nothing is
patched at import time: `install_receive_hook` is called by `create_app`.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol, TypeVar, runtime_checkable

import betterproto2
import grpclib.server
import grpclib.stream
from grpclib.config import Configuration
from grpclib.encoding.base import CodecBase
from grpclib.protocol import H2Protocol
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Server

__all__ = [
    "EndOfStream",
    "ReceivingCodec",
    "close_connection",
    "install_receive_hook",
    "keepalive_config",
    "message_metadata",
    "read_exactly",
    "track_connections",
]

_Message = TypeVar("_Message")


@runtime_checkable
class ReceivingCodec(Protocol):
    """A codec that reads a request from the HTTP/2 stream itself (framing included)."""

    async def receive(self, stream: H2Stream, message_type: type[Any]) -> Any: ...


_grpclib_recv_message = grpclib.stream.recv_message


async def _recv_message(
    stream: H2Stream, codec: CodecBase, message_type: type[_Message]
) -> _Message | None:
    if isinstance(codec, ReceivingCodec):
        return await codec.receive(stream, message_type)  # type: ignore[no-any-return]
    return await _grpclib_recv_message(stream, codec, message_type)


def install_receive_hook() -> None:
    """Make servers whose codec is a ReceivingCodec read requests through it.

    grpclib's server `Stream.recv_message` reads through the module-level
    `grpclib.server.recv_message`, which buffers a message of any declared length before a
    codec could refuse it and fails on a bad prefix with bare exceptions (UNKNOWN). grpclib has
    no hook for either; any other codec keeps grpclib's reader. Idempotent.
    """
    grpclib.server.recv_message = _recv_message  # type: ignore[attr-defined]


class EndOfStream(Exception):
    """The stream ended before the bytes asked for arrived."""


async def read_exactly(stream: H2Stream, size: int) -> bytes:
    """`size` bytes of the stream's data, b"" at its clean end; EndOfStream if cut short."""
    try:
        return await stream.recv_data(size)
    except AssertionError:  # grpclib's Buffer.read: "Received less data than expected"
        raise EndOfStream from None


def keepalive_config(seconds: float, timeout: float) -> Configuration:
    """Server pings on idle connections (grpclib names these settings as private)."""
    return Configuration(
        _keepalive_time=seconds,
        _keepalive_timeout=timeout,
        _keepalive_permit_without_calls=True,
    )


def track_connections(server: Server, protocols: weakref.WeakSet[H2Protocol]) -> None:
    """Add every connection `server` accepts to `protocols` (grpclib keeps no public list)."""
    factory = server._protocol_factory

    def tracking_factory() -> H2Protocol:
        protocol = factory()
        protocols.add(protocol)
        return protocol

    server._protocol_factory = tracking_factory  # type: ignore[method-assign]


def close_connection(protocol: H2Protocol, reason: str) -> None:
    """Close an accepted connection and its streams (no-op before it was made)."""
    processor = getattr(protocol, "processor", None)  # set in connection_made
    if processor is not None:
        processor.close(reason)


def message_metadata(message_type: type[betterproto2.Message]) -> betterproto2.ProtoClassMetadata:
    """betterproto2's per-class field metadata (field numbers, types, nested classes)."""
    return message_type._betterproto  # type: ignore[arg-type]
