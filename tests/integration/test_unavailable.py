"""A database that cannot be reached gives UNAVAILABLE promptly: never INTERNAL, never a hang."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

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

POSTGRES_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@contextlib.contextmanager
def resetting_listener(*, reset: bool = True) -> Iterator[str]:
    """A loopback port that resets each connection (RST) once the client has sent its startup
    message, as a database does in the moment it goes down: the driver fails while it is still
    opening the connection, after the TLS negotiation."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                with contextlib.suppress(OSError):
                    if connection.recv(1024) == POSTGRES_SSL_REQUEST:
                        connection.sendall(b"N")  # no TLS here: go on in plain text
                        connection.recv(1024)  # the startup message
                if reset:  # RST; otherwise an orderly close (FIN), as a server that exits
                    linger = struct.pack("ii", 1, 0)
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture(
    scope="module",
    params=[
        ("postgres", "refused"),
        ("postgres", "reset"),
        ("postgres", "closed"),
        ("mongo", "refused"),
        ("mongo", "reset"),
    ],
    ids=lambda param: "-".join(param),
)
async def stub_without_database(
    request: pytest.FixtureRequest,
) -> AsyncIterator[DocumentServiceStub]:
    backend, fault = request.param
    with contextlib.ExitStack() as stack:
        if fault in ("reset", "closed"):
            nobody = stack.enter_context(resetting_listener(reset=fault == "reset"))
        else:
            nobody = f"127.0.0.1:{free_port()}"  # a port nothing listens on
        async with _app_on(backend, nobody) as stub:
            yield stub


@contextlib.asynccontextmanager
async def _app_on(backend: str, nobody: str) -> AsyncIterator[DocumentServiceStub]:
    settings = Settings(
        db_type=backend,
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
