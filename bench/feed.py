"""The change feed, measured on SQLite and PostgreSQL in one invocation:

- commit-to-delivery latency: UpdateDocument at a steady rate, the time from each write's
  acknowledgement (at the writer) to its event's arrival at each of 1 or 100 watchers (in a
  process of their own), p50/p99 over every delivery;
- UpdateDocument req/s with 100 idle watchers (a filter nothing matches: heartbeats only) vs
  none, interleaved;
- catch-up: a watcher resuming from the start of a log of 100 000 events (seeded straight into
  the tables) until it is live, events/s.

Appends its figures to BENCHMARKS.md.

    .venv/bin/python -m bench.feed [--seconds 4] [--rounds 3] [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import insert, update

from bench.load import CHANNEL_OPTIONS, Result, prepare, run_load
from bench.matrix import docservice
from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    UpdateDocumentRequest,
    UpdateDocumentResponse,
    WatchDocumentsRequest,
    WatchDocumentsResponse,
)
from docservice.core.model import utc_now
from docservice.storage.history import first_content
from docservice.storage.sql.migrate import upgrade
from docservice.storage.sql.repository import create_engine
from docservice.storage.sql.schema import document_feed, document_versions, documents
from tests.support.servers import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
WATCH = "/document.DocumentService/WatchDocuments"
WRITES_PER_SECOND = 50
STREAMS_PER_CHANNEL = 10
BATCH = 5_000


# -- watchers, in a process of their own ------------------------------------------------------


def _watch_process(
    target: str, count: int, request: bytes, seconds: float, results: Any, ready: Any
) -> None:
    results.put(asyncio.run(_watch(target, count, request, seconds, ready)))


async def _watch(
    target: str, count: int, request: bytes, seconds: float, ready: Any
) -> list[dict[str, float]]:
    """`count` streams for `seconds`; for each, event_id -> arrival time."""
    channels = [
        grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        for _ in range(max(1, count // STREAMS_PER_CHANNEL))
    ]
    arrivals: list[dict[str, float]] = [{} for _ in range(count)]
    opened = 0

    async def one(index: int) -> None:
        nonlocal opened
        channel = channels[index % len(channels)]
        call = channel.unary_stream(WATCH)(request)
        first = True
        async for raw in call:
            if first:
                opened += 1
                if opened == count:
                    ready.set()
                first = False
            message = WatchDocumentsResponse.parse(raw)
            if message.event is not None:
                arrivals[index][message.event.event_id] = time.time()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return arrivals


class Watchers:
    """`count` watch streams in another process for `seconds`; `arrivals()` when done."""

    def __init__(self, target: str, count: int, request: WatchDocumentsRequest, seconds: float):
        context = multiprocessing.get_context("spawn")
        self._results = context.Queue()
        ready = context.Event()
        self._process = context.Process(
            target=_watch_process,
            args=(target, count, bytes(request), seconds, self._results, ready),
        )
        self._process.start()
        if not ready.wait(60):
            self._process.terminate()
            raise RuntimeError("the watchers did not open")
        self._seconds = seconds

    def arrivals(self) -> list[dict[str, float]]:
        found: list[dict[str, float]] = self._results.get(timeout=self._seconds + 60)
        self._process.join(30)
        return found


# -- the measurements ------------------------------------------------------------------------


async def _write_steadily(
    change: Any, ids: list[str], seconds: float, acks: dict[str, float]
) -> None:
    started = time.perf_counter()
    n = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        request = UpdateDocumentRequest(id=ids[n % len(ids)], content=f"w{n}")
        raw = await change(bytes(request))
        document = UpdateDocumentResponse.parse(raw).document
        assert document is not None
        acks[f"{document.id}@{document.version}"] = time.time()
        n += 1
        await asyncio.sleep(max(0.0, n / WRITES_PER_SECOND - elapsed))


def latency(target: str, watchers: int, seconds: float) -> str:
    async def setup() -> tuple[str, list[str]]:
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            create = channel.unary_unary("/document.DocumentService/CreateDocument")
            author = f"lat-{uuid.uuid4().hex[:8]}"
            ids = []
            for n in range(20):
                raw = await create(bytes(CreateDocumentRequest(title=f"l{n}", author=author)))
                ids.append(Document.parse(raw).id)
            return author, ids

    author, ids = asyncio.run(setup())
    request = WatchDocumentsRequest(filter=f'author = "{author}"')
    group = Watchers(target, watchers, request, seconds + 3)
    acks: dict[str, float] = {}

    async def write() -> None:
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            change = channel.unary_unary("/document.DocumentService/UpdateDocument")
            await _write_steadily(change, ids, seconds, acks)

    asyncio.run(write())
    delays = []
    missing = 0
    for arrivals in group.arrivals():
        for event_id, acked in acks.items():
            if event_id in arrivals:
                delays.append(max(0.0, arrivals[event_id] - acked))
            else:
                missing += 1
    delivered = Result(latencies=delays)
    return (
        f"{watchers} watcher{'s' if watchers > 1 else ''}, {WRITES_PER_SECOND} writes/s: "
        f"commit-to-delivery p50 {delivered.percentile(0.5):.1f} ms, p99 "
        f"{delivered.percentile(0.99):.1f} ms ({len(delays)} deliveries"
        f"{f', {missing} MISSING' if missing else ''})"
    )


def idle_watchers(target: str, rounds: int, seconds: float) -> str:
    calls = asyncio.run(prepare(target, "update"))
    request = WatchDocumentsRequest(filter='author = "nobody writes as this"')
    totals = {"none": Result(), "100 idle": Result()}
    for _ in range(rounds):
        totals["none"].merge(
            run_load(target, calls, seconds=seconds, concurrency=16), sequential=True
        )
        group = Watchers(target, 100, request, seconds + 2)
        totals["100 idle"].merge(
            run_load(target, calls, seconds=seconds, concurrency=16), sequential=True
        )
        group.arrivals()
    a, b = totals["100 idle"], totals["none"]
    return (
        f"UpdateDocument (16 in flight) with 100 idle watchers {a.rate:.0f} req/s vs none "
        f"{b.rate:.0f} req/s: **{a.rate / b.rate:.2f}x**"
        f"{' ✗ non-OK statuses' if a.errors or b.errors else ''}"
    )


async def seed_events(url: str, count: int) -> str:
    """`count` documents of one version each, numbered 1..count in the feed; the log id."""
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.begin() as conn:
        head = (await conn.execute(document_feed.select())).one()
        for start in range(0, count, BATCH):
            rows, versions = [], []
            for n in range(start, min(count, start + BATCH)):
                now = utc_now()
                row = {
                    "id": str(uuid.uuid4()),
                    "version": 1,
                    "title": f"seeded {n}",
                    "content": "x" * 200,
                    "status": 0,
                    "author": "seed",
                    "tags": [],
                    "category": "",
                    "comments": [],
                    "created_at": now,
                    "updated_at": now,
                    "deleted_at": None,
                }
                rows.append(row)
                kept = {k: v for k, v in row.items() if k not in ("id", "content")}
                stored = first_content(str(row["content"]), 1).fields()
                versions.append(
                    {**kept, **stored, "document_id": row["id"], "sequence": head.head + n + 1}
                )
            await conn.execute(insert(documents), rows)
            await conn.execute(insert(document_versions), versions)
        await conn.execute(update(document_feed).values(head=head.head + count))
    await engine.dispose()
    return str(head.log_id)


def catch_up(target: str, log_id: str, count: int) -> str:
    async def follow() -> tuple[int, float]:
        request = WatchDocumentsRequest(resume_token=f"r1.{log_id}.0")
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            call = channel.unary_stream(WATCH)(bytes(request))
            received, started = 0, time.perf_counter()
            async for raw in call:
                if WatchDocumentsResponse.parse(raw).event is not None:
                    received += 1
                    if received == count:
                        break
            elapsed = time.perf_counter() - started
            call.cancel()
            return received, elapsed

    received, elapsed = asyncio.run(follow())
    return (
        f"catch-up from the start of a log of {count:,} events: {received:,} events in "
        f"{elapsed:.1f} s = **{received / elapsed:,.0f} events/s**"
    )


def main(args: argparse.Namespace) -> None:
    lines = ["", "## Change feed (`python -m bench.feed`; interleaved where compared)", ""]
    postgres = PostgresServer()
    postgres.start()
    scratch = ROOT / ".bench-feed"
    scratch.mkdir(exist_ok=True)
    for stale in scratch.glob("feed.db*"):
        stale.unlink()
    try:
        backends = {
            "SQLite": {
                "DB_TYPE": "sqlite",
                "DATABASE_URL": f"sqlite+aiosqlite:///{scratch}/feed.db",
            },
            "PostgreSQL": {"DB_TYPE": "postgres", "DATABASE_URL": postgres.url},
        }
        for name, env in backends.items():
            log_id = asyncio.run(seed_events(env["DATABASE_URL"], args.events))
            with docservice(env, 1) as target:
                for line in (
                    catch_up(target, log_id, args.events),
                    latency(target, 1, args.seconds),
                    latency(target, 100, args.seconds),
                    idle_watchers(target, args.rounds, args.seconds),
                ):
                    lines.append(f"- {name}, {line}")
                    print(lines[-1], flush=True)
    finally:
        postgres.destroy()
    with (ROOT / "BENCHMARKS.md").open("a") as report:
        report.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000)
    main(parser.parse_args())
