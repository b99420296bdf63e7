"""The grpclib handler: unwraps requests, calls the service, wraps responses. No rules here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from grpclib.const import Handler
from grpclib.server import Stream

from docservice._proto.document import (
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DeleteDocumentResponse,
    Document,
    DocumentServiceBase,
    DocumentVersion,
    GetDocumentVersionRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    UpdateDocumentRequest,
    UpdateDocumentResponse,
)
from docservice.codec import Encoded
from docservice.grpc_errors import grpc_status
from docservice.in_flight import InFlight
from docservice.service import DocumentService
from docservice.telemetry import Telemetry

__all__ = ["DocumentServicer"]


class DocumentServicer(DocumentServiceBase):
    def __init__(self, service: DocumentService, in_flight: InFlight, telemetry: Telemetry) -> None:
        self._service = service
        self._in_flight = in_flight
        self._telemetry = telemetry

    @contextmanager
    def _call(self, method: str) -> Iterator[None]:
        with self._telemetry.call(method), self._in_flight.track(), grpc_status():
            yield

    def __mapping__(self) -> dict[str, Handler]:
        # The read methods answer with bytes assembled from stored or cached
        # wire-form documents (see DocumentService), so their handlers take the stream itself.
        mapping = super().__mapping__()
        encoded = {
            "GetDocument": lambda request: self._service.get_response_bytes(request.id),
            "ListDocuments": self._service.list_response_bytes,
            "GetDocumentVersions": self._service.versions_response_bytes,
        }
        for method, produce in encoded.items():
            generated = mapping[f"/document.DocumentService/{method}"]
            mapping[f"/document.DocumentService/{method}"] = Handler(
                self._encoded_handler(method, produce),
                generated.cardinality,
                generated.request_type,
                generated.reply_type,
            )
        return mapping

    def _encoded_handler(
        self, method: str, produce: Callable[[Any], Awaitable[bytes]]
    ) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        async def handle(stream: Stream[Any, Any]) -> None:
            request = await stream.recv_message()
            assert request is not None
            with self._call(method):
                data = await produce(request)
            await stream.send_message(Encoded(data))  # LimitedCodec sends it as it is

        return handle

    async def create_document(self, message: CreateDocumentRequest) -> Document:
        with self._call("CreateDocument"):
            return await self._service.create(message)

    async def update_document(self, message: UpdateDocumentRequest) -> UpdateDocumentResponse:
        with self._call("UpdateDocument"):
            return UpdateDocumentResponse(document=await self._service.update(message))

    async def delete_document(self, message: DeleteDocumentRequest) -> DeleteDocumentResponse:
        with self._call("DeleteDocument"):
            await self._service.delete(message.id, message.etag)
            return DeleteDocumentResponse(success=True)

    async def restore_document(self, message: RestoreDocumentRequest) -> Document:
        with self._call("RestoreDocument"):
            return await self._service.restore(message.id, message.etag)

    async def get_document_version(self, message: GetDocumentVersionRequest) -> DocumentVersion:
        with self._call("GetDocumentVersion"):
            return await self._service.version(message)

    async def revert_document(self, message: RevertDocumentRequest) -> Document:
        with self._call("RevertDocument"):
            return await self._service.revert(message)
