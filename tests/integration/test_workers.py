"""WORKERS=2: two server processes share the port; a dead worker is replaced; SIGTERM stops all."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from grpclib.client import Channel

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    GetDocumentRequest,
    ListDocumentsRequest,
)
from tests.support.servers import free_port


def _children(pid: int) -> set[int]:
    """The worker processes of the supervisor `pid` (not multiprocessing's resource tracker)."""
    workers = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            workers.add(int(child))
    return workers


async def _wait_for(condition: object, what: str) -> None:
    for _ in range(300):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _serving(port: int) -> bool:
    channel = Channel("127.0.0.1", port)
    try:
        await DocumentServiceStub(channel).create_document(
            CreateDocumentRequest(title="ping", author="w"), timeout=2
        )
        return True
    except OSError:
        return False
    finally:
        channel.close()


async def test_two_workers_share_the_port_and_are_supervised(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_"))},
        "GRPC_PORT": str(port),
        "WORKERS": "2",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    }
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "docservice", env=env, cwd=tmp_path
    )
    try:
        await _wait_for(lambda: len(_children(supervisor.pid)) == 2, "two workers")
        for _ in range(300):
            if await _serving(port):
                break
            await asyncio.sleep(0.05)
        first = _children(supervisor.pid)

        # Many connections: the kernel spreads them over both workers; all see one database.
        channels = [Channel("127.0.0.1", port) for _ in range(8)]
        stubs = [DocumentServiceStub(c) for c in channels]
        created = await asyncio.gather(
            *(
                s.create_document(CreateDocumentRequest(title=f"d{i}", author="w"), timeout=5)
                for i, s in enumerate(stubs)
            )
        )
        fetched = await asyncio.gather(
            *(
                stubs[(i + 1) % len(stubs)].get_document(GetDocumentRequest(id=d.id), timeout=5)
                for i, d in enumerate(created)
            )
        )
        assert [f.document.id for f in fetched] == [d.id for d in created]
        # A page token issued through one connection (worker) is good on all the others: the
        # workers sign with the supervisor's key.
        for i, stub in enumerate(stubs):
            first_page = await stub.list_documents(
                ListDocumentsRequest(author="w", page_size=1), timeout=5
            )
            following = await stubs[(i + 1) % len(stubs)].list_documents(
                ListDocumentsRequest(
                    author="w", page_size=1, page_token=first_page.next_page_token
                ),
                timeout=5,
            )
            assert len(following.documents) == 1
        for channel in channels:
            channel.close()

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        await _wait_for(
            lambda: len(_children(supervisor.pid)) == 2 and victim not in _children(supervisor.pid),
            "the killed worker to be replaced",
        )
        assert await _serving(port)

        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(supervisor.wait(), 30) == 0
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
