"""The wire codec: grpclib's protobuf codec, strict about the requests it accepts.

betterproto2's parser trusts its input: it silently shortens a field whose declared length runs
past the end of the message, lets a field arrive in another type's wire encoding (an integer
where a string belongs, which then breaks the service far from the wire), and fails on other
malformed bytes with arbitrary exceptions. So every request is checked against its message's
schema first, and anything malformed is INVALID_ARGUMENT naming the field. The gRPC framing is
checked too, before the body is buffered: a message over the size limit is RESOURCE_EXHAUSTED
as soon as its length prefix arrives.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, TypeVar

import betterproto2
from google.protobuf.message import DecodeError
from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.protocol import Stream as H2Stream

from docservice.core.errors import FieldViolation, InvalidArgument
from docservice.grpc.compat import EndOfStream, ReceivingCodec, message_metadata, read_exactly
from docservice.grpc.errors import invalid_argument
from docservice.grpc.wire import message_field

__all__ = ["Encoded", "LimitedCodec", "check_wire"]

REQUEST = "request"  # names the message itself in violations not tied to one field
MAX_VARINT_BYTES = 10
MAX_FIELD_NUMBER = 2**29 - 1

_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5
_WIRE_START_GROUP, _WIRE_END_GROUP = 3, 4
_WIRE_NAMES = {
    0: "varint",
    1: "64-bit",
    2: "length-delimited",
    3: "group",
    4: "group end",
    5: "32-bit",
}
MAX_GROUP_DEPTH = 100  # protobuf's own recursion limit
# (start, end, replacement): bytes of a message to replace, b"" to drop them.
_Edit = tuple[int, int, bytes]
_WIRE_OF_TYPE = {
    **dict.fromkeys(betterproto2.WIRE_VARINT_TYPES, _WIRE_VARINT),
    **dict.fromkeys(betterproto2.WIRE_FIXED_64_TYPES, _WIRE_FIXED64),
    **dict.fromkeys(betterproto2.WIRE_FIXED_32_TYPES, _WIRE_FIXED32),
    **dict.fromkeys(betterproto2.WIRE_LEN_DELIM_TYPES, _WIRE_LEN),
}
_FIXED_SIZE = {_WIRE_FIXED64: 8, _WIRE_FIXED32: 4}


class Encoded:
    """A message already in wire form; the codec sends its bytes as they are."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    wire_type: int
    repeated: bool
    packable: bool  # a repeated scalar, which may also come packed (length-delimited)
    text: bool
    message: type[betterproto2.Message] | None


@functools.cache
def _schema(message_type: type[betterproto2.Message]) -> dict[int, _Field]:
    meta = message_metadata(message_type)
    schema: dict[int, _Field] = {}
    for number, name in meta.field_name_by_number.items():
        field = meta.meta_by_field_name[name]
        nested: type[betterproto2.Message] | None = None
        if field.proto_type in (betterproto2.TYPE_MESSAGE, betterproto2.TYPE_MAP):
            nested = field.unwrap() if field.unwrap else meta.cls_by_field[name]
        schema[number] = _Field(
            name=name,
            wire_type=_WIRE_OF_TYPE[field.proto_type],
            repeated=bool(field.repeated),
            packable=bool(field.repeated) and field.proto_type in betterproto2.PACKED_TYPES,
            text=field.proto_type == betterproto2.TYPE_STRING,
            message=nested,
        )
    return schema


def check_wire(data: bytes, message_type: type[betterproto2.Message]) -> bytes:
    """The bytes to parse as `message_type`; InvalidArgument unless `data` is well-formed.

    Well-formed: every tag, varint and length fits in the data; every known field has its
    type's wire encoding; strings are UTF-8 without NUL characters (PostgreSQL text cannot hold
    U+0000, and no backend may accept what another rejects); nested messages are well-formed
    too. Unknown fields are skipped, as protobuf requires, groups (the deprecated wire types 3
    and 4) among them: those are cut out of the bytes returned, because betterproto2 would
    read a group's inner fields as fields of the message. Violations name the field, e.g.
    `tags[2]` or `update_mask.paths[0]`.
    """
    violations: list[FieldViolation] = []
    view = memoryview(data)
    edits: list[_Edit] = []
    try:
        edits = _check_message(view, message_type, "", violations)
    except InvalidArgument as exc:  # malformed past repair: stop, with what was found so far
        violations += exc.violations
    if violations:
        raise InvalidArgument(violations)
    return _apply(view, edits) if edits else data


def _apply(data: memoryview, edits: list[_Edit]) -> bytes:
    out, pos = bytearray(), 0
    for start, end, replacement in edits:
        out += data[pos:start]
        out += replacement
        pos = end
    out += data[pos:]
    return bytes(out)


def _check_message(
    data: memoryview,
    message_type: type[betterproto2.Message],
    prefix: str,
    violations: list[FieldViolation],
) -> list[_Edit]:
    schema = _schema(message_type)
    seen: dict[int, int] = {}
    edits: list[_Edit] = []
    end = len(data)
    pos = 0
    while pos < end:
        start = pos
        key, pos = _read_varint(data, pos, prefix.rstrip(".") or REQUEST)
        number, wire_type = key >> 3, key & 7
        field = schema.get(number)
        name = prefix + (field.name if field is not None else f"<field {number}>")
        if not 1 <= number <= MAX_FIELD_NUMBER:
            raise InvalidArgument.of(prefix.rstrip(".") or REQUEST, f"has field number {number}")
        if field is not None and field.repeated:
            index = seen.get(number, 0)
            seen[number] = index + 1
            name = f"{name}[{index}]"
        if wire_type not in _WIRE_NAMES:
            raise InvalidArgument.of(name, f"uses wire type {wire_type}, which protobuf lacks")
        if (
            field is not None
            and wire_type != field.wire_type
            and not (field.packable and wire_type == _WIRE_LEN)
        ):
            raise InvalidArgument.of(
                name,
                f"arrived as a {_WIRE_NAMES[wire_type]} value, but this field is "
                f"{_WIRE_NAMES[field.wire_type]}",
            )
        if wire_type == _WIRE_START_GROUP:  # an unknown field (known ones are never groups)
            pos = _skip_group(data, pos, number, name, 1)
            edits.append((start, pos, b""))
        elif wire_type == _WIRE_END_GROUP:
            raise InvalidArgument.of(name, "ends a group that never started")
        elif wire_type == _WIRE_LEN:
            length, pos = _read_varint(data, pos, name)
            if length > end - pos:
                raise InvalidArgument.of(
                    name, f"is truncated: declares {length} bytes, {end - pos} remain"
                )
            payload = data[pos : pos + length]
            pos += length
            if field is not None:
                cleaned = _check_payload(payload, field, name, violations)
                if cleaned is not None:  # a nested message lost a group: frame it anew
                    edits.append((start, pos, message_field(number, cleaned)))
        else:
            pos = _skip_scalar(data, pos, wire_type, name)
    return edits


def _skip_scalar(data: memoryview, pos: int, wire_type: int, name: str) -> int:
    if wire_type == _WIRE_VARINT:
        return _read_varint(data, pos, name)[1]
    pos += _FIXED_SIZE[wire_type]
    if pos > len(data):
        raise InvalidArgument.of(name, "is truncated")
    return pos


def _skip_group(data: memoryview, pos: int, number: int, name: str, depth: int) -> int:
    """The position after the end tag of group `number`, whose start tag ends at `pos`."""
    if depth > MAX_GROUP_DEPTH:
        raise InvalidArgument.of(name, f"nests groups more than {MAX_GROUP_DEPTH} deep")
    while pos < len(data):
        key, pos = _read_varint(data, pos, name)
        inner, wire_type = key >> 3, key & 7
        if not 1 <= inner <= MAX_FIELD_NUMBER:
            raise InvalidArgument.of(name, f"holds field number {inner}")
        if wire_type == _WIRE_END_GROUP:
            if inner != number:
                raise InvalidArgument.of(name, f"ends group {inner} inside group {number}")
            return pos
        if wire_type == _WIRE_START_GROUP:
            pos = _skip_group(data, pos, inner, name, depth + 1)
        elif wire_type == _WIRE_LEN:
            length, pos = _read_varint(data, pos, name)
            if length > len(data) - pos:
                raise InvalidArgument.of(name, "is truncated")
            pos += length
        elif wire_type in _WIRE_NAMES:
            pos = _skip_scalar(data, pos, wire_type, name)
        else:
            raise InvalidArgument.of(name, f"uses wire type {wire_type}, which protobuf lacks")
    raise InvalidArgument.of(name, f"is truncated: group {number} never ends")


def _check_payload(
    payload: memoryview, field: _Field, name: str, violations: list[FieldViolation]
) -> bytes | None:
    """Check one length-delimited value; the nested message's bytes if groups were cut out."""
    if field.text:
        raw = payload.tobytes()
        if not raw.isascii():
            try:
                raw.decode()
            except UnicodeDecodeError:
                violations.append(FieldViolation(name, "must be valid UTF-8"))
                return None
        if b"\x00" in raw:
            violations.append(FieldViolation(name, "must not contain NUL characters (U+0000)"))
    elif field.message is not None:
        edits = _check_message(payload, field.message, f"{name}.", violations)
        return _apply(payload, edits) if edits else None
    elif field.packable:
        size = _FIXED_SIZE.get(field.wire_type)
        if size is not None:
            if len(payload) % size:
                raise InvalidArgument.of(name, "is truncated")
            return None
        pos = 0
        while pos < len(payload):
            _, pos = _read_varint(payload, pos, name)
    return None


def _read_varint(data: memoryview, pos: int, name: str) -> tuple[int, int]:
    result = shift = 0
    stop = min(len(data), pos + MAX_VARINT_BYTES)
    while pos < stop:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    if pos == len(data):
        raise InvalidArgument.of(name, "is truncated")
    raise InvalidArgument.of(name, f"has a varint longer than {MAX_VARINT_BYTES} bytes")


_Message = TypeVar("_Message")


class LimitedCodec(ProtoCodec, ReceivingCodec):
    """grpclib's protobuf codec, with gRPC's max receive message length (grpclib has none):
    larger requests are RESOURCE_EXHAUSTED. Sends `Encoded` messages without encoding them
    again, and checks every request (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, Encoded):
            return message.data
        return super().encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        self._check_size(len(data))
        strict = isinstance(message_type, type) and issubclass(message_type, betterproto2.Message)
        try:
            if strict:
                return message_type.parse(check_wire(data, message_type))
            return super().decode(data, message_type)  # health, reflection: protobuf's parser
        except InvalidArgument as exc:
            raise invalid_argument(exc) from None
        except (DecodeError, ValueError, TypeError, EOFError, struct.error) as exc:
            # Only protobuf's parser, if check_wire lets nothing through that betterproto2
            # fails on; never INTERNAL for a malformed request either way.
            name = getattr(message_type, "__name__", "message")
            raise invalid_argument(
                InvalidArgument.of(REQUEST, f"is not a valid {name}: {exc}")
            ) from None

    async def receive(self, stream: H2Stream, message_type: type[_Message]) -> _Message | None:
        """The next request message of `stream` (None at its end), framing checked first."""
        prefix = await _read(stream, 5, "the 5-byte prefix of a message")
        if not prefix:
            return None
        if prefix[0] == 1:
            raise GRPCError(
                Status.UNIMPLEMENTED,
                "compressed messages are not supported: send them uncompressed",
            )
        if prefix[0] != 0:
            raise invalid_argument(
                InvalidArgument.of(REQUEST, f"has a message prefix with flags {prefix[0]:#04x}")
            )
        length = int.from_bytes(prefix[1:], "big")
        self._check_size(length)
        body = await _read(stream, length, f"a message of {length} bytes")
        return self.decode(body, message_type)  # type: ignore[no-any-return]

    def _check_size(self, size: int) -> None:
        if size > self._max_bytes:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"message of {size} bytes exceeds the limit of {self._max_bytes}",
            )


async def _read(stream: H2Stream, size: int, what: str) -> bytes:
    try:
        return await read_exactly(stream, size)
    except EndOfStream:
        raise invalid_argument(InvalidArgument.of(REQUEST, f"ended inside {what}")) from None
