"""Operations: health follows the database, reflection describes the API, metrics are scraped,
every call carries a request id, oversize requests are refused, logs can be JSON lines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from prometheus_client.parser import text_string_to_metric_families

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentResponse,
)
from docservice.app import App
from tests.support.apps import running_app
from tests.support.backends import backend_settings
from tests.support.servers import PostgresServer, free_port

SERVICE = "document.DocumentService"


async def _status(channel: Channel, service: str) -> int:
    response = await HealthStub(channel).Check(HealthCheckRequest(service=service), timeout=5)
    return response.status


async def test_health_follows_the_database(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    postgres = PostgresServer()
    postgres.start()
    settings = backend_settings(
        "postgres", tmp_path, request, health_check_interval_seconds=0.1
    ).model_copy(update={"database_url": postgres.url})
    try:
        async with running_app(settings):
            channel = Channel("127.0.0.1", settings.grpc_port)
            try:
                for service in ("", SERVICE):
                    assert await _status(channel, service) == HealthCheckResponse.SERVING

                postgres.stop()
                assert await _wait_for_status(channel, HealthCheckResponse.NOT_SERVING)
                assert await _status(channel, SERVICE) == HealthCheckResponse.NOT_SERVING

                postgres.start()
                assert await _wait_for_status(channel, HealthCheckResponse.SERVING)
                assert await _status(channel, SERVICE) == HealthCheckResponse.SERVING
            finally:
                channel.close()
    finally:
        postgres.destroy()


async def _wait_for_status(channel: Channel, wanted: int) -> bool:
    for _ in range(200):  # the check runs every 0.1 s
        if await _status(channel, "") == wanted:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def app(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[App]:
    settings = backend_settings(
        "sqlite+redis",
        tmp_path,
        request,
        metrics_port=free_port(),
        max_message_bytes=64 * 1024,
    )
    async with running_app(settings) as app:
        yield app


# Run as its own process, like grpcurl would be: grpcio's reflection messages and grpclib's
# share names, so the two cannot be loaded into one process's default descriptor pool.
REFLECTION_CLIENT = """
import json, sys
import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
with grpc.insecure_channel(sys.argv[1]) as channel:
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName("document.DocumentService")
    document = pool.FindMessageTypeByName("document.Document")
    print(json.dumps([
        list(database.get_services()),
        [m.name for m in service.methods],
        [f.name for f in document.fields],
    ]))
"""


async def test_reflection_lists_and_describes_every_method(app: App) -> None:
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        REFLECTION_CLIENT,
        f"127.0.0.1:{app.settings.grpc_port}",
        stdout=subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(client.communicate(), 30)
    assert client.returncode == 0
    services, methods, fields = json.loads(stdout)
    assert SERVICE in services and "grpc.health.v1.Health" in services
    assert set(methods) == {
        "GetDocument",
        "CreateDocument",
        "UpdateDocument",
        "DeleteDocument",
        "RestoreDocument",
        "ListDocuments",
        "GetDocumentVersions",
        "GetDocumentVersion",
        "RevertDocument",
        "DiffDocumentVersions",
        "BlameDocument",
        "SearchDocuments",
        "ListDocumentEvents",
        "WatchDocuments",
    }
    assert fields[:11] == [
        "id",
        "title",
        "content",
        "status",
        "author",
        "tags",
        "category",
        "comments",
        "created_at",
        "updated_at",
        "is_deleted",
    ]
    assert {"version", "etag", "deleted_at"} <= set(fields)


async def test_metrics_are_exported(app: App) -> None:
    channel = Channel("127.0.0.1", app.settings.grpc_port)
    stub = DocumentServiceStub(channel)
    created = await stub.create_document(CreateDocumentRequest(title="m", author="a"))
    for _ in range(3):
        await stub.get_document(GetDocumentRequest(id=created.id))
    with pytest.raises(GRPCError):
        await stub.get_document(GetDocumentRequest(id=str(uuid.uuid4())))
    channel.close()

    url = f"http://127.0.0.1:{app.settings.metrics_port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("docservice_calls_total", (("code", "OK"), ("method", "GetDocument")))] == 3
    assert (
        samples[("docservice_calls_total", (("code", "NOT_FOUND"), ("method", "GetDocument")))] == 1
    )
    assert samples[("docservice_calls_total", (("code", "OK"), ("method", "CreateDocument")))] == 1
    count_key = (
        "docservice_call_duration_seconds_count",
        (("code", "OK"), ("method", "GetDocument")),
    )
    assert samples[count_key] == 3
    assert samples[("docservice_in_flight_calls", ())] == 0
    assert samples[("docservice_cache_events_total", (("event", "hits"),))] >= 2
    assert ("docservice_storage_events_total", (("event", "retry"),)) in samples


async def test_request_id_is_echoed_or_generated(app: App) -> None:
    channel = Channel("127.0.0.1", app.settings.grpc_port)
    missing = GetDocumentRequest(id=str(uuid.uuid4()))

    async def call(metadata: dict[str, str]) -> str:
        async with channel.request(
            "/document.DocumentService/GetDocument",
            Cardinality.UNARY_UNARY,
            GetDocumentRequest,
            GetDocumentResponse,
            metadata=metadata,
            timeout=5,
        ) as stream:
            await stream.send_message(missing, end=True)
            with pytest.raises(GRPCError):
                await stream.recv_message()
            assert stream.trailing_metadata is not None
            return str(stream.trailing_metadata["x-request-id"])

    assert await call({"x-request-id": "req-123"}) == "req-123"
    generated = await call({})
    assert len(generated) == 32 and generated != await call({})
    channel.close()


async def test_oversize_request_is_resource_exhausted_and_server_keeps_serving(app: App) -> None:
    channel = Channel("127.0.0.1", app.settings.grpc_port)
    stub = DocumentServiceStub(channel)
    with pytest.raises(GRPCError) as caught:
        await stub.create_document(
            CreateDocumentRequest(title="big", author="a", content="x" * (65 * 1024)), timeout=5
        )
    assert caught.value.status == Status.RESOURCE_EXHAUSTED
    created = await stub.create_document(CreateDocumentRequest(title="ok", author="a"))
    assert created.version == 1
    channel.close()


async def test_json_logs_carry_method_status_duration_and_request_id(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_"))},
        "GRPC_PORT": str(port),
        "LOG_FORMAT": "json",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "docservice", env=env, cwd=tmp_path, stderr=subprocess.PIPE
    )
    try:
        round_trip_ms = await _call_with_request_id(port, "trace-me")
        server.terminate()
        _, stderr = await asyncio.wait_for(server.communicate(), 20)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    call = next(entry for entry in lines if entry.get("method") == "GetDocument")
    assert call["status"] == "NOT_FOUND" and call["request_id"] == "trace-me"
    assert call["level"] == "INFO"
    # The server times its handler only, so it cannot take longer than the client waited.
    duration = call["duration_ms"]
    assert type(duration) is float and 0 < duration <= round_trip_ms, (duration, round_trip_ms)
    logged = re.fullmatch(r"GetDocument NOT_FOUND (\d+\.\d) ms", call["message"])
    assert logged is not None, call["message"]
    # The message rounds to 0.1 ms, the field to 0.001 ms: both round the same measurement.
    assert abs(float(logged[1]) - duration) <= 0.051, (call["message"], duration)


async def _call_with_request_id(port: int, request_id: str) -> float:
    """GetDocument of a missing id once the server listens; how long the client waited, in ms."""
    channel = Channel("127.0.0.1", port)
    stub = DocumentServiceStub(channel)
    try:
        for _ in range(300):  # wait for the server to listen
            started = time.perf_counter()
            try:
                await stub.get_document(
                    GetDocumentRequest(id=str(uuid.uuid4())), metadata={"x-request-id": request_id}
                )
            except GRPCError:
                return (time.perf_counter() - started) * 1000
            except OSError:
                await asyncio.sleep(0.05)
    finally:
        channel.close()
    raise AssertionError("the server never answered GetDocument")
