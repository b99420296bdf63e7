"""The HTTP face: the annotated routes, `/openapi.json`, Server-Sent Events and the console.

One Starlette app, served by uvicorn on the gRPC server's event loop; every route calls the
gRPC servicer's own method (`DocumentServicer.invoke`), so both faces share the rules,
validation, auth, errors, metrics and logs, with no gRPC hop between them.

Etags travel as headers too: a document in a response comes with `ETag`; `If-Match` on a write
is its etag (a stale one is 412); `If-None-Match` on a read of an unchanged document is 304.

WatchDocuments is `text/event-stream`: each message is one event whose `id` is the resume token
(so a browser's EventSource resumes with `Last-Event-ID` by itself), `event: heartbeat` for
heartbeats, no event name for changes, and the data its WatchDocumentsResponse as JSON. An error
before the first message (a bad token, too many watchers) is an ordinary error response.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import uvicorn
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docservice._proto.document import WatchDocumentsResponse
from docservice.core.errors import InvalidArgument
from docservice.core.validation import ACTOR_FIELD
from docservice.grpc.errors import invalid_argument
from docservice.grpc.servicer import DocumentServicer
from docservice.grpc.telemetry import REQUEST_ID_HEADER, adopt_request_id
from docservice.http import routes
from docservice.http.errors import error_response
from docservice.http.openapi import openapi
from docservice.http.transcode import Transcoder, to_json
from docservice.settings import Settings

__all__ = ["HttpServer", "create_http_app"]

log = logging.getLogger(__name__)
JSON = "application/json"
EXPOSED_HEADERS = ["ETag", REQUEST_ID_HEADER]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", ACTOR_FIELD]
ALLOWED_HEADERS += ["Last-Event-ID", REQUEST_ID_HEADER]
SSE_RETRY_MS = 1000

Endpoint = Callable[[Request], Awaitable[Response]]


def create_http_app(servicer: DocumentServicer, settings: Settings) -> Starlette:
    body_limit = settings.max_message_bytes
    table: list[BaseRoute] = []
    # A template with a custom verb first: `/v1/documents/{id}` would match `x:restore` too.
    for route in sorted(routes.routes(), key=lambda r: ":" not in r.template):
        transcoder = Transcoder(route)
        endpoint = (
            _watch(servicer, transcoder)
            if route.streaming
            else _unary(servicer, transcoder, body_limit)
        )
        table.append(Route(route.template, endpoint, methods=[route.http_method]))
    spec = openapi()
    table.append(Route("/openapi.json", lambda _: JSONResponse(spec), methods=["GET"]))
    console = resources.files("docservice.http") / "console"
    table.append(Mount("/", Console(directory=str(console), html=True), name="console"))
    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=ALLOWED_HEADERS,
                expose_headers=EXPOSED_HEADERS,
            )
        )
    middleware.append(Middleware(RequestIds))
    handlers = {404: _no_route, 405: _no_route}
    return Starlette(routes=table, middleware=middleware, exception_handlers=handlers)


class Console(StaticFiles):
    """The console's files, revalidated on every use (their ETag makes that cheap), so that a
    browser never runs modules of an older release beside newer ones."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


class RequestIds:
    """Each request's id, as for gRPC calls: the caller's `x-request-id` or a new one, in every
    log line of the request and returned as the `x-request-id` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = adopt_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        await self._app(scope, receive, send_with_id)


async def _no_route(request: Request, exc: Exception) -> Response:
    """A path (or method) no route serves: NOT_FOUND (UNIMPLEMENTED), as a Status too."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        method = f"{request.method} {request.url.path}"
        refused = error_response(GRPCError(Status.UNIMPLEMENTED, f"{method} is not served"), 405)
        allowed = {  # every route of the path, not only the first one Starlette found
            verb
            for route in request.app.routes
            if isinstance(route, Route) and route.matches(request.scope)[0] is Match.PARTIAL
            for verb in route.methods or ()
        }
        refused.headers["Allow"] = ", ".join(sorted(allowed)) or (exc.headers or {}).get(
            "Allow", "GET, HEAD"
        )
        return refused
    return error_response(GRPCError(Status.NOT_FOUND, f"no such path: {request.url.path}"))


def _unary(servicer: DocumentServicer, transcoder: Transcoder, body_limit: int) -> Endpoint:
    method = transcoder.route.method

    async def endpoint(request: Request) -> Response:
        headers = request.headers
        try:
            servicer.authenticate(method, headers.get("authorization"))
            body = await _body(request, body_limit)
            if body.strip() and not transcoder.route.body:
                raise _no_body(request.method)

            def decode() -> Any:
                return transcoder.request(
                    request.path_params,
                    request.query_params.multi_items(),
                    body,
                    headers.get("if-match"),
                )

            result = await servicer.invoke(method, decode, headers.get(ACTOR_FIELD, ""))
        except GRPCError as exc:
            return error_response(exc)
        answer = transcoder.answer(result)
        etag = answer.etag if transcoder.answers_document and answer.etag else None
        read = request.method in ("GET", "HEAD")
        if read and etag is not None and etag == headers.get("if-none-match"):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(to_json(answer), headers={"ETag": etag} if etag else None, media_type=JSON)

    return endpoint


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused (INVALID_ARGUMENT naming it) beyond MAX_MESSAGE_BYTES."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else 0
    chunks = []
    if size <= limit:  # a declared size above the limit is refused unread
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
        except ClientDisconnect:
            raise GRPCError(Status.CANCELLED, "the client left before its request ended") from None
    if size > limit:
        raise invalid_argument(InvalidArgument.of("body", f"must be at most {limit} bytes"))
    return b"".join(chunks)


def _no_body(method: str) -> GRPCError:
    """A body where the route takes none: refused, never ignored (a DELETE's etag in a body
    would otherwise be dropped, and the delete made unconditional)."""
    reason = f"{method} takes no body here: use If-Match and query parameters"
    return invalid_argument(InvalidArgument.of("body", reason))


def _watch(servicer: DocumentServicer, transcoder: Transcoder) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        query = request.query_params.multi_items()
        last_event_id = request.headers.get("last-event-id")
        if last_event_id:  # newer than a token in the URL: EventSource sends it on reconnect
            query = [(k, v) for k, v in query if k not in ("resume_token", "resumeToken")]
            query.append(("resume_token", last_event_id))
        try:
            servicer.authenticate("WatchDocuments", request.headers.get("authorization"))

            async def decode() -> Any:
                return transcoder.request(request.path_params, query, b"")

            stream = servicer.watch(decode)
            first = await anext(stream)  # errors (a bad token, the cap) before any byte is sent
        except GRPCError as exc:
            return error_response(exc)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(_events(first, stream), headers=headers, media_type=SSE)

    return endpoint


SSE = "text/event-stream"


async def _events(
    first: WatchDocumentsResponse, stream: AsyncIterator[WatchDocumentsResponse]
) -> AsyncIterator[bytes]:
    yield f"retry: {SSE_RETRY_MS}\n".encode() + _event(first)
    try:
        async for response in stream:
            yield _event(response)
    except GRPCError as exc:  # the stream cannot go on (the store went away): say so, end
        log.info("watch stream ended: %s", exc.message)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _event(response: WatchDocumentsResponse) -> bytes:
    kind = b"" if response.event is not None else b"event: heartbeat\n"
    return b"id: %s\n%sdata: %s\n\n" % (response.resume_token.encode(), kind, to_json(response))


class HttpServer:
    """uvicorn on the running loop, started and stopped with the app (no signal handlers of its
    own: the app's handle SIGTERM)."""

    def __init__(self, app: Starlette, settings: Settings, tls: ssl.SSLContext | None) -> None:
        self._settings = settings
        config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
        )
        config.load()
        if tls is not None:
            config.ssl = tls
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        settings = self._settings
        family = socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on such sockets, and a
        # response written as headers, then body would wait for the delayed ACK (40 ms).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if settings.workers != 1:  # several worker processes share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((settings.http_host, settings.http_port))
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        await self._server.startup(sockets=[sock])
        self._task = asyncio.create_task(self._server.main_loop())

    async def stop(self, grace_seconds: float) -> None:
        """Stop accepting, give requests in progress what is left of the grace (the app has
        drained them already), cancel the rest, close."""
        if self._task is None:
            return
        self._server.config.timeout_graceful_shutdown = math.ceil(grace_seconds)
        self._server.should_exit = True
        await self._task
        await self._server.shutdown()
