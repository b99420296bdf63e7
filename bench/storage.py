"""`make bench` storage scenario: what history costs, in bytes and in time, in this tree against
a base tree that stores every version whole (side by side, in one run).

1. The delta methods on W1, without a database: bytes, encode and decode time of each
   (docservice's prefix/suffix + zstd, zstd with the base as dictionary, bsdiff4,
   diff-match-patch ops), and of zstd keyframes.
2. For each backend (sqlite, postgres, mongo) and each tree: W1, a 100 KB text document edited
   200 times (each edit replaces 10 characters at a random position), then W2, 1 000
   metadata-only updates (status, tags) of the same document; the history's growth from each
   (SQLite: file size after VACUUM; PostgreSQL: the tables' size after VACUUM FULL; MongoDB:
   the collections' size as the server reports it).
3. Cache off, on each backend: GetDocumentVersion of a random W1 version against GetDocument
   of the same document (one call at a time: p50 is latency), a GetDocumentVersions page of 20
   at a random position, this tree against the base, and UpdateDocument (100 documents of
   100 KB, 64 calls in flight) this tree against the base. Interleaved rounds.

    .venv/bin/python -m bench.storage --base 3e2f4a7 [--backends sqlite,postgres,mongo]
        [--seconds 3] [--rounds 3] [--no-report]

Appends its figures to BENCHMARKS.md (unless --no-report).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sqlite3
import string
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
from pymongo import MongoClient
from sqlalchemy.engine import make_url

from bench.ab import source_tree
from bench.load import CHANNEL_OPTIONS, SERVICE, Call, Result, run_load
from bench.matrix import ROOT, _pin, docservice
from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    DocumentStatus,
    GetDocumentRequest,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    UpdateDocumentRequest,
)
from docservice._proto.google.protobuf import FieldMask
from docservice.core import page_tokens
from docservice.core.page_tokens import PageTokens
from tests.support.servers import MongoServer, PostgresServer

TEXT_BYTES = 100_000
W1_EDITS = 200
W2_UPDATES = 1_000
UPDATE_DOCUMENTS = 100
SECRET = b"bench-storage-page-token-secret"


def text(rng: random.Random, size: int = TEXT_BYTES) -> str:
    """Prose-like text: words of a 2 000-word vocabulary (compresses about as prose does)."""
    vocabulary = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        for _ in range(2_000)
    ]
    words: list[str] = []
    length = 0
    while length < size:
        words.append(rng.choice(vocabulary))
        length += len(words[-1]) + 1
    return " ".join(words)[:size]


def edit(rng: random.Random, content: str) -> str:
    """Replace 10 characters at a random position."""
    at = rng.randrange(len(content) - 10)
    new = "".join(rng.choice(string.ascii_letters + " ") for _ in range(10))
    return content[:at] + new + content[at + 10 :]


def w1_contents(seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    contents = [text(rng)]
    for _ in range(W1_EDITS):
        contents.append(edit(rng, contents[-1]))
    return contents


# -- 1. the methods, without a database ------------------------------------------------------


def methods() -> list[str]:
    import bsdiff4  # type: ignore[import-untyped]
    import fast_diff_match_patch  # type: ignore[import-untyped]
    import zstandard

    from docservice.storage.delta import apply_delta, encode_delta

    def ours(base: bytes, target: bytes) -> tuple[bytes, Callable[[], bytes]]:
        delta = encode_delta(base, target)

        def decode() -> bytes:
            data = bytearray(base)
            apply_delta(data, delta)
            return bytes(data)

        return delta, decode

    def zstd_dict(base: bytes, target: bytes) -> tuple[bytes, Callable[[], bytes]]:
        raw = zstandard.DICT_TYPE_RAWCONTENT
        dictionary = zstandard.ZstdCompressionDict(base, dict_type=raw)
        delta = zstandard.ZstdCompressor(level=3, dict_data=dictionary).compress(target)

        def decode() -> bytes:
            again = zstandard.ZstdCompressionDict(base, dict_type=raw)
            return zstandard.ZstdDecompressor(dict_data=again).decompress(delta)

        return delta, decode

    def bsdiff(base: bytes, target: bytes) -> tuple[bytes, Callable[[], bytes]]:
        delta = bsdiff4.diff(base, target)
        return delta, lambda: bytes(bsdiff4.patch(base, delta))

    def dmp(base: bytes, target: bytes) -> tuple[bytes, Callable[[], bytes]]:
        ops = fast_diff_match_patch.diff(base, target, counts_only=True, cleanup="No")
        encoded, literals, at = bytearray(), bytearray(), 0
        for op, count in ops:  # op codes and varint counts, then the inserted bytes
            encoded += op.encode() + count.to_bytes(4, "little")
            if op == "+":
                literals += target[at : at + count]
            if op != "-":
                at += count
        delta = bytes(encoded + literals)

        def decode() -> bytes:
            parts, base_at, literal_at = [], 0, 0
            for op, count in ops:
                if op == "=":
                    parts.append(base[base_at : base_at + count])
                    base_at += count
                elif op == "-":
                    base_at += count
                else:
                    parts.append(literals[literal_at : literal_at + count])
                    literal_at += count
            return b"".join(parts)

        return delta, decode

    contents = [c.encode() for c in w1_contents()]
    lines = [
        "| method | W1 bytes (200 deltas) | per version | W2 bytes | encode µs | decode µs |",
        "|---|---|---|---|---|---|",
    ]
    candidates: list[tuple[str, Callable[[bytes, bytes], tuple[bytes, Callable[[], bytes]]]]] = [
        ("prefix/suffix + zstd (ours)", ours),
        ("zstd, base as raw dictionary", zstd_dict),
        ("bsdiff4", bsdiff),
        ("diff-match-patch ops (C++), 5-byte op codes", dmp),
    ]
    for name, method in candidates:
        total, encodes, decodes = 0, [], []
        for base, target in itertools.pairwise(contents):
            started = time.perf_counter()
            delta, decode = method(base, target)
            encodes.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert decode() == target
            decodes.append(time.perf_counter() - started)
            total += len(delta)
        lines.append(
            f"| {name} | {total:,} | {total / W1_EDITS:.0f} | 0 (nothing stored) | "
            f"{_median(encodes) * 1e6:.0f} | {_median(decodes) * 1e6:.0f} |"
        )
    lines.append(
        f"| full copies (today) | {sum(map(len, contents[1:])):,} | {TEXT_BYTES:,} | "
        f"{W2_UPDATES * TEXT_BYTES:,} | 0 | 0 |"
    )
    for level in (1, 3, 9):
        compressor = zstandard.ZstdCompressor(level=level)
        started = time.perf_counter()
        frame = compressor.compress(contents[0])
        encoded = time.perf_counter() - started
        started = time.perf_counter()
        zstandard.ZstdDecompressor().decompress(frame)
        decoded = time.perf_counter() - started
        lines.append(
            f"| keyframe, zstd level {level} | {len(frame):,} of {len(contents[0]):,} | | | "
            f"{encoded * 1e6:.0f} | {decoded * 1e6:.0f} |"
        )
    return lines


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


# -- 2. bytes per version, through the API ---------------------------------------------------


async def _call(channel: grpc.aio.Channel, method: str, request: Any) -> bytes:
    response: bytes = await channel.unary_unary(SERVICE + method)(bytes(request), timeout=60)
    return response


async def _create(target: str, content: str, count: int = 1) -> list[str]:
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        ids = []
        for n in range(count):
            request = CreateDocumentRequest(title=f"storage {n}", author="bench", content=content)
            ids.append(Document.parse(await _call(channel, "CreateDocument", request)).id)
        return ids


async def _w1(target: str, document_id: str, contents: list[str]) -> None:
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        for content in contents:
            request = UpdateDocumentRequest(id=document_id, content=content)
            await _call(channel, "UpdateDocument", request)


async def _w2(target: str, document_id: str) -> None:
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        for n in range(W2_UPDATES):
            request = UpdateDocumentRequest(
                id=document_id,
                status=DocumentStatus(n % 2 + 1),
                tags=[f"tag-{n % 7}", "bench"],
                update_mask=FieldMask(paths=["status", "tags"]),
            )
            await _call(channel, "UpdateDocument", request)


@dataclass
class Store:
    """One tree's database on one backend: how to point a server at it and how big it is."""

    env: dict[str, str]
    size: Callable[[], int]


@contextmanager
def stores(
    backend: str, tmp: Path, postgres: PostgresServer | None, mongo: MongoServer | None, name: str
) -> Iterator[Store]:
    if backend == "sqlite":
        path = tmp / f"{name}.db"
        yield Store(
            {"DB_TYPE": "sqlite", "DATABASE_URL": f"sqlite+aiosqlite:///{path}"},
            lambda: _sqlite_size(path),
        )
    elif backend == "postgres":
        assert postgres is not None
        database = f"storage_{name}_{uuid.uuid4().hex[:6]}"
        asyncio.run(_postgres_admin(postgres.url, f'CREATE DATABASE "{database}"'))
        url = make_url(postgres.url).set(database=database).render_as_string(False)
        try:
            yield Store({"DB_TYPE": "postgres", "DATABASE_URL": url}, lambda: _postgres_size(url))
        finally:
            asyncio.run(_postgres_admin(postgres.url, f'DROP DATABASE "{database}" WITH (FORCE)'))
    else:
        assert mongo is not None
        database = f"storage-{name}-{uuid.uuid4().hex[:6]}"
        yield Store(
            {"DB_TYPE": "mongo", "MONGO_URL": mongo.url, "MONGO_DB": database},
            lambda: _mongo_size(mongo.url, database),
        )


def _sqlite_size(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return path.stat().st_size


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


async def _postgres_admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _postgres_size(url: str) -> int:
    async def measure() -> int:
        connection = await asyncpg.connect(_dsn(url))
        try:
            await connection.execute("VACUUM FULL documents, document_versions, document_tags")
            size: int = await connection.fetchval(
                "SELECT pg_total_relation_size('documents') + "
                "pg_total_relation_size('document_versions') + "
                "pg_total_relation_size('document_tags')"
            )
            return size
        finally:
            await connection.close()

    return asyncio.run(measure())


def _mongo_size(url: str, database: str) -> int:
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    try:
        db = client[database]
        return sum(
            int(db.command("collStats", name)["size"])
            for name in ("documents", "document_versions")
        )
    finally:
        client.close()


@dataclass
class Tree:
    """One source tree's server on one backend, with the W1 document it wrote."""

    name: str
    target: str
    document_id: str = ""
    w1_growth: int = 0
    w2_growth: int = 0


def storage_workloads(tree: Tree, store: Store, contents: list[str]) -> None:
    [tree.document_id] = asyncio.run(_create(tree.target, contents[0]))
    before = store.size()
    asyncio.run(_w1(tree.target, tree.document_id, contents[1:]))
    after_w1 = store.size()
    asyncio.run(_w2(tree.target, tree.document_id))
    after_w2 = store.size()
    tree.w1_growth, tree.w2_growth = after_w1 - before, after_w2 - after_w1


# -- 3. time ---------------------------------------------------------------------------------


def interleaved(
    runs: dict[str, tuple[str, list[Call]]], rounds: int, seconds: float, concurrency: int
) -> dict[str, Result]:
    totals = {name: Result() for name in runs}
    for _ in range(rounds):
        for name, (target, calls) in runs.items():
            result = run_load(
                target,
                calls,
                seconds=seconds,
                concurrency=concurrency,
                connections=min(4, concurrency),
            )
            totals[name].merge(result, sequential=True)
    return totals


def read_calls(document_id: str, rng: random.Random) -> dict[str, list[Call]]:
    versions = [
        ("GetDocumentVersion", bytes(GetDocumentVersionRequest(id=document_id, version=v)))
        for v in (rng.randint(1, W1_EDITS + 1) for _ in range(500))
    ]
    tokens = PageTokens(SECRET)
    query = page_tokens.fingerprint("versions", document_id)
    pages = []
    for after in (rng.randint(0, W1_EDITS + 1 - 20) for _ in range(200)):
        token = tokens.encode(query, [after]) if after else ""
        request = GetDocumentVersionsRequest(id=document_id, page_size=20, page_token=token)
        pages.append(("GetDocumentVersions", bytes(request)))
    return {
        "get": [("GetDocument", bytes(GetDocumentRequest(id=document_id)))],
        "version": versions,
        "page": pages,
    }


def update_calls(target: str, content: str, rng: random.Random) -> list[Call]:
    ids = asyncio.run(_create(target, content, UPDATE_DOCUMENTS))
    variants = [edit(rng, content), edit(rng, content)]
    return [
        ("UpdateDocument", bytes(UpdateDocumentRequest(id=i, content=variant)))
        for variant in variants
        for i in ids
    ]


def _ratio(line: str, a: Result, b: Result, *, rate: bool = False) -> str:
    errors = " ✗ non-OK statuses" if a.errors or b.errors else ""
    if rate:
        return (
            f"{line}: {a.rate:.0f} vs {b.rate:.0f} req/s = **{a.rate / b.rate:.2f}x** "
            f"(p50 {a.percentile(0.5):.1f} vs {b.percentile(0.5):.1f} ms){errors}"
        )
    return (
        f"{line}: p50 {a.percentile(0.5):.2f} vs {b.percentile(0.5):.2f} ms = "
        f"**{a.percentile(0.5) / b.percentile(0.5):.2f}x** (p99 {a.percentile(0.99):.2f} vs "
        f"{b.percentile(0.99):.2f} ms){errors}"
    )


def main(args: argparse.Namespace) -> None:
    if _pin("1"):
        os.sched_setaffinity(0, {1})  # the client; servers are pinned to core 0
    header = ["", "## History storage (`python -m bench.storage`)", ""]
    header += [
        "Delta and keyframe methods on W1 (a 100 KB text, 200 edits of 10 characters), "
        "no database:",
        "",
        *methods(),
        "",
    ]
    print("\n".join(header), flush=True)
    contents = w1_contents()
    sizes = [
        "| backend | W1 growth, this tree | W1, base (full copies) | W2 growth, this tree | "
        "W2, base | bytes per W1 version (this / base) |",
        "|---|---|---|---|---|---|",
    ]
    timings: list[str] = []
    backends = args.backends.split(",")
    with ExitStack() as stack:
        postgres = mongo = None
        if "postgres" in backends:
            postgres = PostgresServer()
            postgres.start()
            stack.callback(postgres.destroy)
        if "mongo" in backends:
            mongo = MongoServer()
            mongo.start()
            stack.callback(mongo.destroy)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="docservice-storage-")))
        trees = {"this": ROOT, "base": stack.enter_context(source_tree(args.base))}
        for backend in backends:
            with ExitStack() as servers:
                running: dict[str, Tree] = {}
                for name, path in trees.items():
                    store = servers.enter_context(stores(backend, tmp, postgres, mongo, name))
                    env = {**store.env, "PAGE_TOKEN_SECRET": SECRET.decode()}
                    target = servers.enter_context(docservice(env, 1, cwd=path))
                    running[name] = tree = Tree(name, target)
                    storage_workloads(tree, store, contents)
                    print(
                        f"{backend} {name}: W1 +{tree.w1_growth:,} B, W2 +{tree.w2_growth:,} B",
                        flush=True,
                    )
                this, base = running["this"], running["base"]
                sizes.append(
                    f"| {backend} | {_mb(this.w1_growth)} | {_mb(base.w1_growth)} | "
                    f"{_mb(this.w2_growth)} | {_mb(base.w2_growth)} | "
                    f"{this.w1_growth / W1_EDITS:,.0f} / {base.w1_growth / W1_EDITS:,.0f} |"
                )
                rng = random.Random(2)
                reads = {name: read_calls(tree.document_id, rng) for name, tree in running.items()}
                one = interleaved(
                    {
                        "version": (this.target, reads["this"]["version"]),
                        "get": (this.target, reads["this"]["get"]),
                    },
                    args.rounds,
                    args.seconds,
                    1,
                )
                timings.append(
                    _ratio(
                        f"{backend}: GetDocumentVersion (random W1 version) vs "
                        "GetDocument, this tree",
                        one["version"],
                        one["get"],
                    )
                )
                pages = interleaved(
                    {
                        "this": (this.target, reads["this"]["page"]),
                        "base": (base.target, reads["base"]["page"]),
                    },
                    args.rounds,
                    args.seconds,
                    1,
                )
                timings.append(
                    _ratio(
                        f"{backend}: GetDocumentVersions page of 20 (random "
                        "position), this tree vs base",
                        pages["this"],
                        pages["base"],
                    )
                )
                updates = {
                    name: update_calls(tree.target, contents[0], rng)
                    for name, tree in running.items()
                }
                writes = interleaved(
                    {name: (running[name].target, calls) for name, calls in updates.items()},
                    args.rounds,
                    args.seconds,
                    64,
                )
                timings.append(
                    _ratio(
                        f"{backend}: UpdateDocument of 100 KB documents, this tree vs base",
                        writes["this"],
                        writes["base"],
                        rate=True,
                    )
                )
                for line in timings[-3:]:
                    print(line, flush=True)
    lines = [
        *header,
        f"History growth, this tree vs {args.base} (every version whole), in one run:",
        "",
        *sizes,
        "",
        f"Cache off, {args.rounds} interleaved rounds of {args.seconds:g} s, one call at a time "
        "for the reads (p50 is latency), 64 in flight for the updates:",
        "",
        *(f"- {line}" for line in timings),
    ]
    print("\n".join(lines[len(header) :]), flush=True)
    if args.report:
        with (ROOT / "BENCHMARKS.md").open("a") as report:
            report.write("\n".join(lines) + "\n")


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a revision storing every version whole")
    parser.add_argument("--backends", default="sqlite,postgres,mongo")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-report", dest="report", action="store_false")
    main(parser.parse_args())
