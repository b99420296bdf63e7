"""Counts calls in progress so that shutdown can refuse new calls and wait for the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from grpclib.const import Status
from grpclib.exceptions import GRPCError

__all__ = ["InFlight"]


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def track(self) -> Iterator[None]:
        if self._draining:
            raise GRPCError(Status.UNAVAILABLE, "the server is shutting down")
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drain(self, grace_seconds: float) -> bool:
        """Refuse new calls from now on; wait up to `grace_seconds` for running ones.

        Returns True if every call finished in time.
        """
        self._draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            return False
        return True
