"""The grpclib handler: unwraps requests, calls the service, wraps responses. No rules here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from grpclib.const import Handler
from grpclib.server import Stream

from docservice._proto.document import (
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DeleteDocumentResponse,
    Document,
    DocumentServiceBase,
    DocumentVersion,
    GetDocumentRequest,
    GetDocumentResponse,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    GetDocumentVersionsResponse,
    ListDocumentsRequest,
    ListDocumentsResponse,
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

GET_DOCUMENT = "/document.DocumentService/GetDocument"


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
        # GetDocument is served from bytes (see DocumentService.get_response_bytes), so its
        # handler takes the stream itself instead of returning a message.
        mapping = super().__mapping__()
        generated = mapping[GET_DOCUMENT]
        mapping[GET_DOCUMENT] = Handler(
            self._get_document,
            generated.cardinality,
            generated.request_type,
            generated.reply_type,
        )
        return mapping

    async def _get_document(self, stream: Stream[GetDocumentRequest, GetDocumentResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        with self._call("GetDocument"):
            data = await self._service.get_response_bytes(request.id)
        await stream.send_message(cast(GetDocumentResponse, Encoded(data)))  # see LimitedCodec

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

    async def list_documents(self, message: ListDocumentsRequest) -> ListDocumentsResponse:
        with self._call("ListDocuments"):
            return await self._service.list(message)

    async def get_document_versions(
        self, message: GetDocumentVersionsRequest
    ) -> GetDocumentVersionsResponse:
        with self._call("GetDocumentVersions"):
            return await self._service.versions(message)

    async def get_document_version(self, message: GetDocumentVersionRequest) -> DocumentVersion:
        with self._call("GetDocumentVersion"):
            return await self._service.version(message)

    async def revert_document(self, message: RevertDocumentRequest) -> Document:
        with self._call("RevertDocument"):
            return await self._service.revert(message)
