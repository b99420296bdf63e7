"""Side-by-side A/B of two source trees: the same scenario against a server from each, run
interleaved (A, B, A, B, ...) on one PostgreSQL and one Redis so that machine noise hits both.

    .venv/bin/python -m bench.ab --base 2533aed [--candidate .] --backend postgres+redis \
        --scenario get --rounds 6 --seconds 4

`--base`/`--candidate` name a git revision (checked out into a temporary worktree) or a
directory; both servers run with this interpreter, importing `docservice` from their tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench.load import Result, prepare, run_load
from bench.matrix import ROOT, _pin, docservice
from tests.support.servers import PostgresServer, RedisServer


@contextmanager
def source_tree(spec: str) -> Iterator[Path]:
    path = Path(spec)
    if path.is_dir():
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="docservice-ab-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), spec],
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)])


def main(args: argparse.Namespace) -> None:
    if _pin("1"):
        os.sched_setaffinity(0, {1})  # the client; servers are pinned to core 0
    with ExitStack() as stack:
        postgres, redis = PostgresServer(), RedisServer()
        postgres.start()
        stack.callback(postgres.destroy)
        redis.start()
        stack.callback(redis.kill)
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        backend, _, cache = args.backend.partition("+")
        env = {"DB_TYPE": backend}
        if cache:
            env["REDIS_URL"] = redis.url
        targets: dict[str, str] = {}
        pids: dict[str, list[int]] = {}
        for name, spec in (("base", args.base), ("candidate", args.candidate)):
            tree = stack.enter_context(source_tree(spec))
            # A database each: the two trees may migrate the schema differently.
            if backend == "postgres":
                database_url = asyncio.run(_create_database(postgres.url, f"ab_{name}"))
            else:
                database_url = f"sqlite+aiosqlite:///{data}/ab-{name}.db"
            prefix = {"CACHE_KEY_PREFIX": f"ab-{name}:", "DATABASE_URL": database_url}
            pids[name] = []
            targets[name] = stack.enter_context(
                docservice({**env, **prefix}, 1, cwd=tree, pids=pids[name])
            )
        calls = {name: asyncio.run(prepare(t, args.scenario)) for name, t in targets.items()}
        totals = {name: Result() for name in targets}
        cpu = dict.fromkeys(targets, 0.0)
        for n in range(args.rounds):
            for name, target in targets.items():
                before = _cpu_seconds(pids[name][0])
                result = run_load(target, calls[name], seconds=args.seconds)
                cpu[name] += _cpu_seconds(pids[name][0]) - before
                totals[name].merge(result, sequential=True)
                print(f"round {n + 1} {name:9} {result.summary()}", flush=True)
    base, candidate = totals["base"], totals["candidate"]
    print(f"{args.scenario} on {args.backend}, {args.rounds} interleaved rounds:")
    for name, total in totals.items():
        per_call = cpu[name] / max(1, total.calls) * 1e6
        print(f"  {name:9} {total.summary()}  server CPU {per_call:.0f} us/call")
    print(f"  candidate / base: {candidate.rate / base.rate:.2f}x req/s", end="")
    base_cpu = cpu["base"] / max(1, base.calls)
    candidate_cpu = cpu["candidate"] / max(1, candidate.calls)
    print(f", {candidate_cpu / base_cpu:.2f}x server CPU per call" if base_cpu else "")


async def _create_database(url: str, name: str) -> str:
    """A new database on the server of `url`; its SQLAlchemy URL."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(url).set(database=name).render_as_string(False)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), less noisy than req/s on a
    shared machine: what the server spent, not what it was given."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--candidate", default=".")
    parser.add_argument("--backend", default="postgres+redis")
    parser.add_argument("--scenario", default="get")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    main(parser.parse_args())
