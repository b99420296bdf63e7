"""Test harness: real PostgreSQL and Redis, real grpclib servers on loopback, one per backend.

Backends are started once per session; tests isolate themselves with fresh random data
(unique authors/categories/tags) rather than by truncating tables. Which server binaries the
session uses is printed after collection; one that cannot be found or started ends the session
with one line (tests/servers.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from google.rpc import error_details_pb2  # noqa: F401  (registers BadRequest for detail decoding)
from grpclib.client import Channel

from docservice._proto.document import DocumentServiceStub
from docservice.app import App, create_app
from docservice.settings import Settings
from tests.servers import (
    FINDERS,
    MongoServer,
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    free_port,
)

# Every contract test runs against each of these; "+redis" puts the Redis cache in front.
BACKENDS = ["sqlite", "postgres", "mongo", "sqlite+redis", "postgres+redis"]

# An existing server for the session fixtures; tests that stop or pause a server start their own.
SERVER_URLS = {
    "postgres": "TEST_POSTGRES_URL",
    "redis": "TEST_REDIS_URL",
    "mongo": "TEST_MONGO_URL",
}


def pytest_report_collectionfinish() -> list[str]:
    """One line per server (shown with -q too, unlike pytest_report_header)."""
    lines = []
    for backend, variable in SERVER_URLS.items():
        try:
            local = FINDERS[backend]().describe()
        except ServerUnavailable as error:
            local = f"UNAVAILABLE, {error.problem}"
        if os.environ.get(variable):
            local = f"{variable}; servers of its own for fault tests: {local}"
        lines.append(f"test server {backend}: {local}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A server that cannot start ends the session with its one line, not an error per test."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(ServerUnavailable):
        pytest.exit(str(call.excinfo.value), returncode=pytest.ExitCode.TESTS_FAILED)
    return report


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """TEST_POSTGRES_URL if set, else a throwaway server started for this session."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        yield url
        return
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    """TEST_MONGO_URL if set, else `mongod` from PATH, else nx-27017 (see tests/servers.py)."""
    url = os.environ.get("TEST_MONGO_URL")
    if url:
        yield url
        return
    server = MongoServer()
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server process for this session (tests may kill, pause and restart it)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """TEST_REDIS_URL if set, else the session's redis_server."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        return url
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def backend_settings(
    backend: str, tmp: Path, request: pytest.FixtureRequest, **extra: object
) -> Settings:
    """Settings for a backend name such as "postgres" or "sqlite+redis"."""
    backend, _, cache = backend.partition("+")
    if cache:
        redis_url = request.getfixturevalue("redis_url")
        extra = {"redis_url": redis_url, "cache_key_prefix": f"{tmp.name}:", **extra}
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'docservice.db'}"
    elif backend == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif backend == "mongo":
        url = ""
        extra = {"mongo_url": request.getfixturevalue("mongo_url"), "mongo_db": tmp.name, **extra}
    else:
        raise ValueError(backend)
    values: dict[str, object] = {
        "db_type": backend,
        "database_url": url,
        "grpc_port": free_port(),
        "shutdown_grace_seconds": 2.0,
        **extra,
    }
    return Settings.model_validate(values)


@pytest.fixture(scope="session", params=BACKENDS)
async def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[App]:
    settings = backend_settings(
        request.param, tmp_path_factory.mktemp(request.param.replace("+", "-")), request
    )
    app = await create_app(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture(scope="session")
async def channel(app: App) -> AsyncIterator[Channel]:
    channel = Channel(app.settings.grpc_host, app.settings.grpc_port)
    try:
        yield channel
    finally:
        channel.close()


@pytest.fixture
def stub(channel: Channel) -> DocumentServiceStub:
    return DocumentServiceStub(channel)
