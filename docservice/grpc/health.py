"""gRPC health checking and server reflection, both from grpclib.

Health is SERVING only while the database answers: a background task pings it every
HEALTH_CHECK_INTERVAL_SECONDS (never per call) and flips one status shared by the overall ("")
and `document.DocumentService` entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from google.protobuf import descriptor_pool
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection

from docservice._proto.document import DocumentServiceBase
from docservice._proto.google_proto_descriptor_pool import default_google_proto_descriptor_pool
from docservice.core.repository import DocumentRepository

__all__ = ["DatabaseWatch", "reflection_services"]

log = logging.getLogger(__name__)


class DatabaseWatch:
    """Pings the repository periodically and keeps `status` (and so Health) in step."""

    def __init__(self, repository: DocumentRepository, interval: float) -> None:
        self.status = ServiceStatus()
        self._serving: bool | None = None  # None until the first check
        self._repository = repository
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def health_service(self, servicer: DocumentServiceBase) -> Health:
        return Health({servicer: [self.status]})

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(max(self._interval, 2.0)):
                await self._repository.ping()
        except Exception as exc:
            if self._serving is not False:
                log.warning("database check failed (%r): NOT_SERVING", exc)
            self._set(False)
            return False
        if self._serving is False:
            log.info("database answers again: SERVING")
        self._set(True)
        return True

    def _set(self, serving: bool) -> None:
        self._serving = serving
        self.status.set(serving)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Pools:
    """Our descriptors first (embedded by betterproto2), then the default pool (health,
    reflection): grpclib's reflection asks one pool, and ours cannot join the default one
    without clashing with other copies of document.proto loaded in the same process."""

    def __init__(self, *pools: Any) -> None:
        self._pools = pools

    def __getattr__(self, name: str) -> Any:
        def find(*args: Any) -> Any:
            error: Exception | None = None
            for pool in self._pools:
                try:
                    return getattr(pool, name)(*args)
                except KeyError as exc:
                    error = exc
            assert error is not None
            raise error

        return find


def reflection_services(services: list[Any]) -> list[Any]:
    pools = _Pools(default_google_proto_descriptor_pool, descriptor_pool.Default())
    return list(ServerReflection.extend(services, pool=pools))
