"""The `docservice` command end to end: real subprocesses against a live server (SQLite)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.servers import free_port

START_TIMEOUT = 30.0
CALL_TIMEOUT = 20.0


def _env(**extra: str) -> dict[str, str]:
    prefixes = ("DB_", "DATABASE_", "GRPC_", "REDIS_", "DOCSERVICE_", "COLUMNS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a `python -m docservice` process on a fresh SQLite file."""
    tmp = tmp_path_factory.mktemp("cli")
    port = free_port()
    env = _env(
        DB_TYPE="sqlite",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}",
        GRPC_PORT=str(port),
    )
    with (tmp / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "docservice"], cwd=tmp, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, (tmp / "server.log").read_text()
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait(10)


def cli(target: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docservice.cli", *args],
        env=_env(DOCSERVICE_TARGET=target),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
    )


def ok_json(target: str, *args: str, stdin: str = "") -> Any:
    result = cli(target, *args, "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def failure(target: str, *args: str) -> str:
    result = cli(target, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def author() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def test_create_get_update_and_history(target: str, author: str) -> None:
    fields = "--tag a --tag b --category notes --content hello --status published"
    doc = ok_json(target, "create", "--title", "Field notes", "--author", author, *fields.split())
    assert (doc["title"], doc["tags"], doc["status"]) == ("Field notes", ["a", "b"], "PUBLISHED")
    assert doc["version"] == "1"  # int64 is a string in proto3 JSON

    shown = cli(target, "get", doc["id"])
    assert shown.returncode == 0 and "Field notes" in shown.stdout and doc["id"] in shown.stdout
    assert ok_json(target, "get", doc["id"]) == doc

    updated = ok_json(target, "update", doc["id"], "--title", "Notes", "--clear-tags")
    assert (updated["title"], updated["tags"], updated["version"]) == ("Notes", [], "2")
    assert (updated["category"], updated["content"]) == ("notes", "hello")  # not in the mask

    stale = failure(target, "update", doc["id"], "--title", "x", "--etag", doc["etag"])
    assert stale.startswith("error: FAILED_PRECONDITION: ")

    reverted = ok_json(target, "revert", doc["id"], "1", "--etag", updated["etag"])
    assert (reverted["title"], reverted["tags"]) == ("Field notes", ["a", "b"])
    assert reverted["version"] == "3"

    versions = ok_json(target, "history", doc["id"])["versions"]
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    table = cli(target, "history", doc["id"])
    assert table.returncode == 0 and "Notes" in table.stdout


def test_diff_blame_and_history_show_who_what_and_why(target: str, author: str) -> None:
    doc = ok_json(
        target, "create", "--title", "Draft", "--author", author,
        "--content-file", "-", "-m", "first cut", stdin="alpha\nbeta\ngamma\n",
    )  # fmt: skip
    edited = ok_json(
        target, "update", doc["id"], "--content-file", "-", "--title", "Final",
        "--message", "tightened", stdin="alpha\nBETA\ngamma\n",
    )  # fmt: skip
    assert edited["version"] == "2"

    found = ok_json(target, "diff", doc["id"])
    assert (found["fromVersion"], found["toVersion"]) == ("1", "2")
    [title] = found["fieldChanges"]
    assert (title["field"], title["oldValue"], title["newValue"]) == ("title", "Draft", "Final")
    assert "-beta\n+BETA\n" in found["unifiedDiff"]
    shown = cli(target, "diff", doc["id"], "1", "2")
    assert shown.returncode == 0, shown.stderr
    assert "title: Draft -> Final" in shown.stdout and "+BETA" in shown.stdout
    assert "no changes" in cli(target, "diff", doc["id"], "2", "2").stdout

    blamed = ok_json(target, "blame", doc["id"])
    assert [(r["startLine"], r["version"]) for r in blamed["ranges"]] == [
        ("1", "1"),
        ("2", "2"),
        ("3", "1"),
    ]
    table = cli(target, "blame", doc["id"])
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if line.strip()]
    assert [(row[0], row[-1]) for row in rows] == [("1", "alpha"), ("2", "BETA"), ("1", "gamma")]

    versions = ok_json(target, "history", doc["id"])["versions"]
    assert [(v["changeKind"], v["changeMessage"]) for v in versions] == [
        ("CREATED", "first cut"),
        ("UPDATED", "tightened"),
    ]
    history = cli(target, "history", doc["id"])
    assert "created" in history.stdout and "tightened" in history.stdout


def test_content_from_stdin_delete_and_restore(target: str, author: str) -> None:
    text = "line one\nline two ünïcode\n"
    doc = ok_json(
        target, "create", "--title", "Piped", "--author", author, "--content-file", "-", stdin=text
    )
    assert doc["content"] == text

    deleted = cli(target, "delete", doc["id"], "--etag", doc["etag"])
    assert deleted.returncode == 0, deleted.stderr
    gone = failure(target, "get", doc["id"])
    assert gone.startswith("error: NOT_FOUND: ") and doc["id"] in gone

    restored = ok_json(target, "restore", doc["id"])
    assert (restored["isDeleted"], restored["version"]) == (False, "3")


def test_list_with_a_filter_an_order_and_the_basic_view(target: str) -> None:
    author = f"cli-{uuid.uuid4().hex[:8]}"
    for title in ("pear", "apple", "fig"):
        ok_json(target, "create", "--title", title, "--author", author, "--content", "text")
    where = f'author = "{author}" AND title != fig'
    found = ok_json(target, "list", "--filter", where, "--order-by", "title", "--basic")
    assert [(d["title"], d["content"]) for d in found["documents"]] == [("apple", ""), ("pear", "")]
    bad = failure(target, "list", "--filter", "title ==")
    assert bad.startswith("error: INVALID_ARGUMENT: ") and "position" in bad


def test_search_ranks_highlights_and_filters(target: str) -> None:
    word = "w" + uuid.uuid4().hex[:10]
    author = f"cli-{uuid.uuid4().hex[:8]}"
    ok_json(target, "create", "--title", f"{word} in the title", "--author", author)
    ok_json(target, "create", "--title", "plain", "--author", "other", "--content", f"a {word}")
    found = ok_json(target, "search", word)
    assert [r["document"]["title"] for r in found["results"]] == [f"{word} in the title", "plain"]
    narrowed = ok_json(target, "search", word, "--filter", f'author = "{author}"', "--basic")
    assert [r["document"]["author"] for r in narrowed["results"]] == [author]
    table = cli(target, "search", f"{word} -title")
    assert table.returncode == 0 and "plain" in table.stdout and "in the title" not in table.stdout
    bad = failure(target, "search", '"open')
    assert bad.startswith("error: INVALID_ARGUMENT: query: ")


def test_list_filters_and_pages(target: str) -> None:
    author = f"lister-{uuid.uuid4().hex[:8]}"
    for title in ("one", "two", "three"):
        assert cli(target, "create", "--title", title, "--author", author).returncode == 0
    page = ["list", "--author", author, "--page-size", "2"]
    first = ok_json(target, *page)
    assert [d["title"] for d in first["documents"]] == ["three", "two"]
    assert first["totalSize"] == 3 and first["nextPageToken"]
    rest = ok_json(target, *page, "--page-token", first["nextPageToken"])
    assert [d["title"] for d in rest["documents"]] == ["one"] and rest["nextPageToken"] == ""
    table = cli(target, "list", "--author", author)
    assert table.returncode == 0 and "three" in table.stdout and "3 in total" in table.stdout


def test_errors_are_one_line_with_the_status(target: str) -> None:
    assert failure(target, "get", "not-a-uuid").startswith("error: INVALID_ARGUMENT: ")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
        down = failure(closed, "get", str(uuid.uuid4()))
    assert down.startswith(f"error: UNAVAILABLE: cannot connect to {closed}")
    usage = cli(target, "update", str(uuid.uuid4()))  # no field given
    assert usage.returncode == 2 and "nothing to update" in usage.stderr


def test_health(target: str) -> None:
    result = cli(target, "health")
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING"), result.stderr


def test_bench_reports_a_clean_run_against_the_server_and_the_ceiling(target: str) -> None:
    for args in (["get", "--target", target], ["--ceiling"]):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench",
                *args,
                "--seconds",
                "0.5",
                "--concurrency",
                "4",
                "--connections",
                "1",
                "--json",
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["calls"] > 0 and report["req_per_s"] > 0
        assert report["non_ok"] == {}
        assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]


def test_events_and_watch_print_the_feed_and_where_to_resume(target: str) -> None:
    """`events` lists the feed; `watch` from the log's start prints the same events, stops
    after --count, and prints the token that continues right after the last one."""
    author = f"cli-{uuid.uuid4().hex[:8]}"  # of this test alone: the filter sees no other
    first = ok_json(target, "create", "--title", "w1", "--author", author, "--content", "a")
    ok_json(target, "update", first["id"], "--content", "b")
    where = f'author = "{author}"'
    listed = ok_json(target, "events", "--filter", where)["events"]
    assert [(e["documentId"], e["version"], e["kind"]) for e in listed] == [
        (first["id"], "1", "CREATED"),
        (first["id"], "2", "UPDATED"),
    ]
    prefix, log_id, _ = listed[0]["resumeToken"].split(".")
    start = f"{prefix}.{log_id}.0"
    result = cli(target, "watch", "--filter", where, "--from", start, "--count", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == listed
    assert result.stderr.strip() == f"resume with: --from {listed[-1]['resumeToken']}"
    human = cli(target, "watch", "--filter", where, "--from", start, "--count", "1")
    assert human.returncode == 0, human.stderr
    assert f"{first['id']}@1" in human.stdout and "created" in human.stdout
