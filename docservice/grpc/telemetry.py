"""Logs and metrics: one log line and one metrics sample per call, tagged with its request id.

The request id comes from the caller's `x-request-id` metadata or is generated; it is kept in a
context variable for the call's task, added to every log record, and sent back in the response
metadata. Metrics use prometheus-client with a registry of their own per app; the cache and
storage counters are read at scrape time, so the hot path only counts calls.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from grpclib.const import Status
from grpclib.events import RecvRequest, SendInitialMetadata, SendTrailingMetadata, listen
from grpclib.server import Server
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from docservice.storage import retries

__all__ = ["REQUEST_ID_HEADER", "CallRecord", "Telemetry", "adopt_request_id", "configure_logging"]

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("docservice.calls")


def adopt_request_id(given: object) -> str:
    """The current call's request id, kept for its log lines: `given` (the caller's) when it is
    a usable one, else a new one."""
    usable = isinstance(given, str) and 0 < len(given) <= MAX_REQUEST_ID_LENGTH
    request_id = given if usable and isinstance(given, str) else os.urandom(16).hex()
    _request_id.set(request_id)
    return request_id


class _Deadline(Protocol):
    def expired(self) -> bool: ...


@dataclass(slots=True)
class CallRecord:
    """What a call's handler tells its log line: the deadline, once known."""

    deadline: _Deadline | None = None


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any extras."""

    _standard = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in self._standard)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin otherwise


class _StatsCollector(Collector):
    """Reads counters kept elsewhere (cache, storage retries) when Prometheus scrapes."""

    def __init__(self, cache_stats: Callable[[], dict[str, int]] | None) -> None:
        self._cache_stats = cache_stats

    def collect(self) -> Iterable[CounterMetricFamily]:
        storage = CounterMetricFamily(
            "docservice_storage_events",
            "Storage faults: retries and calls given up",
            labels=["event"],
        )
        storage.add_metric(["retry"], retries.stats.retries)
        storage.add_metric(["unavailable"], retries.stats.unavailable)
        yield storage
        if self._cache_stats is not None:
            cache = CounterMetricFamily(
                "docservice_cache_events", "Cache lookups by outcome", labels=["event"]
            )
            for event, value in self._cache_stats().items():
                cache.add_metric([event], value)
            yield cache


class Telemetry:
    def __init__(
        self,
        in_flight: Callable[[], int],
        cache_stats: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._calls = Counter(
            "docservice_calls",
            "Calls by method and status",
            ["method", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "docservice_call_duration_seconds",
            "Call latency by method and status",
            ["method", "code"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        Gauge(
            "docservice_in_flight_calls", "Calls being served", registry=self.registry
        ).set_function(in_flight)
        self.registry.register(_StatsCollector(cache_stats))
        self._by_call: dict[tuple[str, Status], tuple[Any, Any]] = {}
        self._http: Any = None
        self._watchers = Gauge(
            "docservice_open_watchers", "WatchDocuments streams open", registry=self.registry
        )
        self._delivered = Counter(
            "docservice_events_delivered",
            "Change feed events sent to watchers",
            registry=self.registry,
        )
        self._lag = Histogram(
            "docservice_event_delivery_lag_seconds",
            "From an event's write to its delivery to a watcher",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600),
        )

    def watching(self, watchers: Callable[[], int]) -> None:
        self._watchers.set_function(watchers)

    def delivered(self, lag_seconds: float) -> None:
        self._delivered.inc()
        self._lag.observe(max(0.0, lag_seconds))

    def serve_metrics(self, host: str, port: int) -> None:
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def attach(self, server: Server) -> None:
        """Take the request id from each call's metadata and return it with the response."""

        async def on_request(event: RecvRequest) -> None:
            adopt_request_id(event.metadata.get(REQUEST_ID_HEADER))

        async def on_metadata(event: SendInitialMetadata | SendTrailingMetadata) -> None:
            event.metadata[REQUEST_ID_HEADER] = _request_id.get()

        listen(server, RecvRequest, on_request)
        listen(server, SendInitialMetadata, on_metadata)
        listen(server, SendTrailingMetadata, on_metadata)

    @contextmanager
    def call(self, method: str) -> Iterator[CallRecord]:
        """Log and count one call of `method`, whatever way it ends, with the status its client
        saw: a call cut off (its stream reset, its task cancelled) is DEADLINE_EXCEEDED once its
        deadline has passed, CANCELLED otherwise."""
        started = time.perf_counter()
        status = Status.OK
        record = CallRecord()
        try:
            yield record
        except BaseException as exc:
            status = getattr(exc, "status", None) or (
                Status.DEADLINE_EXCEEDED
                if record.deadline is not None and record.deadline.expired()
                else Status.CANCELLED
            )
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.finished(method, status, elapsed)

    def rejected(self, method: str, status: Status) -> None:
        """A call refused before it started (authentication)."""
        self.finished(method, status, 0.0)

    def finished(self, method: str, status: Status, elapsed: float) -> None:
        metrics = self._by_call.get((method, status))
        if metrics is None:  # labels() looks the children up under a lock: once per pair
            metrics = self._by_call[method, status] = (
                self._calls.labels(method, status.name),
                self._latency.labels(method, status.name),
            )
        metrics[0].inc()
        metrics[1].observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %.1f ms",
                method,
                status.name,
                elapsed * 1000,
                extra={
                    "method": method,
                    "status": status.name,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
