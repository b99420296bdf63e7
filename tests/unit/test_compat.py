"""One test per private-API touch point in docservice.grpc.compat: each fails when the pinned
library changes what compat relies on."""

from __future__ import annotations

import dataclasses
import inspect
import weakref

import betterproto2
import grpclib
import grpclib.server
import grpclib.stream
import h2.connection
import pytest
from grpclib.config import Configuration
from grpclib.protocol import Buffer, H2Protocol
from grpclib.server import Server

from docservice._proto.document import Document
from docservice.grpc import compat
from docservice.grpc.codec import LimitedCodec


def test_pinned_versions() -> None:
    assert grpclib.__version__ == "0.4.9"


def test_server_streams_read_requests_through_the_module_level_function() -> None:
    source = inspect.getsource(grpclib.server.Stream.recv_message)
    assert "await recv_message(self._stream, self._codec, self._recv_type)" in source
    compat.install_receive_hook()
    assert grpclib.server.recv_message is compat._recv_message  # type: ignore[attr-defined]
    compat.install_receive_hook()  # idempotent
    assert compat._grpclib_recv_message is grpclib.stream.recv_message
    assert isinstance(LimitedCodec(10), compat.ReceivingCodec)


def test_buffer_read_raises_assertion_error_when_cut_short() -> None:
    source = inspect.getsource(Buffer.read)
    assert "raise AssertionError('Received less data than expected')" in source


def test_keepalive_settings_are_configuration_fields() -> None:
    names = {f.name for f in dataclasses.fields(Configuration)}
    assert {"_keepalive_time", "_keepalive_timeout", "_keepalive_permit_without_calls"} <= names
    config = compat.keepalive_config(7.0, timeout=3.0)
    assert (config._keepalive_time, config._keepalive_timeout) == (7.0, 3.0)


async def test_server_builds_connections_through_protocol_factory() -> None:
    assert "self._protocol_factory" in inspect.getsource(Server.start)
    protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()
    server = Server([])
    compat.track_connections(server, protocols)
    protocol = server._protocol_factory()
    assert isinstance(protocol, H2Protocol) and protocol in protocols


def test_connections_get_their_processor_when_made() -> None:
    assert "self.processor = EventsProcessor(" in inspect.getsource(H2Protocol.connection_made)


@pytest.mark.parametrize("message", [Document])
def test_betterproto_metadata_names_fields_by_number(message: type[betterproto2.Message]) -> None:
    meta = compat.message_metadata(message)
    assert meta.meta_by_field_name["title"].number == 2
    assert meta.field_name_by_number[2] == "title"


async def test_buffer_keeps_one_end_marker_after_the_last_data() -> None:
    """compat.request_ended reads grpclib's Buffer state without waiting. (Async tests, not
    asyncio.run: that would close the session's loop for the tests after them.)"""
    buffer = Buffer(lambda size: None)
    buffer.add(b"\x00\x00\x00\x00\x01x", 6)
    buffer.eof()
    assert await buffer.read(6) == b"\x00\x00\x00\x00\x01x"
    assert (buffer._eof, buffer._acked_size, buffer._unacked.qsize()) == (True, 0, 1)


def test_request_hook_wraps_the_module_level_request_handler() -> None:
    source = inspect.getsource(grpclib.server.Handler.accept)
    assert "self.loop.create_task(request_handler(" in source
    assert "release_stream" in inspect.signature(compat._grpclib_request_handler).parameters
    assert "Deadline.from_headers(headers)" in inspect.getsource(compat._grpclib_request_handler)
    abort = inspect.getsource(grpclib.server._abort)  # type: ignore[attr-defined]
    assert "await h2_stream.send_headers(headers, end_stream=True)" in abort
    assert "h2_stream.reset_nowait()" in abort  # what compat._refuse does too


def test_h2_decoder_limit_is_set_from_the_connection() -> None:
    assert h2.connection.H2Connection.DEFAULT_MAX_HEADER_LIST_SIZE == 2**16
    assert "self.connection = Connection(" in inspect.getsource(H2Protocol.connection_made)
    connection = h2.connection.H2Connection()
    assert connection.decoder.max_header_list_size == 2**16
