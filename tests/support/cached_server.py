"""A docservice app behind its own redis-server, which a test may kill, pause or spoil."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpclib.client import Channel

from docservice._proto.document import DocumentServiceStub
from docservice.app import App
from docservice.storage.cache.repository import CachedDocumentRepository
from tests.support.apps import running_app
from tests.support.backends import backend_settings
from tests.support.servers import RedisServer

__all__ = ["Env", "serve_with_own_redis"]


@dataclass
class Env:
    app: App
    redis: RedisServer
    stub: DocumentServiceStub

    @property
    def cache(self) -> CachedDocumentRepository:
        assert isinstance(self.app.repository, CachedDocumentRepository)
        return self.app.repository

    @property
    def prefix(self) -> str:
        return self.app.settings.cache_key_prefix


@asynccontextmanager
async def serve_with_own_redis(
    database: str, tmp_path: Path, request: pytest.FixtureRequest, breaker_cooldown: float
) -> AsyncIterator[Env]:
    """A server on `database` ("sqlite", "postgres") cached by a redis-server of its own."""
    redis = RedisServer()
    redis.start()
    try:
        settings = backend_settings(
            database,
            tmp_path,
            request,
            redis_url=redis.url,
            cache_key_prefix=f"{tmp_path.name}:",
            cache_breaker_cooldown_seconds=breaker_cooldown,
        )
        async with running_app(settings) as app:
            channel = Channel(settings.grpc_host, settings.grpc_port)
            try:
                yield Env(app, redis, DocumentServiceStub(channel))
            finally:
                channel.close()
    finally:
        redis.kill()
