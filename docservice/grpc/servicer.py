"""The grpclib handler: unwraps requests, calls the service, wraps responses. No rules here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import Any

from grpclib.const import Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from docservice._proto.document import (
    BlameDocumentRequest,
    BlameDocumentResponse,
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DeleteDocumentResponse,
    DiffDocumentVersionsRequest,
    DiffDocumentVersionsResponse,
    Document,
    DocumentServiceBase,
    GetDocumentRequest,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentEventsRequest,
    ListDocumentEventsResponse,
    ListDocumentsRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    SearchDocumentsRequest,
    UpdateDocumentRequest,
    UpdateDocumentResponse,
    WatchDocumentsRequest,
    WatchDocumentsResponse,
)
from docservice.core.errors import InvalidArgument
from docservice.core.events import DocumentEvents
from docservice.core.model import parse_timestamp
from docservice.core.service import DocumentService
from docservice.core.validation import ACTOR_FIELD, check_actor
from docservice.grpc import compat, deadlines, wire
from docservice.grpc.auth import Authenticator, verified_subject
from docservice.grpc.codec import REQUEST, Encoded
from docservice.grpc.errors import grpc_status, invalid_argument
from docservice.grpc.in_flight import InFlight
from docservice.grpc.telemetry import CallRecord, Telemetry

__all__ = ["WRITE_METHODS", "DocumentServicer", "UnaryCall"]

SERVICE = "/document.DocumentService"
SERVICE_PATH = f"{SERVICE}/"
_NONE = nullcontext()
ONE_MESSAGE = "must be a single message in a unary call (more data followed it)"
WRITE_METHODS = frozenset(
    {"CreateDocument", "UpdateDocument", "DeleteDocument", "RestoreDocument", "RevertDocument"}
)


# A unary method: (request, actor) -> the response message, or its bytes (Encoded).
UnaryCall = Callable[[Any, str], Awaitable[Any]]


class DocumentServicer(DocumentServiceBase):
    """The gRPC face; `invoke`, `watch` and `authenticate` serve the HTTP face (docservice.http)
    the same calls with the same telemetry, in-flight count, auth and status mapping."""

    def __init__(
        self,
        service: DocumentService,
        events: DocumentEvents,
        in_flight: InFlight,
        telemetry: Telemetry,
        *,
        authenticator: Authenticator | None = None,
    ) -> None:
        self._service = service
        self._events = events
        self._authenticator = authenticator
        self._authenticated = authenticator is not None
        self._in_flight = in_flight
        self._telemetry = telemetry
        self.calls: Mapping[str, UnaryCall] = {
            "GetDocument": self._get_document,
            "CreateDocument": self._create_document,
            "UpdateDocument": self._update_document,
            "DeleteDocument": self._delete_document,
            "RestoreDocument": self._restore_document,
            "ListDocuments": self._list_documents,
            "GetDocumentVersions": self._get_document_versions,
            "GetDocumentVersion": self._get_document_version,
            "RevertDocument": self._revert_document,
            "DiffDocumentVersions": self._diff_document_versions,
            "BlameDocument": self._blame_document,
            "SearchDocuments": self._search_documents,
            "ListDocumentEvents": self._list_document_events,
        }

    def authenticate(self, method: str, authorization: str | None) -> None:
        """Raise UNAUTHENTICATED or PERMISSION_DENIED (counted) unless auth is off or the token
        lets `method` go ahead; sets the verified subject of the current task."""
        if self._authenticator is None:
            return
        try:
            self._authenticator.check(SERVICE_PATH + method, authorization)
        except GRPCError as exc:
            self._telemetry.rejected(method, exc.status)
            raise

    async def invoke(self, method: str, decode: Callable[[], Any], actor: str) -> Any:
        """One unary call of the request `decode()` makes (it may raise InvalidArgument): the
        response message, or its bytes (Encoded). `actor` is the unverified `x-actor` header,
        used for writes when auth is off."""
        with self._call(method):
            request = decode()
            call = self.calls[method]
            return await call(request, self._actor_of(actor) if method in WRITE_METHODS else "")

    async def watch(
        self, decode: Callable[[], Awaitable[WatchDocumentsRequest]]
    ) -> AsyncIterator[WatchDocumentsResponse]:
        """WatchDocuments' messages for the request `decode()` reads; the caller sends each
        before asking for the next. No deadline of ours (a watch lasts as long as its client
        wants it), and not counted in flight (it ends when the feed closes at shutdown)."""
        with self._telemetry.call("WatchDocuments"), grpc_status():
            async for response in self._events.watch(await decode()):
                yield response
                if response.event is not None:
                    lag = time.time() - parse_timestamp(response.event.timestamp).timestamp()
                    self._telemetry.delivered(lag)

    @contextmanager
    def _call(self, method: str) -> Iterator[CallRecord]:
        with self._telemetry.call(method) as record, self._in_flight.track(), grpc_status():
            yield record

    def __mapping__(self) -> dict[str, Handler]:
        # Every handler is ours: the generated ones receive the request before any of this
        # class's code runs, so a malformed one would go uncounted and unlogged, and a call
        # that ended without a request message would fail with UNKNOWN.
        handlers = {m: self._handler(m, call) for m, call in self.calls.items()}
        handlers["WatchDocuments"] = self._watch_documents
        mapping = super().__mapping__()
        assert mapping.keys() == {f"{SERVICE}/{m}" for m in handlers}, mapping.keys()
        for method, handle in handlers.items():
            generated = mapping[f"{SERVICE}/{method}"]
            mapping[f"{SERVICE}/{method}"] = Handler(
                handle, generated.cardinality, generated.request_type, generated.reply_type
            )
        return mapping

    async def _request(self, stream: Stream[Any, Any]) -> Any:
        request = await stream.recv_message()  # LimitedCodec checks it
        if request is None:
            raise GRPCError(Status.INVALID_ARGUMENT, "the call ended without a request message")
        if not await compat.request_ended(stream):
            raise invalid_argument(InvalidArgument.of(REQUEST, ONE_MESSAGE))
        return request

    def _handler(
        self, method: str, call: UnaryCall
    ) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        writes = method in WRITE_METHODS

        async def handle(stream: Stream[Any, Any]) -> None:
            # The log line and metric of the call cover sending the response too: they say
            # what the client saw.
            with self._call(method) as record:
                timeout = compat.taken_timeout()
                scope: AbstractAsyncContextManager[object] = _NONE
                if timeout is not None:
                    deadline = deadlines.parse(timeout.value, timeout.received_at)
                    record.deadline = deadline
                    if timeout.taken:  # grpclib does not enforce this one: enforce it here
                        scope = deadline.scope()
                async with scope:
                    request = await self._request(stream)
                    response = await call(request, self._actor(stream) if writes else "")
                    await stream.send_message(response)

        return handle

    # The read methods answer with bytes framed around stored or cached encoded documents
    # (grpc.wire), which LimitedCodec sends as they are. The write methods are also given the
    # actor, recorded in the version they make.

    async def _get_document(self, message: GetDocumentRequest, _: str) -> Encoded:
        return Encoded(wire.get_document_response(await self._service.get_encoded(message.id)))

    async def _list_documents(self, message: ListDocumentsRequest, _: str) -> Encoded:
        page = await self._service.list_documents(message)
        return Encoded(
            wire.list_documents_response(page.encoded, page.next_page_token, page.total_size)
        )

    async def _search_documents(self, message: SearchDocumentsRequest, _: str) -> Encoded:
        results = await self._service.search(message)
        return Encoded(wire.search_response(results.page.hits, results.next_page_token))

    async def _list_document_events(
        self, message: ListDocumentEventsRequest, _: str
    ) -> ListDocumentEventsResponse:
        return await self._events.list(message)

    async def _watch_documents(self, stream: Stream[Any, Any]) -> None:
        # Each message waits for the client's flow-control window: a slow consumer holds the
        # feed back at its own pace, never a queue.
        async for response in self.watch(lambda: self._request(stream)):
            await stream.send_message(response)

    async def _get_document_versions(self, message: GetDocumentVersionsRequest, _: str) -> Encoded:
        page = await self._service.versions(message)
        return Encoded(wire.versions_response(page.snapshots, page.next_page_token))

    async def _get_document_version(self, message: GetDocumentVersionRequest, _: str) -> Encoded:
        return Encoded(wire.document_version(await self._service.version(message)))

    async def _diff_document_versions(
        self, message: DiffDocumentVersionsRequest, _: str
    ) -> DiffDocumentVersionsResponse:
        return await self._service.diff(message)

    async def _blame_document(self, message: BlameDocumentRequest, _: str) -> BlameDocumentResponse:
        return await self._service.blame(message)

    async def _create_document(self, message: CreateDocumentRequest, actor: str) -> Document:
        return await self._service.create(message, actor)

    async def _update_document(
        self, message: UpdateDocumentRequest, actor: str
    ) -> UpdateDocumentResponse:
        return UpdateDocumentResponse(document=await self._service.update(message, actor))

    async def _delete_document(
        self, message: DeleteDocumentRequest, actor: str
    ) -> DeleteDocumentResponse:
        await self._service.delete(message, actor)
        return DeleteDocumentResponse(success=True)

    async def _restore_document(self, message: RestoreDocumentRequest, actor: str) -> Document:
        return await self._service.restore(message, actor)

    async def _revert_document(self, message: RevertDocumentRequest, actor: str) -> Document:
        return await self._service.revert(message, actor)

    def _actor(self, stream: Stream[Any, Any]) -> str:
        value = stream.metadata.get(ACTOR_FIELD, "") if stream.metadata else ""
        return self._actor_of(value if isinstance(value, str) else "")

    def _actor_of(self, header: str) -> str:
        """Who makes a write: the verified token subject when auth is on (clients cannot set
        it), otherwise the unverified `x-actor` header, or nobody."""
        if self._authenticated:
            return verified_subject()
        try:
            return check_actor(header)
        except InvalidArgument as exc:
            raise invalid_argument(exc) from None
