"""Cache vs database, side by side: GetDocument and ListDocuments (page of 20) req/s and latency.

Starts a throwaway PostgreSQL and redis-server, then two docservice processes on the same
database, one without and one with the Redis cache, and drives both in interleaved rounds with
grpcio's asyncio client sending pre-serialized requests. Prints req/s, p50/p99 and the ratio.

    make bench        (or: .venv/bin/python -m bench.cache_bench --seconds 3 --rounds 3)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    GetDocumentRequest,
    ListDocumentsRequest,
)
from tests.servers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def _pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() else []


def start_server(database_url: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DB_TYPE": "postgres",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GRPC_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([*_pinned(0), sys.executable, "-m", "docservice"], env=env, cwd=ROOT)


async def wait_ready(target: str) -> None:
    for _ in range(300):
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                await asyncio.wait_for(channel.channel_ready(), 0.2)
                return
        except TimeoutError:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{target} did not start")


async def drive(
    target: str, method: str, payload: bytes, seconds: float, concurrency: int, connections: int
) -> Result:
    """`concurrency` calls in flight over `connections` channels for `seconds`."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(connections)]
    calls = [c.unary_unary(method) for c in channels]  # bytes in, bytes out: no serialization
    result = Result()
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        call = calls[index % len(calls)]
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call(payload, timeout=10)
            except grpc.aio.AioRpcError:
                result.errors += 1
            result.latencies.append(time.perf_counter() - started)
            result.calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return result


async def seed(target: str, documents: int) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        create = channel.unary_unary("/document.DocumentService/CreateDocument")
        first = ""
        for start in range(0, documents, 50):
            batch = await asyncio.gather(
                *(
                    create(
                        bytes(
                            CreateDocumentRequest(
                                title=f"doc {n}", author="bench", content="x" * 1024
                            )
                        )
                    )
                    for n in range(start, min(documents, start + 50))
                )
            )
            first = first or Document.parse(batch[0]).id
        return first


async def main(args: argparse.Namespace) -> None:
    postgres, redis = PostgresServer(), RedisServer()
    postgres.start()
    redis.start()
    ports = {"database": free_port(), "cache": free_port()}
    servers = [
        start_server(postgres.url, redis.url if name == "cache" else "", port)
        for name, port in ports.items()
    ]
    try:
        targets = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        for target in targets.values():
            await wait_ready(target)
        hot = await seed(targets["database"], args.documents)
        scenarios = {
            "get": ("/document.DocumentService/GetDocument", bytes(GetDocumentRequest(id=hot))),
            "list": (
                "/document.DocumentService/ListDocuments",
                bytes(ListDocumentsRequest(page_size=20)),
            ),
        }
        totals = {(s, t): Result() for s in scenarios for t in targets}
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        wall_before = time.perf_counter()
        for _ in range(args.rounds):  # interleaved, so that machine noise hits both sides alike
            for scenario, (method, payload) in scenarios.items():
                for name, target in targets.items():
                    run = await drive(
                        target, method, payload, args.seconds, args.concurrency, args.connections
                    )
                    total = totals[scenario, name]
                    total.calls += run.calls
                    total.errors += run.errors
                    total.seconds += run.seconds
                    total.latencies += run.latencies
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (
            cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime
        )
        wall = time.perf_counter() - wall_before
        print(
            f"\n{'scenario':<8} {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'errors':>7}"
        )
        for (scenario, name), total in totals.items():
            print(
                f"{scenario:<8} {name:<9} {total.rate:>8.0f} {total.percentile(0.5):>8.2f} "
                f"{total.percentile(0.99):>8.2f} {total.errors:>7}"
            )
        for scenario in scenarios:
            ratio = totals[scenario, "cache"].rate / totals[scenario, "database"].rate
            print(f"{scenario}: cache / database = {ratio:.2f}x")
        print(
            f"client CPU: {client_cpu / wall:.0%} of one core over {wall:.0f} s "
            f"(server pinned to core 0{'' if _pinned(0) else ' — taskset missing, not pinned'})"
        )
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        redis.kill()
        postgres.destroy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--documents", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
