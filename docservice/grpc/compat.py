"""Every use of a library's private API, in one place (grpclib 0.4.9, betterproto2 0.10.0).

Each function here leans on something its library does not promise to keep; each has a test in
tests/unit/test_compat.py that fails when an upgrade changes what it relies on. Nothing is
patched at import time: `install_receive_hook` is called by `create_app`.
"""

from __future__ import annotations

import abc
import contextvars
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import betterproto2
import grpclib.server
import grpclib.stream
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.encoding.base import CodecBase
from grpclib.exceptions import ProtocolError
from grpclib.metadata import encode_grpc_message
from grpclib.protocol import H2Protocol
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Server
from h2.exceptions import StreamClosedError

__all__ = [
    "EndOfStream",
    "ReceivingCodec",
    "TakenTimeout",
    "accept_header_lists_up_to",
    "close_connection",
    "install_receive_hook",
    "install_request_hook",
    "keepalive_config",
    "message_metadata",
    "read_exactly",
    "request_ended",
    "taken_timeout",
    "track_connections",
]

_Message = TypeVar("_Message")


class ReceivingCodec(abc.ABC):
    """A codec that reads a request from the HTTP/2 stream itself (framing included).

    A nominal base, not a runtime-checkable Protocol: isinstance() runs for every request, and
    a Protocol check walks the class's attributes each time."""

    @abc.abstractmethod
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


_grpclib_request_handler = grpclib.server.request_handler
_taken: contextvars.ContextVar[TakenTimeout | None] = contextvars.ContextVar(
    "grpc_timeout", default=None
)


class TakenTimeout(NamedTuple):
    """A call's `grpc-timeout` as the request hook saw it."""

    value: str
    received_at: float  # time.monotonic() when the headers arrived
    taken: bool  # removed from the headers: grpclib does not enforce it, the servicer must


@dataclass(frozen=True, slots=True)
class _Hook:
    path_prefix: str
    max_metadata_bytes: int
    on_refused: Callable[[str, Status], None]
    grpclib_enforces: Callable[[str], bool]


_hooks: list[_Hook] = []


async def _request_handler(
    mapping: Any, stream: H2Stream, headers: list[tuple[str, str]], *args: Any
) -> None:
    path, timeout, size = "", None, 0
    for name, value in headers:  # one pass: this runs for every call
        size += len(name) + len(value) + 32  # RFC 7541 4.1: name, value and 32 octets
        if name == ":path":
            path = value
        elif name == "grpc-timeout":
            # gRPC sends one; several are malformed (grpclib would answer UNKNOWN), and the
            # joined value never parses.
            timeout = value if timeout is None else f"{timeout},{value}"
    # Only methods that exist: an unknown path goes to grpclib (UNIMPLEMENTED) and never
    # becomes a metric label or a log line of its own.
    for hook in _hooks:
        if path.startswith(hook.path_prefix) and path in mapping:
            break
    else:
        await _grpclib_request_handler(mapping, stream, headers, *args)
        return
    if size > hook.max_metadata_bytes:
        status = Status.RESOURCE_EXHAUSTED
        message = f"request metadata of {size} bytes exceeds the limit of {hook.max_metadata_bytes}"
        hook.on_refused(path.removeprefix(hook.path_prefix), status)
        try:
            await _refuse(stream, status, message)
        except (StreamClosedError, ProtocolError):
            pass  # the client went away first: nothing to answer
        finally:
            args[-1]()  # release_stream
        return
    if timeout is not None:
        # Runs in the call's own task: the servicer reads it back with taken_timeout().
        keep = hook.grpclib_enforces(timeout)
        _taken.set(TakenTimeout(timeout, time.monotonic(), taken=not keep))
        if not keep:
            headers = [(name, value) for name, value in headers if name != "grpc-timeout"]
    await _grpclib_request_handler(mapping, stream, headers, *args)


async def _refuse(stream: H2Stream, status: Status, message: str) -> None:
    """A trailers-only gRPC answer, as grpclib's `_abort` sends one but with the content type
    a gRPC client requires."""
    headers = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", str(status.value)),
        ("grpc-message", encode_grpc_message(message)),
    ]
    await stream.send_headers(headers, end_stream=True)
    if stream.closable:
        stream.reset_nowait()


def install_request_hook(
    path_prefix: str,
    *,
    max_metadata_bytes: int,
    on_refused: Callable[[str, Status], None],
    grpclib_enforces: Callable[[str], bool],
) -> None:
    """Check the headers of calls under `path_prefix` before grpclib handles them.

    grpclib's module-level `request_handler` (called by its connection handler for each new
    stream, in the stream's own task) turns a malformed or already-expired `grpc-timeout` into
    UNKNOWN before any handler runs, and has no limit of its own on metadata. So this hook
    refuses metadata over `max_metadata_bytes` with RESOURCE_EXHAUSTED (reported to
    `on_refused(method, status)` for the call's log line and metric), and takes away from
    grpclib each timeout it cannot enforce well (`grpclib_enforces(value)` false): the servicer
    enforces those itself (grpc.deadlines). Every call's timeout is left for the servicer to
    read (`taken_timeout`). Installing again for the same prefix replaces its settings.
    """
    _hooks[:] = [h for h in _hooks if h.path_prefix != path_prefix]
    _hooks.append(_Hook(path_prefix, max_metadata_bytes, on_refused, grpclib_enforces))
    grpclib.server.request_handler = _request_handler  # type: ignore[assignment]


def taken_timeout() -> TakenTimeout | None:
    """This call's `grpc-timeout`, if it has one."""
    return _taken.get()


class EndOfStream(Exception):
    """The stream ended before the bytes asked for arrived."""


async def read_exactly(stream: H2Stream, size: int) -> bytes:
    """`size` bytes of the stream's data, b"" at its clean end; EndOfStream if cut short."""
    try:
        return await stream.recv_data(size)
    except AssertionError:  # grpclib's Buffer.read: "Received less data than expected"
        raise EndOfStream from None


async def request_ended(stream: grpclib.server.Stream[Any, Any]) -> bool:
    """Whether the client ended the request stream with nothing after what was read."""
    buffer = stream._stream.buffer
    # The usual case, answered without waiting: the request's END_STREAM has arrived, and all
    # that is left in grpclib's buffer is its end-of-data marker.
    if buffer._eof and buffer._acked_size == 0 and buffer._unacked.qsize() == 1:
        return True
    try:
        return await read_exactly(stream._stream, 1) == b""
    except EndOfStream:
        return False


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


def accept_header_lists_up_to(server: Server, limit: int) -> None:
    """Let connections of `server` decode header lists of up to `limit` bytes.

    h2 drops the whole connection (a protocol error) on a header list over 64 KiB, so a client
    that sends a large token sees UNAVAILABLE; above that size but below `limit` the request
    hook can answer RESOURCE_EXHAUSTED instead.
    """
    factory = server._protocol_factory

    def factory_with_limit() -> H2Protocol:
        protocol = factory()
        connection_made = protocol.connection_made

        def made(transport: Any) -> None:
            connection_made(transport)
            protocol.connection._connection.decoder.max_header_list_size = limit

        protocol.connection_made = made  # type: ignore[method-assign]
        return protocol

    server._protocol_factory = factory_with_limit  # type: ignore[method-assign]


def close_connection(protocol: H2Protocol, reason: str) -> None:
    """Close an accepted connection and its streams (no-op before it was made)."""
    processor = getattr(protocol, "processor", None)  # set in connection_made
    if processor is not None:
        processor.close(reason)


def message_metadata(message_type: type[betterproto2.Message]) -> betterproto2.ProtoClassMetadata:
    """betterproto2's per-class field metadata (field numbers, types, nested classes)."""
    return message_type._betterproto  # type: ignore[arg-type]
