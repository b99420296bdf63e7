"""`docservice bench`: load-test a docservice deployment (or the stack's ceiling).

The load generator is grpcio's C-core asyncio client sending pre-serialized requests (bytes in,
bytes out: no protobuf work on the client), in as many processes as asked, each with its own
connections. It reports req/s, latency percentiles, non-OK statuses and the client's CPU share,
so that a reader can tell whether the client was the bottleneck.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import resource
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    GetDocumentRequest,
    GetDocumentResponse,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)

__all__ = ["SCENARIOS", "Result", "measure", "prepare", "run_load", "serve_ceiling"]

SERVICE = "/document.DocumentService/"
SCENARIOS = ("get", "get-many", "create", "update", "list", "history", "mixed")
Call = tuple[str, bytes]  # (method path, serialized request)
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]  # one TCP connection per channel


@dataclass
class Result:
    calls: int = 0
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "OK")

    @property
    def client_cpu_share(self) -> float:
        """Client CPU time over wall time: 1.0 = one core busy all along."""
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def as_dict(self) -> dict[str, object]:
        return {
            "req_per_s": self.rate,
            "p50_ms": self.percentile(0.5),
            "p90_ms": self.percentile(0.9),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
            "calls": self.calls,
            "non_ok": {k: v for k, v in self.statuses.items() if k != "OK"},
            "client_cpu_share": self.client_cpu_share,
        }

    def merge(self, other: Result, *, sequential: bool = False) -> None:
        """Add `other`'s calls: run at the same time (client processes) or one after the
        other (rounds)."""
        self.calls += other.calls
        self.seconds = (
            self.seconds + other.seconds if sequential else max(self.seconds, other.seconds)
        )
        self.client_cpu_seconds += other.client_cpu_seconds
        self.statuses.update(other.statuses)
        self.latencies.extend(other.latencies)

    def summary(self) -> str:
        return (
            f"{self.rate:8.0f} req/s  p50 {self.percentile(0.5):6.2f}  "
            f"p90 {self.percentile(0.9):6.2f}  p99 {self.percentile(0.99):6.2f}  "
            f"max {self.percentile(1.0):7.2f} ms  non-OK {self.errors}  "
            f"client CPU {self.client_cpu_share:.0%} of a core"
        )


# --- seeding: the documents each scenario needs ---------------------------------------------


async def _unary(channel: grpc.aio.Channel, method: str, payload: bytes) -> bytes:
    response: bytes = await channel.unary_unary(SERVICE + method)(payload, timeout=30)
    return response


async def _create_many(channel: grpc.aio.Channel, count: int, author: str) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(
            *(
                _unary(
                    channel,
                    "CreateDocument",
                    bytes(
                        CreateDocumentRequest(
                            title=f"bench {n}",
                            author=author,
                            content="x" * 1024,
                            tags=["bench"],
                        )
                    ),
                )
                for n in range(start, min(count, start + 100))
            )
        )
        ids.extend(Document.parse(raw).id for raw in batch)
    return ids


async def prepare(
    target: str, scenario: str, *, seed: int = 1, dataset: dict[str, list[str]] | None = None
) -> list[Call]:
    """Create what `scenario` needs on `target` and return the calls it cycles through.

    `dataset` keeps the 10 000 documents of get-many, list and mixed between calls (pass the
    same dict for servers sharing one database), so that they are created only once.
    """
    rng = random.Random(seed)
    author = f"bench-{uuid.uuid4().hex[:8]}"
    dataset = {} if dataset is None else dataset
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        if scenario in ("get", "ceiling"):
            [doc_id] = await _create_many(channel, 1, author) if scenario == "get" else ["0" * 36]
            return [("GetDocument", bytes(GetDocumentRequest(id=doc_id)))]
        if scenario == "create":
            request = CreateDocumentRequest(title="bench", author=author, content="x" * 1024)
            return [("CreateDocument", bytes(request))]
        if scenario == "update":
            ids = await _create_many(channel, 100, author)
            return [  # two passes with different content, so that every update changes it
                ("UpdateDocument", bytes(UpdateDocumentRequest(id=i, content=f"{p} {n}")))
                for p in ("even", "odd")
                for n, i in enumerate(ids)
            ]
        if scenario == "history":
            [doc_id] = await _create_many(channel, 1, author)
            for n in range(999):
                await _unary(
                    channel,
                    "UpdateDocument",
                    bytes(UpdateDocumentRequest(id=doc_id, content=f"v{n}")),
                )
            return [
                ("GetDocumentVersions", bytes(GetDocumentVersionsRequest(id=doc_id, page_size=20)))
            ]
        if not dataset:
            dataset[author] = await _create_many(channel, 10_000, author)
        [(author, ids)] = dataset.items()
        if scenario == "list":
            return [("ListDocuments", bytes(ListDocumentsRequest(page_size=20, author=author)))]
        gets = [
            ("GetDocument", bytes(GetDocumentRequest(id=rng.choice(ids)))) for _ in range(10_000)
        ]
        if scenario == "get-many":
            return gets
        if scenario == "mixed":  # 90 % reads, 10 % writes
            updates = [
                (
                    "UpdateDocument",
                    bytes(UpdateDocumentRequest(id=rng.choice(ids), content=uuid.uuid4().hex)),
                )
                for _ in range(1_000)
            ]
            calls = gets[:9_000] + updates
            rng.shuffle(calls)
            return calls
    raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")


# --- load -----------------------------------------------------------------------------------


async def run_workers(
    result: Result, concurrency: int, worker: Callable[[int], Awaitable[None]]
) -> Result:
    """Run `worker(0)` .. `worker(concurrency - 1)` to their end; record in `result` the wall
    time and this process's CPU time (the client's share)."""
    started = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.seconds = time.perf_counter() - started
    result.client_cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return result


async def _drive(
    target: str, calls: list[Call], concurrency: int, connections: int, seconds: float
) -> Result:
    channels = [
        grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        for _ in range(max(1, connections))
    ]
    stubs = [{m: c.unary_unary(SERVICE + m) for m in {m for m, _ in calls}} for c in channels]
    result = Result()
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        methods = stubs[index % len(stubs)]
        position = index * 7919 % len(calls)  # workers start at different places
        while time.perf_counter() < deadline:
            method, payload = calls[position]
            position = (position + 1) % len(calls)
            started = time.perf_counter()
            try:
                await methods[method](payload, timeout=30)
                result.statuses["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                result.statuses[exc.code().name] += 1
            result.latencies.append(time.perf_counter() - started)
            result.calls += 1

    await run_workers(result, concurrency, worker)
    for channel in channels:
        await channel.close()
    return result


def _client_process(
    target: str,
    calls: list[Call],
    concurrency: int,
    connections: int,
    seconds: float,
    queue: multiprocessing.Queue[Result],
) -> None:
    queue.put(asyncio.run(_drive(target, calls, concurrency, connections, seconds)))


def run_load(
    target: str,
    calls: list[Call],
    *,
    concurrency: int = 64,
    connections: int = 4,
    seconds: float = 10.0,
    processes: int = 1,
) -> Result:
    """`concurrency` calls in flight over `connections` connections for `seconds`, split over
    `processes` client processes."""
    if processes <= 1:
        return asyncio.run(_drive(target, calls, concurrency, connections, seconds))
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[Result] = context.Queue()
    share = [
        (concurrency // processes + (i < concurrency % processes), max(1, connections // processes))
        for i in range(processes)
    ]
    workers = [
        context.Process(target=_client_process, args=(target, calls, c, n, seconds, queue))
        for c, n in share
    ]
    for worker in workers:
        worker.start()
    total = Result()
    for _ in workers:
        total.merge(queue.get(timeout=seconds + 120))
    for worker in workers:
        worker.join()
    return total


def measure(
    target: str,
    scenario: str,
    *,
    ceiling: bool = False,
    seconds: float = 10.0,
    concurrency: int = 64,
    connections: int = 4,
    processes: int = 1,
) -> Result:
    """Prepare `scenario` on `target` and load it; with `ceiling`, start a null server on a
    free loopback port and measure GetDocument on it instead."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    server = None
    if ceiling:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = multiprocessing.get_context("spawn").Process(
            target=serve_ceiling, args=("127.0.0.1", port), daemon=True
        )
        server.start()
        target, scenario = f"127.0.0.1:{port}", "ceiling"
        asyncio.run(_wait_ready(target))
    try:
        calls = asyncio.run(prepare(target, scenario))
        return run_load(
            target,
            calls,
            concurrency=concurrency,
            connections=connections,
            seconds=seconds,
            processes=processes,
        )
    finally:
        if server is not None:
            server.terminate()
            server.join()


async def _wait_ready(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)


# --- the ceiling: a null grpclib + betterproto2 server --------------------------------------


def serve_ceiling(host: str, port: int) -> None:
    """Answer GetDocument with one fixed document, encoded by betterproto2 on every call:
    the best the serving stack itself can do, with no storage and no rules."""
    from grpclib.server import Server

    from docservice._proto.document import DocumentServiceBase

    document = Document(
        id=str(uuid.uuid4()),
        title="ceiling",
        author="bench",
        content="x" * 1024,
        created_at="2026-11-26T10:00:00.000000Z",
        updated_at="2026-11-26T10:00:00.000000Z",
        version=1,
        etag='"0"',
    )

    class Null(DocumentServiceBase):
        async def get_document(self, message: GetDocumentRequest) -> GetDocumentResponse:
            return GetDocumentResponse(document=document)

    async def main() -> None:
        server = Server([Null()])
        await server.start(host, port)
        await server.wait_closed()

    asyncio.run(main())
