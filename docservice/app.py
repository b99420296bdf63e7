"""Wiring: settings -> repository (factory) -> service -> grpclib server, and its lifecycle."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from docservice.grpc_server import ClosingServer
from docservice.in_flight import InFlight
from docservice.repository import DocumentRepository
from docservice.service import DocumentService
from docservice.servicer import DocumentServicer
from docservice.settings import DbType, Settings

__all__ = ["App", "create_app", "make_repository", "serve"]

log = logging.getLogger(__name__)


def make_repository(settings: Settings) -> DocumentRepository:
    """The storage backend named by DB_TYPE, behind the Redis cache when REDIS_URL is set.

    Nothing connects until it is first used.
    """
    repository: DocumentRepository
    if settings.db_type in (DbType.SQLITE, DbType.POSTGRES):
        from docservice.sql_repository import SqlDocumentRepository, create_engine

        repository = SqlDocumentRepository(create_engine(settings.database_url))
    else:
        from docservice.mongo_repository import MongoDocumentRepository

        repository = MongoDocumentRepository(settings.mongo_url, settings.mongo_db)
    if not settings.redis_url:
        return repository
    from docservice.cache import CachedDocumentRepository, connect_redis
    from docservice.circuit_breaker import CircuitBreaker

    timeout = settings.cache_timeout_ms / 1000
    return CachedDocumentRepository(
        repository,
        connect_redis(settings.redis_url, timeout),
        prefix=settings.cache_key_prefix,
        ttl_seconds=settings.cache_ttl_seconds,
        timeout_seconds=timeout,
        breaker=CircuitBreaker(
            "the Redis cache",
            threshold=3,
            cooldown=settings.cache_breaker_cooldown_seconds,
            log=logging.getLogger("docservice.cache"),
        ),
    )


@dataclass
class App:
    settings: Settings
    repository: DocumentRepository
    server: ClosingServer
    in_flight: InFlight

    async def start(self) -> None:
        await self.server.start(self.settings.grpc_host, self.settings.grpc_port)
        log.info(
            "serving document.DocumentService on %s:%d (%s)",
            self.settings.grpc_host,
            self.settings.grpc_port,
            self.settings.db_type.value,
        )

    async def stop(self) -> None:
        """Refuse new calls, let running ones finish (bounded), then close everything."""
        grace = self.settings.shutdown_grace_seconds
        if not await self.in_flight.drain(grace):
            log.warning(
                "%d calls still running after %.1f s; cancelling", self.in_flight.count, grace
            )
        self.server.close()
        await self.server.wait_closed()
        await self.repository.close()


async def create_app(settings: Settings) -> App:
    """Build the app inside the running loop (grpclib binds its server to the current loop)."""
    repository = make_repository(settings)
    if settings.migrate_on_start:
        await repository.migrate()
    in_flight = InFlight()
    servicer = DocumentServicer(DocumentService(repository, settings), in_flight)
    return App(settings, repository, ClosingServer([servicer]), in_flight)


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully."""
    app = await create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    await stop.wait()
    log.info("shutting down")
    await app.stop()
