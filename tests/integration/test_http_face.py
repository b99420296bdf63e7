"""The HTTP face under its own settings: bearer tokens, CORS, the watcher cap, a body limit, a
store that is down, and the status mapping itself; and that it shares the gRPC face's metrics."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import jwt
import pytest
from google.rpc import error_details_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from pydantic import ValidationError

from docservice.app import App
from docservice.http.errors import HTTP_STATUS, error_response
from docservice.settings import Settings
from tests.support.apps import running_app
from tests.support.backends import backend_settings
from tests.support.http import server_sent_events, status_body, violations
from tests.support.processes import server_env, server_process, wait_serving
from tests.support.servers import free_port

SECRET = "s3cret-for-http-tests-0123456789abcdef"


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    async with running_app(settings) as app:
        assert app.http is not None
        base = f"http://127.0.0.1:{app.http.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield app, client


def bearer(scope: str, subject: str = "carol") -> dict[str, str]:
    claims = {"sub": subject, "scope": scope, "exp": int(time.time()) + 300}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def test_bearer_tokens_as_for_grpc(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    settings = backend_settings("sqlite", tmp_path, request, auth_jwt_secret=SECRET)
    async with serving(settings) as (_, http):
        anonymous = await http.get("/v1/documents")
        assert anonymous.status_code == 401 and status_body(anonymous)["code"] == 16
        assert anonymous.headers["www-authenticate"] == "Bearer"
        forged = await http.get("/v1/documents", headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 401
        body = {"title": "t", "author": "a"}
        reader = bearer("documents:read")
        refused = await http.post("/v1/documents", json=body, headers=reader)
        assert refused.status_code == 403 and status_body(refused)["code"] == 7
        assert (await http.get("/v1/documents", headers=reader)).status_code == 200

        writer = bearer("documents:read documents:write", subject="carol")
        # The actor is the token's subject; an x-actor header cannot claim to be someone else.
        created = await http.post("/v1/documents", json=body, headers={**writer, "x-actor": "eve"})
        assert created.status_code == 200, created.text
        versions = await http.get(f"/v1/documents/{created.json()['id']}/versions", headers=reader)
        assert versions.json()["versions"][0]["changedBy"] == "carol"
        assert (await http.get("/v1/events:watch")).status_code == 401
        # The console and the OpenAPI document are not the API: they stay open.
        assert (await http.get("/openapi.json")).status_code == 200
        console = await http.get("/")
        assert console.status_code == 200 and "<html" in console.text
        assert console.headers["cache-control"] == "no-cache"


async def test_cors_only_for_the_configured_origins(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    origin = "http://console.example.test"
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "if-match, content-type",
    }
    closed = backend_settings("sqlite", tmp_path / "closed", request)
    async with serving(closed) as (_, http):
        response = await http.get("/v1/documents", headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers
    (tmp_path / "open").mkdir()
    opened = backend_settings("sqlite", tmp_path / "open", request, cors_origins=[origin])
    async with serving(opened) as (_, http):
        allowed = await http.options("/v1/documents/x", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == origin
        assert "PATCH" in allowed.headers["access-control-allow-methods"]
        response = await http.get("/v1/documents", headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "etag" in exposed and "x-request-id" in exposed
        with_id = {**preflight, "Access-Control-Request-Headers": "x-request-id, x-actor"}
        assert (await http.options("/v1/documents/x", headers=with_id)).status_code == 200
        other = await http.get("/v1/documents", headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers


async def test_limits_answer_429_and_400(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    settings = backend_settings(
        "sqlite",
        tmp_path,
        request,
        max_watchers=0,
        max_message_bytes=48 * 1024,
        max_response_bytes=64 * 1024,
    )
    async with serving(settings) as (_, http):
        capped = await http.get("/v1/events:watch")
        assert capped.status_code == 429 and status_body(capped)["code"] == 8
        too_large = {"title": "t", "author": "a", "content": "x" * 64 * 1024}
        assert violations(await http.post("/v1/documents", json=too_large)) == ["body"]
        for _ in range(3):
            large = {"title": "t", "author": "a", "content": "x" * 30 * 1024}
            assert (await http.post("/v1/documents", json=large)).status_code == 200
        # A page asked for without a page size is never cut (a legacy client could not see
        # the token): over MAX_RESPONSE_BYTES it is refused. With a page size, a short page.
        whole = await http.get("/v1/documents")
        assert whole.status_code == 429 and status_body(whole)["code"] == 8
        paged = await http.get("/v1/documents", params={"pageSize": 3})
        assert paged.status_code == 200 and paged.json()["nextPageToken"]


async def test_a_store_that_is_down_is_503() -> None:
    nobody = f"127.0.0.1:{free_port()}"  # a port nothing listens on
    settings = Settings(
        db_type="postgres",
        database_url=f"postgresql+asyncpg://postgres@{nobody}/postgres",
        grpc_port=free_port(),
        migrate_on_start=False,
    )
    async with serving(settings) as (_, http):
        response = await http.get(f"/v1/documents/{uuid.uuid4()}")
        assert response.status_code == 503 and status_body(response)["code"] == 14


async def test_http_calls_count_in_the_same_metrics_with_request_ids(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = backend_settings("sqlite", tmp_path, request)
    async with serving(settings) as (app, http):
        before = _calls(app, "GetDocument", "NOT_FOUND")
        given = await http.get(f"/v1/documents/{uuid.uuid4()}", headers={"x-request-id": "r-1"})
        assert _calls(app, "GetDocument", "NOT_FOUND") == before + 1
        assert given.headers["x-request-id"] == "r-1"
        made = (await http.get("/v1/documents")).headers["x-request-id"]
        assert len(made) == 32 and made != (await http.get("/")).headers["x-request-id"]


def _calls(app: App, method: str, status: str) -> float:
    value = app.telemetry.registry.get_sample_value(
        "docservice_calls_total", {"method": method, "code": status}
    )
    return value or 0.0


@pytest.mark.parametrize("status", list(Status))
def test_every_grpc_status_maps_to_an_http_status(status: Status) -> None:
    if status is Status.OK:
        return
    response = error_response(GRPCError(status, "why"))
    assert response.status_code == HTTP_STATUS[status]
    assert 400 <= response.status_code < 600


def test_a_stale_etag_is_412_and_other_failed_preconditions_400() -> None:
    def failure(kind: str) -> GRPCError:
        violation = error_details_pb2.PreconditionFailure.Violation(type=kind, subject="s")
        details = error_details_pb2.PreconditionFailure(violations=[violation])
        return GRPCError(Status.FAILED_PRECONDITION, "stale", [details])

    assert error_response(failure("ETAG")).status_code == 412
    assert error_response(failure("RESUME_TOKEN")).status_code == 400


async def test_sigterm_ends_event_streams_with_where_to_resume(tmp_path: Path) -> None:
    """A server told to stop sends each open event stream a last heartbeat with its resume
    token and ends it; the process exits cleanly, and the token resumes on a new server."""
    grpc_port, http_port = free_port(), free_port()
    env = server_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'docservice.db'}",
        GRPC_PORT=str(grpc_port),
        HTTP_PORT=str(http_port),
    )
    base = f"http://127.0.0.1:{http_port}"
    with (tmp_path / "server.log").open("ab") as log:
        async with server_process(env, tmp_path, log) as process:
            await wait_serving(grpc_port, process)
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                async with asyncio.timeout(30):
                    async with http.stream("GET", "/v1/events:watch") as response:
                        events = server_sent_events(response)
                        await anext(events)
                        body = {"title": "t", "author": "a"}
                        assert (await http.post("/v1/documents", json=body)).status_code == 200
                        change = await anext(events)
                        process.send_signal(signal.SIGTERM)
                        rest = [event async for event in events]
            assert [e.event for e in rest] == ["heartbeat"]
            assert rest[0].id == change.id
            assert await asyncio.wait_for(process.wait(), 30) == 0
        async with server_process(env, tmp_path, log) as process:
            await wait_serving(grpc_port, process)
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                page = await http.get("/v1/events", params={"resumeToken": rest[0].id})
                assert page.status_code == 200 and page.json()["events"] == []


def test_the_two_faces_need_two_ports() -> None:
    with pytest.raises(ValidationError, match="HTTP_PORT must differ from GRPC_PORT"):
        Settings(grpc_port=50051, http_port=50051)
    assert Settings(grpc_port=50051, http_port=50051, http_enabled=False).http_port == 50051
