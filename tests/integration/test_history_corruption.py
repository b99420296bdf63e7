"""Bad history data on every backend: a damaged delta, a wrong checksum or a missing base is
detected and answered INTERNAL (the cause logged) for the versions that depend on it only, never
with a wrong text."""

from __future__ import annotations

import logging

import pytest
from grpclib.const import Status

from docservice._proto.document import (
    DocumentServiceStub,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    UpdateDocumentRequest,
)
from docservice.app import App
from docservice.storage.history import ContentKind, CorruptHistory
from tests.support.contract import create, expect_status
from tests.support.history import damage, delete_row, stored_rows

TEXT = "".join(f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(200))


async def _document_with_deltas(stub: DocumentServiceStub) -> tuple[str, list[str]]:
    """A document whose versions 2..5 are deltas, each one edit further; its contents."""
    contents = [TEXT]
    document = await create(stub, content=TEXT)
    for n in range(2, 6):
        contents.append(contents[-1].replace(f"line {n * 10}:", f"LINE {n * 10}!"))
        await stub.update_document(UpdateDocumentRequest(id=document.id, content=contents[-1]))
    return document.id, contents


def _logged_cause(caplog: pytest.LogCaptureFixture, document_id: str) -> str:
    for record in caplog.records:
        if record.exc_info and isinstance(record.exc_info[1], CorruptHistory):
            message = str(record.exc_info[1])
            if document_id in message:
                return message
    raise AssertionError("no CorruptHistory logged")


async def _version(stub: DocumentServiceStub, document_id: str, number: int) -> str:
    got = await stub.get_document_version(GetDocumentVersionRequest(id=document_id, version=number))
    return got.document.content


@pytest.mark.parametrize("harm", ["payload", "checksum", "base"])
async def test_bad_data_is_internal_for_the_versions_that_need_it(
    app: App, stub: DocumentServiceStub, caplog: pytest.LogCaptureFixture, harm: str
) -> None:
    document_id, contents = await _document_with_deltas(stub)
    rows = await stored_rows(app, document_id)
    assert [r.content_kind for r in rows[1:]] == [ContentKind.DELTA] * 4
    if harm == "payload":
        await damage(app, document_id, 3, content_payload=b"\x07\x07\x01garbage")
    elif harm == "checksum":
        await damage(app, document_id, 3, content_checksum=12345)
    else:
        await delete_row(app, document_id, 2)  # the base of version 3's delta

    caplog.set_level(logging.ERROR)
    error = await expect_status(
        stub.get_document_version(GetDocumentVersionRequest(id=document_id, version=3)),
        Status.INTERNAL,
    )
    assert error.message == "internal error"  # the cause goes to the log only
    cause = _logged_cause(caplog, document_id)
    assert "version 3" in cause
    # A page that would include it fails too; what does not depend on it still reads.
    await expect_status(
        stub.get_document_versions(GetDocumentVersionsRequest(id=document_id, page_size=10)),
        Status.INTERNAL,
    )
    assert await _version(stub, document_id, 1) == contents[0]
    if harm != "base":
        assert await _version(stub, document_id, 2) == contents[1]
    if harm == "checksum":  # a later delta rebuilds version 3's bytes, and checks its own sum
        assert await _version(stub, document_id, 4) == contents[3]
    else:
        await expect_status(
            stub.get_document_version(GetDocumentVersionRequest(id=document_id, version=4)),
            Status.INTERNAL,
        )
