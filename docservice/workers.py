"""WORKERS=N: N server processes sharing one port (SO_REUSEPORT), supervised by this process.

The kernel spreads *connections* over the workers, not calls: one client with one HTTP/2
connection is served by one worker. The supervisor migrates once, starts the workers, restarts
any that dies, and on SIGTERM/SIGINT asks every worker to drain and waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
import signal
import threading
from multiprocessing.process import BaseProcess
from types import FrameType

from pydantic import SecretStr

from docservice.app import make_repository, serve
from docservice.grpc.telemetry import configure_logging
from docservice.settings import Settings

__all__ = ["supervise", "worker_count"]

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5


def worker_count(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 1


def _run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


async def _migrate(settings: Settings) -> None:
    repository = make_repository(settings)
    try:
        await repository.migrate()
    finally:
        await repository.close()


def supervise(settings: Settings) -> None:
    count = worker_count(settings)
    if settings.page_token_secret is None:  # one key for all workers: a client may reconnect
        settings = settings.model_copy(
            update={"page_token_secret": SecretStr(secrets.token_urlsafe(32))}
        )
    if settings.migrate_on_start:
        asyncio.run(_migrate(settings))
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start(index: int) -> BaseProcess:
        update: dict[str, object] = {"migrate_on_start": False}
        if settings.metrics_port:  # one metrics endpoint per worker: port, port + 1, ...
            update["metrics_port"] = settings.metrics_port + index
        process = context.Process(
            target=_run_worker,
            args=(settings.model_copy(update=update),),
            name=f"docservice-worker-{index}",
        )
        process.start()
        return process

    workers = [start(i) for i in range(count)]
    log.info("supervising %d workers on port %d", count, settings.grpc_port)
    while not stop.wait(POLL_SECONDS):
        for index, worker in enumerate(workers):
            if not worker.is_alive():
                log.warning("worker %d exited with %s; restarting it", index, worker.exitcode)
                workers[index] = start(index)
    log.info("stopping %d workers", count)
    for worker in workers:
        worker.terminate()  # SIGTERM: each worker drains its running calls
    for worker in workers:
        worker.join(settings.shutdown_grace_seconds + 5)
        if worker.is_alive():
            worker.kill()
            worker.join()
