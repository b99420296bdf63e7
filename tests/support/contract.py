"""Small helpers for calls through the public API, shared by the contract tests and others."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import pytest
from google.rpc import error_details_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import CreateDocumentRequest, Document, DocumentServiceStub


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create(stub: DocumentServiceStub, **fields: Any) -> Document:
    fields.setdefault("title", unique("title"))
    fields.setdefault("author", unique("author"))
    return await stub.create_document(CreateDocumentRequest(**fields))


async def expect_status(call: Awaitable[object], status: Status) -> GRPCError:
    """Await `call`, assert it fails with `status`, return the error for more checks."""
    with pytest.raises(GRPCError) as caught:
        await call
    assert caught.value.status == status, caught.value.message
    return caught.value


def violated_fields(error: GRPCError) -> list[str]:
    """The field names of the google.rpc.BadRequest detail attached to an INVALID_ARGUMENT."""
    fields: list[str] = []
    for detail in error.details or []:
        assert isinstance(detail, error_details_pb2.BadRequest), detail
        fields.extend(v.field for v in detail.field_violations)
    return fields
