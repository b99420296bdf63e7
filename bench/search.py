"""Full-text search against an unindexed scan, and the cost of keeping the index, on SQLite and
PostgreSQL, measured interleaved in one invocation:

- a corpus of 100 000 documents of 1-5 KB drawn from a Zipf-distributed vocabulary, written
  straight into the tables (the index then built in bulk, as at a first start);
- 16 calls in flight for `--seconds`, alternating in `--rounds`: the repository's search (what
  SearchDocuments runs: ranked page of 20 with snippets) vs `LIKE '%word%'` on title and content
  for each word of the same queries, finding every match (what a ranking needs) and, apart,
  stopping at the newest 20; query words are words inside no other word, so that both find
  the same documents;
- SearchDocuments p50/p99 through a real server (gRPC, 16 in flight);
- Create and Update req/s of 3 KB documents, server with the index vs one whose index triggers
  were dropped after start (8 in flight).

Appends its figures to BENCHMARKS.md.

    .venv/bin/python -m bench.search [--seconds 3] [--rounds 3] [--documents 100000]
                                     [--only search|upkeep]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
import uuid
from bisect import bisect
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Select, and_, insert, or_, select, text

from bench.load import Call, Result, run_load
from bench.matrix import docservice
from docservice._proto.document import (
    CreateDocumentRequest,
    SearchDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice.core.model import utc_now
from docservice.core.repository import SearchQuery
from docservice.core.searching import parse_query
from docservice.storage.history import first_content
from docservice.storage.sql import search
from docservice.storage.sql.migrate import upgrade
from docservice.storage.sql.repository import SqlDocumentRepository, create_engine
from docservice.storage.sql.schema import document_versions, documents
from tests.support.servers import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
BATCH = 2_000
VOCABULARY = 30_000
IN_FLIGHT = 16
MAX_CALLS = 20_000  # per measurement, whatever the time


class Corpus:
    """Words of a Zipf(1.1) vocabulary of pronounceable made-up words."""

    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
        words: set[str] = set()
        while len(words) < VOCABULARY:
            words.add("".join(self.rng.choices(syllables, k=self.rng.randint(1, 4))))
        self.words = sorted(words, key=lambda w: (len(w), w))
        self.rng.shuffle(self.words)
        self.cumulative = list(itertools.accumulate(1 / (r + 1) ** 1.1 for r in range(VOCABULARY)))

    def text(self, size: int) -> str:
        count = size // 7
        total = self.cumulative[-1]
        picks = [bisect(self.cumulative, self.rng.random() * total) for _ in range(count)]
        return " ".join(self.words[min(p, VOCABULARY - 1)] for p in picks)

    def queries(self) -> dict[str, list[str]]:
        """Selective queries (words of Zipf rank 2 000-20 000: tens to hundreds of matches)
        and frequent ones (rank 50-2 000 singles and pairs, a phrase of the top two: thousands
        to tens of thousands of matches)."""
        rng = random.Random(3)
        # Only words inside no other word: `LIKE '%w%'` then finds the documents the word
        # search finds, and the two answer the same question.
        inside = {w[i:j] for w in self.words for i in range(len(w)) for j in range(i + 1, len(w))}
        whole = [w for w in self.words if w not in inside]
        rank = {w: r for r, w in enumerate(self.words)}
        mid = [w for w in whole if 50 <= rank[w] < 2000]
        rare = [w for w in whole if 2000 <= rank[w] < 20000]
        return {
            "selective": [rng.choice(rare) for _ in range(20)],
            "frequent": [rng.choice(mid) for _ in range(10)]
            + [f"{rng.choice(mid)} {rng.choice(mid)}" for _ in range(10)]
            + [f'"{whole[0]} {whole[1]}"'],
        }


async def seed(url: str, corpus: Corpus, count: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.begin() as conn:
        for start in range(0, count, BATCH):
            rows = []
            for _ in range(min(BATCH, count - start)):
                rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "version": 1,
                        "title": corpus.text(40),
                        "content": corpus.text(corpus.rng.randint(1024, 5120)),
                        "status": 0,
                        "author": "bench",
                        "tags": [corpus.text(8)],
                        "category": "",
                        "comments": [],
                        "created_at": utc_now(),
                        "updated_at": utc_now(),
                        "deleted_at": None,
                    }
                )
            await conn.execute(insert(documents), rows)
            await conn.execute(insert(document_versions), [_version_row(r) for r in rows])
    async with engine.begin() as conn:
        await search.ensure_index(conn, "english")
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("ANALYZE"))
    await engine.dispose()


def _version_row(row: dict[str, object]) -> dict[str, object]:
    stored = first_content(str(row["content"]), 1).fields()
    kept = {k: v for k, v in row.items() if k not in ("id", "content")}
    return {**kept, **stored, "document_id": row["id"]}


async def _load(call: Callable[[int], Awaitable[object]], seconds: float) -> Result:
    """IN_FLIGHT tasks calling `call(i)` for `seconds` (at most MAX_CALLS calls)."""
    result = Result()
    deadline = time.perf_counter() + seconds
    counter = itertools.count()

    async def worker() -> None:
        while time.perf_counter() < deadline and result.calls < MAX_CALLS:
            started = time.perf_counter()
            await call(next(counter))
            result.latencies.append(time.perf_counter() - started)
            result.calls += 1
            result.statuses["OK"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    result.seconds = time.perf_counter() - started
    return result


async def search_vs_like(url: str, queries: list[str], rounds: int, seconds: float) -> str:
    """The repository's search against two unindexed scans of the same queries: `LIKE '%w%'`
    for every match (what ranking needs: a score compares every matching document), and the
    same scan stopping at the newest 20 matches (no ranking; reads less the commoner a word)."""
    repository = SqlDocumentRepository(create_engine(url))
    parsed = [parse_query(q) for q in queries]
    every, newest = [], []
    for terms in parsed:
        found = and_(
            *(
                or_(documents.c.title.like(f"%{w}%"), documents.c.content.like(f"%{w}%"))
                for t in terms
                for w in t.words
            )
        )
        every.append(select(documents.c.id).where(documents.c.deleted_at.is_(None), found))
        newest.append(every[-1].order_by(documents.c.updated_at.desc()).limit(20))
    engine = create_engine(url)

    async def searched(i: int) -> object:
        return await repository.search_page(SearchQuery(parsed[i % len(parsed)], limit=20))

    def scan(statements: list[Select[tuple[str]]]) -> Callable[[int], Awaitable[object]]:
        async def scanned(i: int) -> object:
            async with engine.connect() as conn:
                return (await conn.execute(statements[i % len(statements)])).all()

        return scanned

    calls = {"search": searched, "every": scan(every), "newest": scan(newest)}
    totals = {name: Result() for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            totals[name].merge(await _load(call, seconds), sequential=True)
    await repository.close()
    await engine.dispose()
    s, like, first = totals["search"], totals["every"], totals["newest"]
    return (
        f"search {s.rate:.1f} req/s (p50 {s.percentile(0.5):.1f} ms, p99 "
        f"{s.percentile(0.99):.1f} ms) vs LIKE scan for every match {like.rate:.2f} req/s (p50 "
        f"{like.percentile(0.5):.0f} ms, p99 {like.percentile(0.99):.0f} ms): "
        f"**{s.rate / like.rate:.0f}x**; vs LIKE stopping at the newest 20 matches "
        f"{first.rate:.2f} req/s: {s.rate / first.rate:.1f}x"
    )


async def _drop_triggers(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("DROP TRIGGER search_index_document ON documents")
        else:
            await conn.exec_driver_sql("DROP TRIGGER search_insert")
            await conn.exec_driver_sql("DROP TRIGGER search_update")
    await engine.dispose()


def write_calls(corpus: Corpus, ids: list[str]) -> tuple[list[Call], list[Call]]:
    creates = [
        (
            "CreateDocument",
            bytes(CreateDocumentRequest(title=corpus.text(40), author="bench", content=c)),
        )
        for c in (corpus.text(3072) for _ in range(200))
    ]
    contents = [corpus.text(3072) for _ in range(20)]
    updates = [
        ("UpdateDocument", bytes(UpdateDocumentRequest(id=i, content=contents[n % 20])))
        for n, i in enumerate(ids * 4)
    ]
    return creates, updates


def upkeep(
    env: dict[str, str], bare_env: dict[str, str], corpus: Corpus, args: argparse.Namespace
) -> list[str]:
    """Create and Update req/s with the index vs without it, interleaved."""
    lines = []
    with docservice(env, 1) as indexed, docservice(bare_env, 1) as bare:
        url = bare_env.get("DATABASE_URL", "")
        asyncio.run(_drop_triggers(url))
        ids = {target: asyncio.run(_create_ids(target, 64)) for target in (indexed, bare)}
        for name, pick in (("CreateDocument", 0), ("UpdateDocument", 1)):
            totals = {"indexed": Result(), "no index": Result()}
            for _ in range(args.rounds):
                for label, target in (("indexed", indexed), ("no index", bare)):
                    calls = write_calls(corpus, ids[target])[pick]
                    totals[label].merge(
                        run_load(target, calls, seconds=args.seconds, concurrency=8),
                        sequential=True,
                    )
            a, b = totals["indexed"], totals["no index"]
            lines.append(
                f"- {name} (3 KB, 8 in flight): with the index {a.rate:.0f} req/s vs without "
                f"{b.rate:.0f} req/s: **{a.rate / b.rate:.2f}x**"
                f"{' ✗ non-OK statuses' if a.errors or b.errors else ''}"
            )
            print(lines[-1], flush=True)
    return lines


async def _create_ids(target: str, count: int) -> list[str]:
    import grpc

    from docservice._proto.document import Document

    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/document.DocumentService/CreateDocument")
        ids = []
        for n in range(count):
            raw = await call(
                bytes(CreateDocumentRequest(title=f"u{n}", author="bench", content="x"))
            )
            ids.append(Document.parse(raw).id)
        return ids


def grpc_latency(target: str, queries: list[str], seconds: float) -> Result:
    calls = [
        ("SearchDocuments", bytes(SearchDocumentsRequest(query=q, page_size=20))) for q in queries
    ]
    return run_load(target, calls, seconds=seconds, concurrency=IN_FLIGHT)


def main(args: argparse.Namespace) -> None:
    corpus = Corpus()
    queries = corpus.queries()
    lines = [
        "",
        f"## Search ({args.documents:,} documents of 1-5 KB, Zipf vocabulary; interleaved)",
        "",
    ]
    postgres = PostgresServer()
    postgres.start()
    scratch = Path(ROOT / ".bench-search")
    scratch.mkdir(exist_ok=True)
    try:
        backends = {
            "SQLite": (
                f"sqlite+aiosqlite:///{scratch / 'corpus.db'}",
                {"DB_TYPE": "sqlite"},
            ),
            "PostgreSQL": (postgres.url, {"DB_TYPE": "postgres"}),
        }
        for name, (url, env) in backends.items():
            if args.only == "upkeep":
                break
            if name == "SQLite":
                for stale in scratch.glob("corpus.db*"):
                    stale.unlink()
            started = time.perf_counter()
            asyncio.run(seed(url, corpus, args.documents))
            print(f"{name}: seeded in {time.perf_counter() - started:.0f} s", flush=True)
            for kind, chosen in queries.items():
                line = asyncio.run(search_vs_like(url, chosen, args.rounds, args.seconds))
                lines.append(f"- {name}, {kind} queries, 16 in flight, in the store: {line}")
                print(lines[-1], flush=True)
            with docservice({**env, "DATABASE_URL": url}, 1) as target:
                for kind, chosen in queries.items():
                    result = grpc_latency(target, chosen, args.seconds)
                    lines.append(
                        f"- {name}, {kind} queries, SearchDocuments through the server, 16 in "
                        f"flight: {result.rate:.0f} req/s, p50 {result.percentile(0.5):.1f} ms, "
                        f"p99 {result.percentile(0.99):.1f} ms"
                    )
                    print(lines[-1], flush=True)
        # Index upkeep: two fresh databases per backend.
        for name in ("SQLite", "PostgreSQL") if args.only != "search" else ():
            if name == "SQLite":
                urls = [f"sqlite+aiosqlite:///{scratch / f'upkeep-{n}.db'}" for n in (1, 2)]
                for stale in scratch.glob("upkeep-*"):
                    stale.unlink()
                env = {"DB_TYPE": "sqlite"}
            else:
                urls = [asyncio.run(_database(postgres.url, f"upkeep_{n}")) for n in (1, 2)]
                env = {"DB_TYPE": "postgres"}
            lines.append(f"- {name} index upkeep:")
            for line in upkeep(
                {**env, "DATABASE_URL": urls[0]}, {**env, "DATABASE_URL": urls[1]}, corpus, args
            ):
                lines.append("  " + line)
    finally:
        postgres.destroy()
    with (ROOT / "BENCHMARKS.md").open("a") as report:
        report.write("\n".join(lines) + "\n")


async def _database(url: str, name: str) -> str:
    engine = create_engine(url)
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await autocommit.execute(text(f"CREATE DATABASE {name}"))
    await engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--only", choices=("search", "upkeep"))
    main(parser.parse_args())
