"""Test harness: real PostgreSQL and Redis, real grpclib servers on loopback, one per backend.

Backends are started once per session; tests isolate themselves with fresh random data
(unique authors/categories/tags) rather than by truncating tables. Which server binaries the
session uses is printed after collection; one that cannot be found or started ends the session
with one line (tests/support/servers.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator

import pytest
from google.rpc import error_details_pb2  # noqa: F401  (registers BadRequest for detail decoding)
from grpclib.client import Channel

from docservice._proto.document import DocumentServiceStub
from docservice.app import App
from tests.support.apps import running_app
from tests.support.backends import BACKENDS, backend_settings
from tests.support.servers import (
    FINDERS,
    MongoServer,
    PostgresServer,
    RedisServer,
    ServerUnavailable,
)

# tests/e2e drives a browser and needs the e2e extra: only `make e2e` (which sets
# DOCSERVICE_E2E=1) collects it, so that `make test` stays pure Python.
collect_ignore = [] if os.environ.get("DOCSERVICE_E2E") == "1" else ["e2e"]

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
    """TEST_MONGO_URL if set, else `mongod` from PATH, else nx-27017 (tests/support/servers.py)."""
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


@pytest.fixture(scope="session", params=BACKENDS)
async def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[App]:
    settings = backend_settings(
        request.param, tmp_path_factory.mktemp(request.param.replace("+", "-")), request
    )
    async with running_app(settings) as app:
        yield app


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
