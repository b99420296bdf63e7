"""Wiring: settings -> repository (factory) -> service -> the gRPC and HTTP servers, and their
lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import ssl
from dataclasses import dataclass

from docservice.core.events import DocumentEvents
from docservice.core.feed import Feed, Watchers
from docservice.core.page_tokens import PageTokens
from docservice.core.repository import DocumentRepository
from docservice.core.service import DocumentService
from docservice.grpc import deadlines
from docservice.grpc.auth import Authenticator
from docservice.grpc.codec import LimitedCodec
from docservice.grpc.compat import (
    accept_header_lists_up_to,
    install_receive_hook,
    install_request_hook,
    keepalive_config,
)
from docservice.grpc.health import DatabaseWatch, reflection_services
from docservice.grpc.in_flight import InFlight
from docservice.grpc.server import ClosingServer
from docservice.grpc.servicer import SERVICE_PATH, DocumentServicer
from docservice.grpc.telemetry import Telemetry
from docservice.http.server import HttpServer
from docservice.settings import DbType, Settings

__all__ = ["App", "create_app", "make_repository", "serve"]

log = logging.getLogger(__name__)

# Request metadata (headers, a bearer token among them) above this is RESOURCE_EXHAUSTED; h2
# decodes up to the hard limit, beyond which it drops the connection.
MAX_METADATA_BYTES = 16 * 1024
HEADER_LIST_HARD_LIMIT = 1024 * 1024


def make_repository(settings: Settings) -> DocumentRepository:
    """The storage backend named by DB_TYPE, behind the Redis cache when REDIS_URL is set.

    Nothing connects until it is first used.
    """
    from docservice.storage.history import HistoryPolicy

    repository: DocumentRepository
    sql = settings.db_type in (DbType.SQLITE, DbType.POSTGRES)
    chain = settings.history_max_chain
    history = HistoryPolicy(max_chain=chain if chain is not None else (32 if sql else 16))
    if sql:
        from docservice.storage.sql.repository import SqlDocumentRepository, create_engine

        repository = SqlDocumentRepository(
            create_engine(settings.database_url), history, settings.search_language
        )
    else:
        from docservice.storage.mongo.repository import MongoDocumentRepository

        repository = MongoDocumentRepository(
            settings.mongo_url,
            settings.mongo_db,
            history,
            settings.search_language,
            settings.mongo_timeout_ms,
        )
    if not settings.redis_url:
        return repository
    from docservice.storage.cache.breaker import CircuitBreaker
    from docservice.storage.cache.repository import CachedDocumentRepository, connect_redis

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
            log=logging.getLogger("docservice.storage.cache.repository"),
        ),
    )


def server_ssl_context(settings: Settings, alpn: str = "h2") -> ssl.SSLContext | None:
    """TLS for a server when TLS_CERT_FILE/TLS_KEY_FILE are set; client certificates are
    required when TLS_CLIENT_CA_FILE is set too."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.tls_client_ca_file is not None:
        context.load_verify_locations(settings.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols([alpn])
    return context


@dataclass
class App:
    settings: Settings
    repository: DocumentRepository
    server: ClosingServer
    in_flight: InFlight
    telemetry: Telemetry
    watch: DatabaseWatch
    feed: Feed
    http: HttpServer | None = None

    async def start(self) -> None:
        settings = self.settings
        await self.watch.check()  # know the health status before the first call
        self.watch.start()
        await self.feed.start()
        if settings.metrics_port is not None:
            self.telemetry.serve_metrics(settings.metrics_host, settings.metrics_port)
        await self.server.start(
            settings.grpc_host,
            settings.grpc_port,
            ssl=server_ssl_context(settings),
            reuse_port=settings.workers != 1,  # several worker processes share the port
        )
        if self.http is not None:
            await self.http.start()
            log.info(
                "serving HTTP/JSON and the console on %s:%d", settings.http_host, self.http.port
            )
        log.info(
            "serving document.DocumentService on %s:%d (%s%s%s%s)",
            settings.grpc_host,
            settings.grpc_port,
            settings.db_type.value,
            " + redis" if settings.redis_url else "",
            ", tls" if settings.tls_cert_file else "",
            ", jwt auth" if settings.auth_enabled else "",
        )

    async def stop(self) -> None:
        """Refuse new calls, let running ones finish (bounded), then close everything."""
        grace = self.settings.shutdown_grace_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.feed.close()  # watch streams end, telling their clients where to resume
        if not await self.in_flight.drain(grace):  # both faces' calls
            log.warning(
                "%d calls still running after %.1f s; cancelling", self.in_flight.count, grace
            )
        self.server.close()
        if self.http is not None:
            await self.http.stop(max(0.0, deadline - loop.time()))
        await self.server.wait_closed()
        await self.watch.stop()
        await self.feed.wait_closed()
        self.telemetry.close()
        await self.repository.close()


async def create_app(settings: Settings) -> App:
    """Build the app inside the running loop (grpclib binds its server to the current loop)."""
    install_receive_hook()
    repository = make_repository(settings)
    if settings.migrate_on_start:
        await repository.migrate()
    in_flight = InFlight()
    stats = getattr(repository, "stats", None)
    telemetry = Telemetry(
        lambda: in_flight.count,
        cache_stats=(lambda: dataclasses.asdict(stats)) if stats is not None else None,
    )
    feed = Feed(repository, settings.feed_poll_seconds)
    watchers = Watchers(settings.max_watchers)
    telemetry.watching(lambda: watchers.count)
    secret = settings.page_token_secret
    events = DocumentEvents(
        repository,
        feed,
        PageTokens(secret.get_secret_value().encode() if secret is not None else None),
        watchers,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
        heartbeat_seconds=settings.watch_heartbeat_seconds,
    )
    authenticator = Authenticator(settings) if settings.auth_enabled else None
    servicer = DocumentServicer(
        DocumentService(repository, settings, on_write=feed.nudge),
        events,
        in_flight,
        telemetry,
        authenticator=authenticator,
    )
    watch = DatabaseWatch(repository, settings.health_check_interval_seconds)
    services = [servicer, watch.health_service(servicer)]
    server = ClosingServer(
        [*services, *reflection_services(services)],
        codec=LimitedCodec(settings.max_message_bytes),
        # Pings keep idle connections open through load balancers and find dead peers.
        config=keepalive_config(settings.keepalive_seconds, timeout=20.0),
    )
    telemetry.attach(server)
    install_request_hook(
        SERVICE_PATH,
        max_metadata_bytes=MAX_METADATA_BYTES,
        on_refused=telemetry.rejected,
        grpclib_enforces=deadlines.grpclib_enforces,
    )
    accept_header_lists_up_to(server, HEADER_LIST_HARD_LIMIT)
    if authenticator is not None:
        authenticator.attach(server, on_reject=telemetry.rejected)
    http = None
    if settings.http_enabled:
        from docservice.http.server import create_http_app

        http = HttpServer(
            create_http_app(servicer, settings), settings, server_ssl_context(settings, "http/1.1")
        )
    return App(settings, repository, server, in_flight, telemetry, watch, feed, http)


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
