"""Malformed gRPC requests sent as raw HTTP/2 frames: bytes no generated client would produce.

A small h2 client writes the gRPC framing by hand (the 5-byte prefix: compressed flag and
length, then the protobuf body), so a test can send a truncated body, a body of another message
type, invalid UTF-8, a length prefix that lies, a compressed flag without compression or a
message over the size cap. Each must get a clean status naming what is wrong, never INTERNAL or
UNKNOWN and never a hang, and the same connection must keep serving afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpclib.client import Channel
from grpclib.const import Status

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentStatus,
    GetDocumentRequest,
    GetDocumentResponse,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice._proto.google.protobuf import FieldMask
from docservice.app import App
from docservice.grpc.wire import message_field, varint_field
from tests.support.apps import running_app
from tests.support.backends import backend_settings
from tests.support.contract import unique

SERVICE = "/document.DocumentService"
READ_TIMEOUT = 10.0  # no answer within this is a hang
MIB = 1024 * 1024
CLEAN = {
    Status.OK,
    Status.INVALID_ARGUMENT,
    Status.NOT_FOUND,
    Status.FAILED_PRECONDITION,
    Status.RESOURCE_EXHAUSTED,
}


def frame(body: bytes, *, flag: int = 0, length: int | None = None) -> bytes:
    """A gRPC length-prefixed message; `length` may lie about the body."""
    return struct.pack(">BI", flag, len(body) if length is None else length) + body


@dataclass
class Reply:
    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    reset: int | None = None  # RST_STREAM error code
    done: bool = False

    def _status_header(self, name: str) -> str | None:
        # A call that fails before any message answers "trailers-only": status in the headers.
        return self.trailers.get(name, self.headers.get(name))

    @property
    def status(self) -> Status:
        value = self._status_header("grpc-status")
        assert value is not None, f"no grpc-status: {self}"
        return Status(int(value))

    @property
    def message(self) -> str:
        return self._status_header("grpc-message") or ""

    @property
    def fields(self) -> list[str]:
        """The BadRequest field violations of the status details."""
        raw = self._status_header("grpc-status-details-bin")
        if raw is None:
            return []
        status = status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))
        fields: list[str] = []
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            assert detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
        return sorted(fields)

    def messages(self) -> list[bytes]:
        out, rest = [], self.data
        while rest:
            flag, length = struct.unpack(">BI", rest[:5])
            assert flag == 0
            out.append(rest[5 : 5 + length])
            rest = rest[5 + length :]
        return out


class RawConnection:
    """One HTTP/2 connection speaking gRPC from bytes the caller chooses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str):
        self._reader = reader
        self._writer = writer
        self._authority = authority
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._replies: dict[int, Reply] = {}
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        connection = cls(reader, writer, f"{host}:{port}")
        connection._h2.initiate_connection()
        await connection._flush()
        return connection

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def call(
        self,
        method: str,
        chunks: Iterable[bytes],
        *,
        end_stream: bool = True,
        headers: Iterable[tuple[str, str]] = (),
        path: str | None = None,
    ) -> Reply:
        """Send `chunks` as DATA frames (one or more each) and wait for the whole reply."""
        stream_id = self._h2.get_next_available_stream_id()
        reply = self._replies[stream_id] = Reply()
        self._h2.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path or f"{SERVICE}/{method}"),
                (":authority", self._authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                *headers,
            ],
        )
        await self._flush()
        chunks = [c for c in chunks if c]
        try:
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                await self._send(stream_id, chunk, end_stream=end_stream and last)
            if end_stream and not chunks:
                self._h2.end_stream(stream_id)
                await self._flush()
        except h2.exceptions.StreamClosedError:
            pass  # the server answered (and reset the stream) before taking all of it
        while not reply.done:
            await self._receive()
        return reply

    async def _send(self, stream_id: int, data: bytes, *, end_stream: bool) -> None:
        reply = self._replies[stream_id]
        while True:
            if reply.done:
                return
            window = min(
                self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size
            )
            if window >= len(data):
                self._h2.send_data(stream_id, data, end_stream=end_stream)
                await self._flush()
                return
            if window > 0:
                self._h2.send_data(stream_id, data[:window])
                data = data[window:]
                await self._flush()
            else:
                await self._receive()

    async def _receive(self) -> None:
        data = await asyncio.wait_for(self._reader.read(65536), READ_TIMEOUT)
        if not data:
            self.closed = True
            for reply in self._replies.values():
                reply.done = True
            return
        for event in self._h2.receive_data(data):
            reply = self._replies.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and reply is not None:
                reply.headers = dict(event.headers)
            elif isinstance(event, h2.events.TrailersReceived) and reply is not None:
                reply.trailers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                if reply is not None:
                    reply.data += event.data or b""
                self._h2.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id or 0
                )
            elif isinstance(event, h2.events.StreamEnded) and reply is not None:
                reply.done = True
            elif isinstance(event, h2.events.StreamReset) and reply is not None:
                reply.reset = event.error_code
                reply.done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.closed = True
                for pending in self._replies.values():
                    pending.done = True
        await self._flush()

    async def _flush(self) -> None:
        self._writer.write(self._h2.data_to_send())
        await self._writer.drain()


@dataclass
class Target:
    app: App
    stub: DocumentServiceStub
    document: Document
    raw: RawConnection

    async def assert_serving(self) -> None:
        """The raw connection that carried the bad request, and a fresh client, both work."""
        assert not self.raw.closed, "the server closed the connection"
        reply = await self.raw.call(
            "GetDocument", [frame(bytes(GetDocumentRequest(id=self.document.id)))]
        )
        assert reply.status == Status.OK, reply
        [body] = reply.messages()
        assert GetDocumentResponse.parse(body).document == self.document
        again = await self.stub.get_document(GetDocumentRequest(id=self.document.id), timeout=10)
        assert again.document == self.document


@pytest.fixture(scope="module")
async def raw_app(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[App]:
    # PostgreSQL is the strictest backend (it refuses NUL and invalid UTF-8 in text).
    settings = backend_settings("postgres", tmp_path_factory.mktemp("raw-frames"), request)
    async with running_app(settings) as app:
        yield app


@pytest.fixture
async def target(raw_app: App) -> AsyncIterator[Target]:
    settings = raw_app.settings
    channel = Channel(settings.grpc_host, settings.grpc_port)
    raw = await RawConnection.open(settings.grpc_host, settings.grpc_port)
    try:
        stub = DocumentServiceStub(channel)
        document = await stub.create_document(
            CreateDocumentRequest(title=unique("title"), author=unique("author"), tags=["raw"])
        )
        yield Target(raw_app, stub, document, raw)
    finally:
        await raw.close()
        channel.close()


async def expect_status(target: Target, reply: Reply, status: Status, *fields: str) -> None:
    assert reply.status == status, (reply.status, reply.message)
    assert sorted(fields) == reply.fields, reply.message
    for name in fields:
        assert name in reply.message
    await target.assert_serving()


def create_body(**fields: object) -> bytes:
    fields.setdefault("title", unique("title"))
    fields.setdefault("author", unique("author"))
    return bytes(CreateDocumentRequest(**fields))


async def nothing_created_by(target: Target, author: str) -> None:
    listed = await target.stub.list_documents(
        ListDocumentsRequest(author=author, show_deleted=True)
    )
    assert listed.documents == []


# --- the body -------------------------------------------------------------------------------


async def test_every_truncation_of_a_body_is_a_clean_error(target: Target) -> None:
    author = unique("author")
    body = create_body(author=author, content="some content", tags=["a", "b"], category="c")
    accepted = 0
    for cut in range(len(body)):
        reply = await target.raw.call("CreateDocument", [frame(body[:cut])])
        assert reply.status in {Status.OK, Status.INVALID_ARGUMENT}, (cut, reply.message)
        accepted += reply.status == Status.OK
        if reply.status == Status.INVALID_ARGUMENT:
            assert reply.fields and reply.message
    # Fields go out in number order (title, content, author, tags, category): only the cuts
    # right after author and after each tag leave a valid, shorter request.
    assert accepted == 3
    await target.assert_serving()


async def test_truncated_string_names_its_field(target: Target) -> None:
    author = unique("author")
    title_field = message_field(1, b"a title that is cut short")
    body = message_field(4, author.encode()) + title_field[:-5]
    reply = await target.raw.call("CreateDocument", [frame(body)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "title")
    assert "truncated" in reply.message
    await nothing_created_by(target, author)

    tag = message_field(5, b"tag")  # a varint cut inside its continuation bytes
    reply = await target.raw.call("CreateDocument", [frame(tag + b"\x18\xff")])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "status")


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        # A ListDocumentsRequest (skip = 5) where an id (string) belongs.
        ("GetDocument", bytes(ListDocumentsRequest(skip=5)), "id"),
        # A Document: its field 3 is content (a string) where CreateDocumentRequest has status.
        ("CreateDocument", bytes(Document(id="x", title="t", content="c")), "status"),
        # An UpdateDocumentRequest: its field 2 (title) where GetDocumentVersions has page_size.
        ("GetDocumentVersions", bytes(UpdateDocumentRequest(id="x", title="t")), "page_size"),
        # A varint where the update mask (a message) belongs.
        ("UpdateDocument", message_field(1, b"x") + varint_field(9, 1), "update_mask"),
        # A varint where a mask path (a string) belongs.
        ("UpdateDocument", message_field(9, varint_field(1, 7)), "update_mask.paths[0]"),
        # Repeated strings arriving as varints.
        ("CreateDocument", message_field(5, b"ok") + varint_field(5, 3), "tags[1]"),
    ],
)
async def test_body_of_the_wrong_message_type(
    target: Target, method: str, body: bytes, field: str
) -> None:
    reply = await target.raw.call(method, [frame(body)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, field)
    assert "arrived as a" in reply.message


async def test_every_request_type_sent_to_every_method(target: Target) -> None:
    scratch = await target.stub.create_document(
        CreateDocumentRequest(title=unique("title"), author=unique("author"), tags=["x"])
    )
    samples = [
        CreateDocumentRequest(title="t", author="a", status=DocumentStatus.PUBLISHED, tags=["x"]),
        GetDocumentRequest(id=scratch.id),
        UpdateDocumentRequest(id=scratch.id, update_mask=FieldMask(paths=["tags"])),
        ListDocumentsRequest(skip=3, limit=2, page_size=1, status=DocumentStatus.ARCHIVED),
        GetDocumentVersionsRequest(id=scratch.id, page_size=2),
        GetDocumentVersionRequest(id=scratch.id, version_id="1", version=1),
        scratch,
    ]
    methods = [
        "CreateDocument", "GetDocument", "UpdateDocument", "RestoreDocument", "ListDocuments",
        "GetDocumentVersions", "GetDocumentVersion", "RevertDocument", "DeleteDocument",
    ]  # fmt: skip
    statuses: set[Status] = set()
    for method in methods:
        for sample in samples:
            reply = await target.raw.call(method, [frame(bytes(sample))])
            assert reply.status in CLEAN, (method, type(sample).__name__, reply.message)
            statuses.add(reply.status)
    assert Status.INVALID_ARGUMENT in statuses and Status.OK in statuses
    await target.assert_serving()


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"\xff\xfe", "not UTF-8 at all"),
        (b"caf\xc3", "a sequence cut short"),
        (b"\xc0\xaf", "overlong encoding of /"),
        (b"\xed\xa0\x80", "a UTF-16 surrogate"),
        (b"\xf4\x90\x80\x80", "above U+10FFFF"),
    ],
)
async def test_invalid_utf8_is_rejected_naming_the_field(
    target: Target, payload: bytes, name: str
) -> None:
    author_name = unique("author")
    author = message_field(4, author_name.encode())
    reply = await target.raw.call("CreateDocument", [frame(message_field(1, payload) + author)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "title")
    assert "UTF-8" in reply.message, name

    tags = message_field(5, b"fine") + message_field(5, b"bad " + payload)
    body = message_field(1, b"title") + author + tags
    reply = await target.raw.call("CreateDocument", [frame(body)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "tags[1]")
    await nothing_created_by(target, author_name)

    reply = await target.raw.call("GetDocument", [frame(message_field(1, payload))])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "id")

    mask = message_field(9, message_field(1, b"tags") + message_field(1, payload))
    update = message_field(1, target.document.id.encode()) + mask
    reply = await target.raw.call("UpdateDocument", [frame(update)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "update_mask.paths[1]")

    filters = message_field(6, payload) + message_field(7, payload)
    reply = await target.raw.call("ListDocuments", [frame(filters)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "author", "tag")


async def test_nul_characters_are_rejected_before_the_database(target: Target) -> None:
    author = unique("author")
    body = create_body(author=author, content="a\x00b", tags=["ok", "\x00"], request_id="r\x00")
    reply = await target.raw.call("CreateDocument", [frame(body)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "content", "tags[1]", "request_id")
    await nothing_created_by(target, author)
    reply = await target.raw.call("ListDocuments", [frame(bytes(ListDocumentsRequest(tag="\x00")))])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "tag")


async def test_malformed_wire_encodings(target: Target) -> None:
    cases = {
        "a field number 0": (b"\x02\x01a", "request"),
        "wire type 3 (a group)": (b"\x0b", "id"),
        "wire type 7": (b"\x0f", "id"),
        "an unknown field cut short": (b"\xa2\x06\x05ab", "<field 100>"),
        "a varint of 11 bytes": (b"\x80" * 10 + b"\x01", "request"),
        "a 64-bit value cut short": (b"\x99\x01\x01\x02", "<field 19>"),
    }
    for body, expected_field in cases.values():
        reply = await target.raw.call("GetDocument", [frame(body)])
        await expect_status(target, reply, Status.INVALID_ARGUMENT, expected_field)
    # Unknown fields that are well-formed are skipped, as protobuf requires.
    unknown = varint_field(100, 1) + message_field(101, b"\xff") + b"\x9d\x06\x01\x02\x03\x04"
    # ...a group among them (field 102, holding a field 1 that is not the request's id).
    unknown += b"\xb3\x06" + message_field(1, b"not-the-id") + b"\xb4\x06"
    body = message_field(1, target.document.id.encode()) + unknown
    reply = await target.raw.call("GetDocument", [frame(body)])
    assert reply.status == Status.OK, reply.message
    [answer] = reply.messages()
    assert GetDocumentResponse.parse(answer).document == target.document


# --- the framing ----------------------------------------------------------------------------


async def test_oversize_message_is_resource_exhausted(target: Target) -> None:
    limit = target.app.settings.max_message_bytes
    author = unique("author")
    big = create_body(author=author, content="x" * (limit - 100), comments=["y" * 200])
    assert len(big) > limit
    for _ in range(3):  # repeatedly on one connection: no flow-control window may leak
        reply = await target.raw.call("CreateDocument", [frame(big)])
        await expect_status(target, reply, Status.RESOURCE_EXHAUSTED)
        assert str(limit) in reply.message
    await nothing_created_by(target, author)
    # Refused from the prefix alone: the body is never waited for.
    for claimed in (limit + 1, 2**32 - 1):
        reply = await target.raw.call("GetDocument", [frame(b"", length=claimed)], end_stream=False)
        await expect_status(target, reply, Status.RESOURCE_EXHAUSTED)


async def test_length_prefix_that_lies(target: Target) -> None:
    body = bytes(GetDocumentRequest(id=target.document.id))
    # Claims more than comes before the stream ends.
    reply = await target.raw.call("GetDocument", [frame(body, length=len(body) + 50)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "request")
    assert "ended inside a message" in reply.message
    # Claims more, and the stream stays open: the client's deadline ends the call.
    reply = await target.raw.call(
        "GetDocument",
        [frame(body, length=len(body) + 50)],
        end_stream=False,
        headers=[("grpc-timeout", "500m")],
    )
    await expect_status(target, reply, Status.DEADLINE_EXCEEDED)
    # Claims less: the bytes after the claimed ones are more data than one unary message...
    reply = await target.raw.call("GetDocument", [frame(body, length=0)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "request")
    assert "more data followed" in reply.message
    # ...unless the claimed bytes already end inside a field.
    reply = await target.raw.call("GetDocument", [frame(body, length=len(body) - 1)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "id")
    assert "truncated" in reply.message
    # The stream ends inside the 5-byte prefix, or before any message at all.
    reply = await target.raw.call("GetDocument", [b"\x00\x00\x00"])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "request")
    reply = await target.raw.call("GetDocument", [])
    await expect_status(target, reply, Status.INVALID_ARGUMENT)
    assert "without a request message" in reply.message


async def test_framing_split_across_data_frames_is_fine(target: Target) -> None:
    data = frame(bytes(GetDocumentRequest(id=target.document.id)))
    reply = await target.raw.call("GetDocument", [data[:2], data[2:4], data[4:9], data[9:]])
    assert reply.status == Status.OK, reply.message
    [body] = reply.messages()
    assert GetDocumentResponse.parse(body).document == target.document


async def test_compressed_flag_without_compression(target: Target) -> None:
    body = bytes(GetDocumentRequest(id=target.document.id))
    reply = await target.raw.call("GetDocument", [frame(body, flag=1)])
    await expect_status(target, reply, Status.UNIMPLEMENTED)
    assert "compressed" in reply.message
    reply = await target.raw.call("GetDocument", [frame(body, flag=0x80)])
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "request")


async def test_grpcio_raw_bytes_and_gzip(target: Target) -> None:
    """The same through grpcio: raw bytes with no serializer, and a really compressed call."""
    settings = target.app.settings
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        get = channel.unary_unary(f"{SERVICE}/GetDocument")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await get(message_field(1, b"\xff"), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "id" in (bad.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as compressed:
            # Long enough to compress: grpcio sends a message as it is when gzip cannot shrink it.
            request = bytes(GetDocumentRequest(id="a" * 10_000))
            await get(request, timeout=10, compression=grpc.Compression.Gzip)
        assert compressed.value.code() == grpc.StatusCode.UNIMPLEMENTED
        answer = await get(bytes(GetDocumentRequest(id=target.document.id)), timeout=10)
        assert GetDocumentResponse.parse(answer).document == target.document
    await target.assert_serving()


async def test_health_check_with_a_malformed_body(target: Target) -> None:
    reply = await target.raw.call(
        "", [frame(message_field(1, b"\xff"))], path="/grpc.health.v1.Health/Check"
    )
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "request")


# --- the call: one message, its deadline, its metadata -------------------------------------


def call_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """'Method STATUS' of each call's log line (which goes on with its duration)."""
    return [
        " ".join(r.getMessage().split()[:2]) for r in caplog.records if r.name == "docservice.calls"
    ]


async def test_a_unary_call_carries_exactly_one_message(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="docservice.calls")
    author = unique("author")
    body = create_body(author=author)
    for chunks in (
        [frame(body) + frame(body)],  # two messages
        [frame(body), frame(body)],  # two messages in two DATA frames
        [frame(body) + b"\x00\x00"],  # a second prefix cut short
        [frame(body) + b"\x00"],  # one stray byte
    ):
        reply = await target.raw.call("CreateDocument", chunks)
        await expect_status(target, reply, Status.INVALID_ARGUMENT, "request")
        assert "single message" in reply.message or "ended inside" in reply.message
    await nothing_created_by(target, author)
    assert call_logs(caplog).count("CreateDocument INVALID_ARGUMENT") >= 4, call_logs(caplog)


@pytest.mark.parametrize("value", ["abc", "-1S", "1x", "123456789S", "1.5S", "", "S"])
async def test_a_malformed_grpc_timeout_is_invalid_argument(
    target: Target, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    caplog.set_level("INFO", logger="docservice.calls")
    author = unique("author")
    reply = await target.raw.call(
        "CreateDocument", [frame(create_body(author=author))], headers=[("grpc-timeout", value)]
    )
    await expect_status(target, reply, Status.INVALID_ARGUMENT, "grpc-timeout")
    await nothing_created_by(target, author)
    assert "CreateDocument INVALID_ARGUMENT" in call_logs(caplog)


async def test_several_grpc_timeouts_are_invalid_argument(target: Target) -> None:
    author = unique("author")
    for values in (["bogus", "10S"], ["1n", "10S"], ["10S", "10S"]):
        reply = await target.raw.call(
            "CreateDocument",
            [frame(create_body(author=author))],
            headers=[("grpc-timeout", v) for v in values],
        )
        await expect_status(target, reply, Status.INVALID_ARGUMENT, "grpc-timeout")
    await nothing_created_by(target, author)


@pytest.mark.parametrize("value", ["1n", "1u", "0S", "0m"])
async def test_an_expired_grpc_timeout_is_deadline_exceeded(
    target: Target, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    caplog.set_level("INFO", logger="docservice.calls")
    author = unique("author")
    reply = await target.raw.call(
        "CreateDocument", [frame(create_body(author=author))], headers=[("grpc-timeout", value)]
    )
    await expect_status(target, reply, Status.DEADLINE_EXCEEDED)
    await nothing_created_by(target, author)
    assert "CreateDocument DEADLINE_EXCEEDED" in call_logs(caplog)


# 300 ms: grpclib's own timer; 80 ms: below MIN_GRPCLIB_TIMEOUT, the servicer's.
@pytest.mark.parametrize("value", ["300m", "80m"])
async def test_a_deadline_passing_while_the_response_is_sent_is_logged_as_such(
    target: Target, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    """The client stops reading (HTTP/2 flow control holds the response back) until after its
    deadline: the call's log line says DEADLINE_EXCEEDED, and no traceback is logged."""
    caplog.set_level("INFO")
    author = unique("author")
    for _ in range(2):  # a page of about 200 KB, past the 64 KiB initial flow-control window
        await target.stub.create_document(
            CreateDocumentRequest(title=unique("t"), author=author, content="x" * 100_000)
        )
    raw = target.raw
    stream_id = raw._h2.get_next_available_stream_id()
    reply = raw._replies[stream_id] = Reply()
    raw._h2.send_headers(
        stream_id,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/document.DocumentService/ListDocuments"),
            (":authority", raw._authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", value),
        ],
    )
    raw._h2.send_data(stream_id, frame(bytes(ListDocumentsRequest(author=author))), end_stream=True)
    await raw._flush()
    await asyncio.sleep(0.8)  # not reading: the server's send waits for window
    while not reply.done:
        await raw._receive()
    assert reply.status == Status.DEADLINE_EXCEEDED or reply.reset is not None, reply
    assert "ListDocuments DEADLINE_EXCEEDED" in call_logs(caplog), call_logs(caplog)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    await target.assert_serving()


async def test_oversized_metadata_is_resource_exhausted(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="docservice.calls")
    request = [frame(bytes(GetDocumentRequest(id=target.document.id)))]
    for size in (20_000, 100_000, 600_000):
        token = ("authorization", "Bearer " + "a" * size)
        reply = await target.raw.call("GetDocument", request, headers=[token])
        assert reply.status == Status.RESOURCE_EXHAUSTED, reply
        assert "metadata" in reply.message
        await target.assert_serving()
    assert call_logs(caplog).count("GetDocument RESOURCE_EXHAUSTED") == 3
    # A method that does not exist is grpclib's to answer, and never becomes a log line or a
    # metric label of its own, whatever its metadata.
    reply = await target.raw.call(
        "NoSuchMethod" + "x" * 1000, request, headers=[("x-pad", "a" * 20_000)]
    )
    assert reply.status == Status.UNIMPLEMENTED
    assert not [line for line in call_logs(caplog) if line.startswith("NoSuchMethod")]
    # Just under the limit is fine.
    reply = await target.raw.call("GetDocument", request, headers=[("x-pad", "a" * 15_000)])
    assert reply.status == Status.OK
