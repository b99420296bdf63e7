"""A database that cannot be reached gives UNAVAILABLE promptly: never INTERNAL, never a hang."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    GetDocumentRequest,
    ListDocumentsRequest,
)
from docservice.settings import Settings
from tests.support.apps import running_app
from tests.support.servers import free_port


@pytest.fixture(scope="module", params=["postgres", "mongo"])
async def stub_without_database(
    request: pytest.FixtureRequest,
) -> AsyncIterator[DocumentServiceStub]:
    nobody = f"127.0.0.1:{free_port()}"  # a port nothing listens on
    settings = Settings(
        db_type=request.param,
        database_url=f"postgresql+asyncpg://postgres@{nobody}/postgres",
        mongo_url=f"mongodb://{nobody}",
        grpc_port=free_port(),
        migrate_on_start=False,
    )
    async with running_app(settings):
        channel = Channel("127.0.0.1", settings.grpc_port)
        try:
            yield DocumentServiceStub(channel)
        finally:
            channel.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda stub: stub.get_document(GetDocumentRequest(id=str(uuid.uuid4())), timeout=10),
        lambda stub: stub.create_document(CreateDocumentRequest(title="t", author="a"), timeout=10),
        lambda stub: stub.list_documents(ListDocumentsRequest(), timeout=10),
    ],
    ids=["get", "create", "list"],
)
async def test_unreachable_database_is_unavailable(
    stub_without_database: DocumentServiceStub, call: object
) -> None:
    with pytest.raises(GRPCError) as caught:
        await call(stub_without_database)  # type: ignore[operator]
    assert caught.value.status == Status.UNAVAILABLE
    assert "unavailable" in (caught.value.message or "")
