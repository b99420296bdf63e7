"""The grpclib handler: unwraps requests, calls the service, wraps responses. No rules here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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

    async def get_document(self, message: GetDocumentRequest) -> GetDocumentResponse:
        with self._call("GetDocument"):
            return GetDocumentResponse(document=await self._service.get(message.id))

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
