"""The pass-through pieces of the codec: pre-encoded responses are exact protobuf."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import Document, GetDocumentRequest, GetDocumentResponse
from docservice.grpc.codec import Encoded, LimitedCodec
from docservice.grpc.wire import message_field


@pytest.mark.parametrize("content_length", [0, 1, 100, 127, 128, 300, 16_384, 70_000, 2**21])
def test_message_field_matches_betterproto_encoding(content_length: int) -> None:
    document = Document(id="d", title="t", content="x" * content_length, version=3)
    expected = bytes(GetDocumentResponse(document=document))
    assert message_field(1, bytes(document)) == expected
    assert GetDocumentResponse.parse(message_field(1, bytes(document))).document == document


def test_codec_passes_encoded_bytes_through_and_limits_requests() -> None:
    codec = LimitedCodec(max_bytes=10)
    assert codec.encode(Encoded(b"\x01\x02"), GetDocumentResponse) == b"\x01\x02"
    request = GetDocumentRequest(id="abc")
    assert codec.decode(bytes(request), GetDocumentRequest) == request
    with pytest.raises(GRPCError) as caught:
        codec.decode(b"\x00" * 11, GetDocumentRequest)
    assert caught.value.status == Status.RESOURCE_EXHAUSTED
