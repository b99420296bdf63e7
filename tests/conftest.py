"""Test harness: real PostgreSQL and Redis, real grpclib servers on loopback, one per backend.

Backends are started once per session; tests isolate themselves with fresh random data
(unique authors/categories/tags) rather than by truncating tables.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from google.rpc import error_details_pb2  # noqa: F401  (registers BadRequest for detail decoding)
from grpclib.client import Channel

from docservice._proto.document import DocumentServiceStub
from docservice.app import App
from tests.support.apps import running_app
from tests.support.backends import BACKENDS, backend_settings
from tests.support.servers import MongoServer, PostgresServer, RedisServer


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
    print(f"\nMongo tests run against {server.kind} at {server.url}")
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
