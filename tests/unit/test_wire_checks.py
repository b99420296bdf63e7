"""The codec's schema check of request bytes (no server): what passes and what each
malformation is reported as."""

from __future__ import annotations

from dataclasses import dataclass

import betterproto2
import grpclib.server
import pytest
from google.rpc import error_details_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentStatus,
    GetDocumentRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice._proto.google.protobuf import FieldMask
from docservice.core.errors import InvalidArgument
from docservice.grpc import compat
from docservice.grpc.codec import LimitedCodec, check_wire
from docservice.grpc.wire import message_field, varint_field


@dataclass(eq=False, repr=False)
class Numbers(betterproto2.Message):
    """Repeated scalars, which protobuf may send packed (betterproto2.field() returns a
    dataclasses.field, as in the generated code)."""

    counts: list[int] = betterproto2.field(1, betterproto2.TYPE_INT32, repeated=True)  # noqa: RUF009
    sizes: list[int] = betterproto2.field(2, betterproto2.TYPE_FIXED32, repeated=True)  # noqa: RUF009


def violations(data: bytes, message_type: type[betterproto2.Message]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        check_wire(data, message_type)
    return [v.field for v in caught.value.violations]


@pytest.mark.parametrize(
    "message",
    [
        CreateDocumentRequest(),
        CreateDocumentRequest(
            title="t\U0001f600",
            content="\u20ac" * 300,
            status=DocumentStatus(-7),
            author="a\x01\x7f",
            tags=["x", "y"],
            comments=[""],
            request_id="r",
        ),
        UpdateDocumentRequest(id="i", update_mask=FieldMask(paths=["title", "*"])),
        ListDocumentsRequest(skip=-1, limit=2**31 - 1, status=DocumentStatus.DRAFT),
    ],
)
def test_well_formed_messages_pass_and_parse_the_same(message: betterproto2.Message) -> None:
    data = bytes(message)
    check_wire(data, type(message))
    assert LimitedCodec(len(data)).decode(data, type(message)) == message


def test_unknown_fields_are_skipped_whatever_they_hold() -> None:
    unknown = (
        varint_field(50, 2**64 - 1)
        + message_field(51, b"\xff\x00")  # not UTF-8, but nobody reads it
        + b"\xa1\x03" + b"\x00" * 8  # field 52, 64-bit
        + b"\xad\x03" + b"\x00" * 4  # field 53, 32-bit
    )  # fmt: skip
    check_wire(message_field(1, b"id") + unknown, GetDocumentRequest)


def test_packed_and_unpacked_repeated_scalars() -> None:
    packed = message_field(1, b"\x01\x96\x01") + message_field(2, b"\x00" * 8)
    unpacked = varint_field(1, 5) + b"\x15" + b"\x01\x00\x00\x00"
    check_wire(packed + unpacked, Numbers)
    assert Numbers.parse(packed + unpacked) == Numbers(counts=[1, 150, 5], sizes=[0, 0, 1])
    assert violations(message_field(1, b"\x96"), Numbers) == ["counts[0]"]  # varint cut short
    assert violations(message_field(2, b"\x00" * 5), Numbers) == ["sizes[0]"]


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (message_field(1, b"\xff"), ["title"]),
        (message_field(1, b"a\x00"), ["title"]),
        (message_field(5, b"ok") + message_field(5, b"\xc3"), ["tags[1]"]),
        (message_field(1, b"\x00") + message_field(7, b"\xed\xa0\x80"), ["title", "comments[0]"]),
        (message_field(1, b"title")[:-1], ["title"]),
        (varint_field(3, 1)[:-1] + b"\x81", ["status"]),
        (message_field(3, b"x"), ["status"]),
        (varint_field(1, 1), ["title"]),
        (message_field(5, b"a") + varint_field(5, 1), ["tags[1]"]),
        (b"\x0b", ["title"]),  # wire type 3
        (b"\x0e", ["title"]),  # wire type 6
        (b"\x00", ["request"]),  # field number 0
        (b"\xff" * 11, ["request"]),  # a varint longer than 10 bytes
        (b"\x81", ["request"]),  # a tag cut short
        (b"\xa1\x03\x00", ["<field 52>"]),  # 64-bit unknown field cut short
    ],
)
def test_malformed_bytes_name_the_field(data: bytes, fields: list[str]) -> None:
    assert violations(data, CreateDocumentRequest) == fields


def test_nested_messages_are_checked_with_their_path() -> None:
    mask = message_field(1, b"title") + message_field(1, b"\xfe") + varint_field(1, 3)
    data = message_field(9, mask)
    assert violations(data, UpdateDocumentRequest) == [
        "update_mask.paths[1]",
        "update_mask.paths[2]",
    ]
    assert violations(message_field(9, message_field(1, b"\xfe")), UpdateDocumentRequest) == [
        "update_mask.paths[0]"
    ]
    assert violations(varint_field(9, 1), UpdateDocumentRequest) == ["update_mask"]


def test_codec_turns_violations_into_invalid_argument_with_details() -> None:
    with pytest.raises(GRPCError) as caught:
        LimitedCodec(1024).decode(message_field(1, b"\xff"), GetDocumentRequest)
    assert caught.value.status == Status.INVALID_ARGUMENT
    assert "id" in (caught.value.message or "")
    [detail] = caught.value.details or []
    assert isinstance(detail, error_details_pb2.BadRequest)
    assert [v.field for v in detail.field_violations] == ["id"]


def _key(number: int, wire_type: int) -> bytes:
    value, out = (number << 3) | wire_type, bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_unknown_groups_are_skipped_and_cut_out_before_parsing() -> None:
    # A group whose inner field 1 would otherwise be read as the request's own `id`.
    group = _key(100, 3) + varint_field(1, 5) + _key(7, 3) + _key(7, 4) + _key(100, 4)
    data = message_field(1, b"abc") + group
    assert check_wire(data, GetDocumentRequest) == message_field(1, b"abc")
    assert LimitedCodec(1024).decode(data, GetDocumentRequest) == GetDocumentRequest(id="abc")
    # Inside a nested message too: the nested message is framed anew.
    mask = message_field(1, b"title") + group
    request = message_field(1, b"x") + message_field(9, mask)
    decoded = LimitedCodec(1024).decode(request, UpdateDocumentRequest)
    assert decoded.update_mask is not None and decoded.update_mask.paths == ["title"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_key(100, 3) + varint_field(1, 5), "never ends"),
        (_key(100, 3) + _key(101, 4), "ends group 101 inside group 100"),
        (_key(100, 4), "never started"),
        (_key(100, 3) * 101 + _key(100, 4) * 101, "more than 100 deep"),
        (_key(1, 3) + _key(1, 4), "arrived as a group value"),  # a known field as a group
        (_key(100, 3) + b"\x00\x00" + _key(100, 4), "holds field number 0"),
    ],
)
def test_malformed_groups_are_invalid(data: bytes, why: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_wire(data, GetDocumentRequest)
    assert why in str(caught.value)


class _Stream:
    """Just enough of grpclib's HTTP/2 stream: the request bytes, read by size."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []

    async def recv_data(self, size: int) -> bytes:
        self.asked.append(size)
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


async def test_grpclib_servers_read_requests_through_the_codec() -> None:
    # If a grpclib upgrade stops reading requests through this function, framing checks
    # (size before buffering, prefix flags) silently stop: fail here instead.
    compat.install_receive_hook()  # as create_app does
    body = bytes(GetDocumentRequest(id="x"))
    framed = _Stream(b"\x00" + len(body).to_bytes(4, "big") + body)
    received = await grpclib.server.recv_message(framed, LimitedCodec(1024), GetDocumentRequest)
    assert received == GetDocumentRequest(id="x")
    oversize = _Stream(b"\x00" + (1025).to_bytes(4, "big") + b"\x00" * 1025)
    with pytest.raises(GRPCError) as caught:
        await grpclib.server.recv_message(oversize, LimitedCodec(1024), GetDocumentRequest)
    assert caught.value.status == Status.RESOURCE_EXHAUSTED
    assert oversize.asked == [5]  # refused at the prefix: the body was never buffered
