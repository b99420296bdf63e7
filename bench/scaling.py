"""Cost against size, PostgreSQL without the cache, measured interleaved in one invocation:

- GetDocument and UpdateDocument of a document with 1 version vs one with 10 000 versions;
- ListDocuments, a page of 20 filtered by author, out of 1 000 vs 100 000 documents: the first
  page (which counts the set for total_size) and a deep page (which resumes from a token); and
  the first page with the author as an AIP-160 filter in each order_by.

The large sets are written straight into the database (same tables and values as the service
writes), since creating 100 000 documents through the API would take minutes. Appends its
figures to BENCHMARKS.md.

    .venv/bin/python -m bench.scaling [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

from bench.load import Call, Result, run_load
from bench.matrix import _pin, docservice
from docservice._proto.document import (
    GetDocumentRequest,
    ListDocumentsRequest,
    ListDocumentsResponse,
    UpdateDocumentRequest,
)
from docservice.core.model import format_timestamp, parse_timestamp, utc_now
from docservice.storage.history import first_content
from docservice.storage.sql.migrate import upgrade
from docservice.storage.sql.repository import create_engine
from docservice.storage.sql.schema import document_versions, documents
from tests.support.servers import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
BATCH = 5_000


_TITLES = random.Random(5)


def _row(document_id: str, version: int, author: str, now: str) -> dict[str, object]:
    moment = parse_timestamp(now)
    return {
        # Titles and creation times spread out, so that the title and create_time orders do
        # not degenerate into ties broken by id.
        "title": f"scale {_TITLES.getrandbits(40):010x}",
        "content": "x" * 1024,
        "status": 0,
        "author": author,
        "tags": [],
        "category": "",
        "comments": [],
        "created_at": moment - timedelta(seconds=_TITLES.randrange(10**7)),
        "updated_at": moment,
        "deleted_at": None,
        "version": version,
        "id": document_id,
    }


def _version_row(row: dict[str, object]) -> dict[str, object]:
    """The version row of a document row: its content stored as a keyframe (history.py)."""
    version = row["version"]
    assert isinstance(version, int)
    stored = first_content(str(row["content"]), version).fields()
    kept = {k: v for k, v in row.items() if k not in ("id", "content")}
    return {**kept, **stored, "document_id": row["id"]}


async def seed(url: str) -> tuple[str, str, str, str]:
    """Two authors with 1 000 and 100 000 documents; two documents with 1 and 10 000 versions."""
    engine = create_engine(url)
    await upgrade(engine)
    small, large = f"small-{uuid.uuid4().hex[:6]}", f"large-{uuid.uuid4().hex[:6]}"
    one, many = str(uuid.uuid4()), str(uuid.uuid4())
    async with engine.begin() as conn:
        for author, count in ((small, 1_000), (large, 100_000)):
            for start in range(0, count, BATCH):
                now = format_timestamp(utc_now())
                rows = [
                    _row(str(uuid.uuid4()), 1, author, now)
                    for _ in range(min(BATCH, count - start))
                ]
                await conn.execute(insert(documents), rows)
                await conn.execute(insert(document_versions), [_version_row(r) for r in rows])
        now = format_timestamp(utc_now())
        await conn.execute(
            insert(documents), [_row(one, 1, "history", now), _row(many, 10_000, "history", now)]
        )
        for start in range(1, 10_001, BATCH):
            await conn.execute(
                insert(document_versions),
                [
                    _version_row(_row(many, n, "history", now))
                    for n in range(start, min(10_001, start + BATCH))
                ],
            )
        await conn.execute(
            insert(document_versions),
            [_version_row(_row(one, 1, "history", now))],
        )
    # Fresh planner statistics, as autovacuum would make them.
    async with engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("ANALYZE"))
    await engine.dispose()
    return small, large, one, many


def interleaved(
    target: str, pairs: dict[str, list[Call]], rounds: int, seconds: float, concurrency: int
) -> dict[str, Result]:
    totals = {name: Result() for name in pairs}
    for _ in range(rounds):
        for name, calls in pairs.items():
            totals[name].merge(
                run_load(target, calls, seconds=seconds, concurrency=concurrency), sequential=True
            )
    return totals


async def _deep_token(target: str, author: str) -> str:
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/document.DocumentService/ListDocuments")
        token = ""
        for _ in range(10):  # the 11th page of 20
            raw = await call(
                bytes(ListDocumentsRequest(page_size=20, author=author, page_token=token))
            )
            token = ListDocumentsResponse.parse(raw).next_page_token
        return token


def main(args: argparse.Namespace) -> None:
    if _pin("1"):
        os.sched_setaffinity(0, {1})
    postgres = PostgresServer()
    postgres.start()
    lines = ["", "## Cost against size (PostgreSQL, no cache, interleaved)", ""]
    try:
        small, large, one, many = asyncio.run(seed(postgres.url))
        env = {"DB_TYPE": "postgres", "DATABASE_URL": postgres.url}
        with docservice(env, 1) as target:
            small_token = asyncio.run(_deep_token(target, small))
            large_token = asyncio.run(_deep_token(target, large))

            def get(i: str) -> list[Call]:
                return [("GetDocument", bytes(GetDocumentRequest(id=i)))]

            def update(i: str) -> list[Call]:
                return [
                    ("UpdateDocument", bytes(UpdateDocumentRequest(id=i, content=c)))
                    for c in ("even", "odd")
                ]

            def page(author: str, token: str = "") -> list[Call]:
                request = ListDocumentsRequest(page_size=20, author=author, page_token=token)
                return [("ListDocuments", bytes(request))]

            def ordered(author: str, order_by: str) -> list[Call]:
                request = ListDocumentsRequest(
                    page_size=20, filter=f'author = "{author}"', order_by=order_by
                )
                return [("ListDocuments", bytes(request))]

            orders = [
                (
                    f"ListDocuments first page, filter author = X, order_by {order_by}",
                    {
                        "1 000 documents": ordered(small, order_by),
                        "100 000 documents": ordered(large, order_by),
                    },
                    64,
                )
                for order_by in (
                    "update_time",
                    "create_time",
                    "create_time desc",
                    "title",
                    "title desc",
                )
            ]
            comparisons = [
                ("GetDocument", {"1 version": get(one), "10 000 versions": get(many)}, 64),
                (
                    "UpdateDocument (one document, 8 writers)",
                    {"1 version": update(one), "10 000 versions": update(many)},
                    8,
                ),
                (
                    "ListDocuments first page (counts the set)",
                    {"1 000 documents": page(small), "100 000 documents": page(large)},
                    64,
                ),
                (
                    "ListDocuments 11th page (from a token)",
                    {
                        "1 000 documents": page(small, small_token),
                        "100 000 documents": page(large, large_token),
                    },
                    64,
                ),
            ]
            if args.only_orders:
                comparisons = []
            for title, pairs, concurrency in [*comparisons, *orders]:
                totals = interleaved(target, pairs, args.rounds, args.seconds, concurrency)
                (a, ra), (b, rb) = totals.items()
                line = (
                    f"- {title}: {a} {ra.rate:.0f} req/s (p50 {ra.percentile(0.5):.1f} ms) "
                    f"vs {b} {rb.rate:.0f} req/s (p50 {rb.percentile(0.5):.1f} ms): "
                    f"**{rb.rate / ra.rate:.2f}x**"
                    f"{' ✗ non-OK statuses' if ra.errors or rb.errors else ''}"
                )
                print(line, flush=True)
                lines.append(line)
    finally:
        postgres.destroy()
    with (ROOT / "BENCHMARKS.md").open("a") as report:
        report.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only-orders", action="store_true", help="only the filtered, ordered first pages"
    )
    main(parser.parse_args())
