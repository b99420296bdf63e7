"""The HTTP/JSON face against gRPC: GetDocument of one cached document, both through the same
server process (one worker, pinned to core 0), measured interleaved (A, B, A, B, ...) in one
invocation, at 16 calls in flight and at 1 (latency):

- HTTP: `GET /v1/documents/{id}`, answered with the Document as canonical proto3 JSON and its
  `ETag`. Driven by a minimal asyncio client: one HTTP/1.1 keep-alive connection per call in
  flight (HTTP/1.1 has one request at a time per connection), the request bytes built once, the
  response parsed by httptools (llhttp, C, the parser uvicorn serves with), its body not decoded;
- gRPC: `GetDocument` over 4 connections (1 at 1 in flight), from grpcio's C-core asyncio
  client with a pre-serialized request, bytes in and bytes out, as `bench.load` drives it.

Both sides run the same worker loop (`_load`, in this process, pinned to core 1), which counts
each call's status and latency and stops at `--seconds` or MAX_CALLS, whichever comes first.
The document is created first, each face is loaded for WARM_UP_SECONDS before measuring, and
the document's entry in Redis is checked, so that every measured call is a cache hit.
Reported: req/s, p50/p99, HTTP / gRPC ratio, the server's CPU per call (from /proc, as
`bench.ab`) and the client's CPU share. SQLite (the embedded default) + Redis, and
PostgreSQL + Redis.

Appends its figures to BENCHMARKS.md (unless --no-report).

    .venv/bin/python -m bench.http [--seconds 3] [--rounds 3] [--backends sqlite,postgres]
                                   [--no-report]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import grpc
import httptools
import httpx
import redis

from bench.ab import _cpu_seconds
from bench.load import CHANNEL_OPTIONS, Result, prepare, run_workers
from bench.matrix import _pin, docservice
from docservice._proto.document import Document, GetDocumentRequest, GetDocumentResponse
from tests.support.servers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
GET = "/document.DocumentService/GetDocument"
IN_FLIGHT = (16, 1)
GRPC_CONNECTIONS = 4
MAX_CALLS = 100_000  # per measurement, whatever the time
WARM_UP_SECONDS = 0.5
CACHE_PREFIX = "bench-http:"
BACKENDS = {"sqlite": "SQLite + Redis", "postgres": "PostgreSQL + Redis"}

Send = Callable[[int], Awaitable[str]]  # worker index -> status ("OK" or what went wrong)


async def _load(send: Send, concurrency: int, seconds: float) -> Result:
    """`concurrency` workers calling `send` for `seconds` (at most MAX_CALLS calls in all)."""
    result = Result()
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline and result.calls < MAX_CALLS:
            started = time.perf_counter()
            status = await send(index)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            result.calls += 1

    return await run_workers(result, concurrency, worker)


# --- HTTP/1.1: one keep-alive connection per call in flight --------------------------------


class _Connection(asyncio.Protocol):
    """One request at a time; `get` resolves with the status once the whole response is in."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_message_complete(self) -> None:  # httptools' callback
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def get(self, raw: bytes) -> int:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await asyncio.wait_for(self._waiter, 30)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def http_load(host: str, port: int, path: str, concurrency: int, seconds: float) -> Result:
    loop = asyncio.get_running_loop()
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n"
    request = raw.encode()
    connections = [
        (await loop.create_connection(_Connection, host, port))[1] for _ in range(concurrency)
    ]

    async def send(index: int) -> str:
        try:
            status = await connections[index].get(request)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            return type(exc).__name__
        return "OK" if status == 200 else f"HTTP {status}"

    try:
        return await _load(send, concurrency, seconds)
    finally:
        for connection in connections:
            connection.close()


# --- gRPC: grpcio, as bench.load drives it -------------------------------------------------


async def grpc_load(target: str, payload: bytes, concurrency: int, seconds: float) -> Result:
    channels = [
        grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        for _ in range(min(concurrency, GRPC_CONNECTIONS))
    ]
    stubs = [channel.unary_unary(GET) for channel in channels]

    async def send(index: int) -> str:
        try:
            await stubs[index % len(stubs)](payload, timeout=30)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return "OK"

    try:
        return await _load(send, concurrency, seconds)
    finally:
        for channel in channels:
            await channel.close()


# --- the comparison -------------------------------------------------------------------------


def _check(target: str, base: str, payload: bytes, redis_url: str) -> None:
    """Both faces answer the same document (HTTP as JSON, with its ETag), and it is in the
    cache."""
    doc_id = GetDocumentRequest.parse(payload).id

    async def by_grpc() -> Document:
        async with grpc.aio.insecure_channel(target) as channel:
            raw = await channel.unary_unary(GET)(payload, timeout=30)
        document = GetDocumentResponse.parse(raw).document
        assert document is not None
        return document

    document = asyncio.run(by_grpc())
    response = httpx.get(f"{base}/v1/documents/{doc_id}", timeout=30)
    response.raise_for_status()
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.content)
    assert body["id"] == doc_id and body["etag"] == document.etag == response.headers["etag"]
    assert body["content"] == document.content and body["version"] == str(document.version)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hexists(f"{CACHE_PREFIX}d:{doc_id}", "b"), "not in the Redis cache"
    finally:
        client.close()


def compare(
    target: str, http_port: int, pid: int, payload: bytes, in_flight: int, args: argparse.Namespace
) -> dict[str, tuple[Result, float]]:
    """HTTP and gRPC, interleaved; each with its server CPU seconds."""
    path = f"/v1/documents/{GetDocumentRequest.parse(payload).id}"
    runs: dict[str, Callable[[float], Awaitable[Result]]] = {
        "HTTP": lambda s: http_load("127.0.0.1", http_port, path, in_flight, s),
        "gRPC": lambda s: grpc_load(target, payload, in_flight, s),
    }
    for run in runs.values():  # warm up: connections, code paths, the cache entry
        asyncio.run(run(WARM_UP_SECONDS))
    totals = {name: Result() for name in runs}
    cpu = dict.fromkeys(runs, 0.0)
    for n in range(args.rounds):
        for name, run in runs.items():
            before = _cpu_seconds(pid)
            result = asyncio.run(run(args.seconds))
            cpu[name] += _cpu_seconds(pid) - before
            totals[name].merge(result, sequential=True)
            print(
                f"  round {n + 1} {name:4} {in_flight:2} in flight {result.summary()}", flush=True
            )
    return {name: (totals[name], cpu[name]) for name in runs}


def describe(backend: str, in_flight: int, figures: dict[str, tuple[Result, float]]) -> str:
    (http, http_cpu), (rpc, rpc_cpu) = figures["HTTP"], figures["gRPC"]
    http_us = http_cpu / max(1, http.calls) * 1e6
    rpc_us = rpc_cpu / max(1, rpc.calls) * 1e6
    bad = " ✗ non-OK statuses" if http.errors or rpc.errors else ""
    return (
        f"{backend}, {in_flight} in flight: HTTP {http.rate:.0f} req/s (p50 "
        f"{http.percentile(0.5):.2f} ms, p99 {http.percentile(0.99):.2f} ms) vs gRPC "
        f"{rpc.rate:.0f} req/s (p50 {rpc.percentile(0.5):.2f} ms, p99 "
        f"{rpc.percentile(0.99):.2f} ms): **{http.rate / rpc.rate:.2f}x**; server CPU per call "
        f"{http_us:.0f} vs {rpc_us:.0f} µs ({http_us / rpc_us:.2f}x); client CPU "
        f"{http.client_cpu_share:.0%} / {rpc.client_cpu_share:.0%} of a core{bad}"
    )


def main(args: argparse.Namespace) -> None:
    if _pin("1"):
        os.sched_setaffinity(0, {1})  # the client; the server is pinned to core 0
    lines = [
        "",
        "## HTTP/JSON against gRPC (`python -m bench.http`; GetDocument from the cache, "
        "interleaved)",
        "",
    ]
    with ExitStack() as stack:
        cache = RedisServer()
        cache.start()
        stack.callback(cache.kill)
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for backend in args.backends.split(","):
            name = BACKENDS[backend]
            if backend == "postgres":
                postgres = PostgresServer()
                postgres.start()
                stack.callback(postgres.destroy)
                env = {"DB_TYPE": "postgres", "DATABASE_URL": postgres.url}
            else:
                env = {"DB_TYPE": "sqlite", "DATABASE_URL": f"sqlite+aiosqlite:///{data}/http.db"}
            http_port, pids = free_port(), []
            env |= {
                "REDIS_URL": cache.url,
                "CACHE_KEY_PREFIX": CACHE_PREFIX,
                "HTTP_PORT": str(http_port),
            }
            with docservice(env, 1, pids=pids) as target:
                base = f"http://127.0.0.1:{http_port}"
                _wait_http(base)
                payload = asyncio.run(prepare(target, "get"))[0][1]
                _check(target, base, payload, cache.url)
                for in_flight in IN_FLIGHT:
                    figures = compare(target, http_port, pids[0], payload, in_flight, args)
                    lines.append(f"- {describe(name, in_flight, figures)}")
                    print(lines[-1], flush=True)
    if args.report:
        with (ROOT / "BENCHMARKS.md").open("a") as report:
            report.write("\n".join(lines) + "\n")


def _wait_http(base: str) -> None:
    """uvicorn starts after the gRPC server the `docservice` helper waited for."""
    for _ in range(300):
        try:
            httpx.get(f"{base}/openapi.json", timeout=1).raise_for_status()
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{base} did not start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument("--no-report", dest="report", action="store_false")
    main(parser.parse_args())
