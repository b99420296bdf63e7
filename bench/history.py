"""`make bench` history scenario: what diff and blame cost (issue 15's bounds).

1. The line diff (core/diff.py: patience diff over the split lines) on the
   adversarial inputs of tests/property/test_diff.py, at 256 KiB and at 1 MiB: the time of each
   and their ratio (about 4 when the cost is linear in the input, 16 when quadratic). Beside it,
   difflib's SequenceMatcher and diff-match-patch (Myers with a deadline) on the same inputs at
   64 KiB and 128 KiB, where they are still quick enough to time: their ratio shows what they
   would do at 1 MiB.
2. BlameDocument through a real server (SQLite, cache off), one call at a time: a document of
   10 KB edited 1 000 times against one edited 100 times, interleaved rounds. The bound: the
   1 000-version blame costs at most 12x the 100-version one.

    .venv/bin/python -m bench.history [--rounds 3] [--seconds 3] [--no-report]

Appends its figures to BENCHMARKS.md (unless --no-report).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fast_diff_match_patch
import grpc

from bench.load import CHANNEL_OPTIONS, SERVICE, run_load
from bench.matrix import ROOT, _pin, docservice
from docservice._proto.document import (
    BlameDocumentRequest,
    CreateDocumentRequest,
    Document,
    UpdateDocumentRequest,
)
from docservice.core.diff import line_ops, split_lines

KIB = 1024


def adversarial(size: int, seed: int = 7) -> dict[str, tuple[str, str]]:
    """Pairs of contents of about `size` bytes that make line diffs work hardest."""
    rng = random.Random(seed)

    def unique_lines(count: int) -> list[str]:
        return [f"{rng.getrandbits(64):016x}\n" for _ in range(count)]

    lines = size // 17
    numbered = unique_lines(lines)
    same = "x\n" * (size // 2)
    return {
        "every line different": ("".join(unique_lines(lines)), "".join(unique_lines(lines))),
        "every line moved (reversed)": ("".join(numbered), "".join(reversed(numbered))),
        "lines shuffled": ("".join(numbered), "".join(rng.sample(numbered, len(numbered)))),
        "one repeated line, one changed": (
            same,
            same[: size // 2] + "y\n" + same[size // 2 + 2 :],
        ),
        "two alternating lines, shifted": ("a\nb\n" * (size // 4), "b\na\n" * (size // 4)),
        "one small edit": (
            "".join(numbered),
            "".join([*numbered[: lines // 2], "edited\n", *numbered[lines // 2 + 1 :]]),
        ),
    }


def ours(old: str, new: str) -> None:
    """The line diff of DiffDocumentVersions (the hunks built after it cost what the changed
    lines weigh, and a diff too large for a response is refused before they are built)."""
    line_ops(split_lines(old), split_lines(new))


def with_difflib(old: str, new: str) -> None:
    old_lines, new_lines = split_lines(old), split_lines(new)
    difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()


def with_dmp(old: str, new: str) -> None:
    """diff-match-patch on the lines, each mapped to one character, with a 0.5 s deadline."""
    codes: dict[str, str] = {}

    def encode(text: str) -> str:
        return "".join(
            codes.setdefault(line, chr(0xE000 + len(codes) % 0x1000)) for line in split_lines(text)
        )

    fast_diff_match_patch.diff(
        encode(old), encode(new), timelimit=0.5, checklines=False, cleanup="No"
    )


def timed(diff: Callable[[str, str], None], old: str, new: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        diff(old, new)
        best = min(best, time.perf_counter() - started)
    return best


def diff_table() -> list[str]:
    small, large = adversarial(256 * KIB), adversarial(1024 * KIB)
    tiny, double = adversarial(16 * KIB), adversarial(32 * KIB)
    lines = [
        "| input | patience (ours) 256 KiB | 1 MiB | ratio (4 = linear) | difflib 16 → 32 KiB "
        "| ratio | diff-match-patch 16 → 32 KiB | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in small:
        a, b = timed(ours, *small[case]), timed(ours, *large[case])
        c, d = timed(with_difflib, *tiny[case], 1), timed(with_difflib, *double[case], 1)
        e, f = timed(with_dmp, *tiny[case], 1), timed(with_dmp, *double[case], 1)
        lines.append(
            f"| {case} | {_ms(a)} | {_ms(b)} | {b / a:.1f} | {_ms(c)} → {_ms(d)} | "
            f"{d / c:.1f} | {_ms(e)} → {_ms(f)} | {f / e:.1f} |"
        )
        print(lines[-1], flush=True)
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


# -- 2. blame through a real server ------------------------------------------------------------


async def _document_with_versions(target: str, versions: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = [f"line {n} {rng.getrandbits(32):08x}\n" for n in range(400)]  # about 10 KB
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(f"{SERVICE}CreateDocument")
        request = CreateDocumentRequest(title="blame", author="bench", content="".join(lines))
        document = Document.parse(await call(bytes(request), timeout=60))
        update = channel.unary_unary(f"{SERVICE}UpdateDocument")
        for version in range(2, versions + 1):
            at = rng.randrange(len(lines))
            lines[at] = f"edited in {version}\n"
            request = UpdateDocumentRequest(id=document.id, content="".join(lines))
            await update(bytes(request), timeout=60)
        return document.id


def blame_lines(rounds: int, seconds: float) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="docservice-blame-") as tmp:
        env = {"DB_TYPE": "sqlite", "DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}"}
        with docservice(env, 1) as target:
            ids = {
                count: asyncio.run(_document_with_versions(target, count, count))
                for count in (100, 1000)
            }
            calls = {
                count: [("BlameDocument", bytes(BlameDocumentRequest(id=document_id)))]
                for count, document_id in ids.items()
            }
            totals = {
                count: run_load(target, calls[count], seconds=0.5, concurrency=1) for count in ids
            }
            for _ in range(rounds):
                for count in ids:
                    result = run_load(
                        target, calls[count], seconds=seconds, concurrency=1, connections=1
                    )
                    totals[count].merge(result, sequential=True)
    small, large = totals[100], totals[1000]
    ratio = large.percentile(50) / small.percentile(50)
    return [
        f"- BlameDocument, 1 000 versions vs 100 (10 KB, one line edited per version, SQLite, "
        f"one call at a time, {rounds} interleaved rounds of {seconds:g} s): p50 "
        f"{large.percentile(50):.1f} vs {small.percentile(50):.1f} ms = "
        f"**{ratio:.1f}x** (bound: 12x; {large.errors + small.errors} errors)"
    ]


def main(args: argparse.Namespace) -> None:
    if _pin("1"):
        os.sched_setaffinity(0, {1})  # the client; the server is pinned to core 0
    header = ["", "## Diff and blame (`python -m bench.history`)", ""]
    print("\n".join(header), flush=True)
    table = diff_table()
    blame = blame_lines(args.rounds, args.seconds)
    lines = [
        *header,
        "The line diff on adversarial inputs (best of 3, in process; difflib and "
        "diff-match-patch once each, at the sizes where they still finish):",
        "",
        *table,
        "",
        *blame,
    ]
    print("\n".join(blame), flush=True)
    if args.report:
        with (ROOT / "BENCHMARKS.md").open("a") as report:
            report.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-report", dest="report", action="store_false")
    main(parser.parse_args())
