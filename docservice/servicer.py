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

__all__ = ["DocumentServicer"]


class DocumentServicer(DocumentServiceBase):
    def __init__(self, service: DocumentService, in_flight: InFlight) -> None:
        self._service = service
        self._in_flight = in_flight

    @contextmanager
    def _call(self) -> Iterator[None]:
        with self._in_flight.track(), grpc_status():
            yield

    async def get_document(self, message: GetDocumentRequest) -> GetDocumentResponse:
        with self._call():
            return GetDocumentResponse(document=await self._service.get(message.id))

    async def create_document(self, message: CreateDocumentRequest) -> Document:
        with self._call():
            return await self._service.create(message)

    async def update_document(self, message: UpdateDocumentRequest) -> UpdateDocumentResponse:
        with self._call():
            return UpdateDocumentResponse(document=await self._service.update(message))

    async def delete_document(self, message: DeleteDocumentRequest) -> DeleteDocumentResponse:
        with self._call():
            await self._service.delete(message.id, message.etag)
            return DeleteDocumentResponse(success=True)

    async def restore_document(self, message: RestoreDocumentRequest) -> Document:
        with self._call():
            return await self._service.restore(message.id, message.etag)

    async def list_documents(self, message: ListDocumentsRequest) -> ListDocumentsResponse:
        with self._call():
            return await self._service.list(message)

    async def get_document_versions(
        self, message: GetDocumentVersionsRequest
    ) -> GetDocumentVersionsResponse:
        with self._call():
            return await self._service.versions(message)

    async def get_document_version(self, message: GetDocumentVersionRequest) -> DocumentVersion:
        with self._call():
            return await self._service.version(message)

    async def revert_document(self, message: RevertDocumentRequest) -> Document:
        with self._call():
            return await self._service.revert(message)
