"""Call deadlines (the `grpc-timeout` header).

grpclib answers a malformed `grpc-timeout` with UNKNOWN before any of our code runs, and one that
has expired by the time its timer starts (`1n`, `1u`) with UNKNOWN "Internal Server Error";
neither call gets a log line or a metric. So for DocumentService calls `compat`'s request hook
asks `grpclib_enforces`: a well-formed timeout of at least `MIN_GRPCLIB_TIMEOUT` stays with
grpclib (its timer cancels the handler; the call's log line then says DEADLINE_EXCEEDED), and
any other is taken away from grpclib and enforced here: a malformed value is INVALID_ARGUMENT
naming `grpc-timeout`, a tiny one runs under `Deadline.scope`. Either way the deadline covers the
whole call, response included, inside the call's log line and metric.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from docservice.core.errors import InvalidArgument
from docservice.grpc.errors import invalid_argument

__all__ = ["HEADER", "Deadline", "parse"]

HEADER = "grpc-timeout"
# The gRPC spec: TimeoutValue is 1 to 8 ASCII digits, then one unit letter.
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# grpclib computes the deadline and starts its timer a few statements apart, with no await in
# between, but a garbage-collector pause can fall there: a timeout shorter than that pause
# expires first and grpclib answers UNKNOWN. Below this margin the servicer enforces it.
MIN_GRPCLIB_TIMEOUT = 0.1


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a call must be over, on the monotonic clock."""

    at: float

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[None]:  # only for deadlines grpclib does not enforce
        """Run the body until the deadline; DEADLINE_EXCEEDED if it passes (or has passed)."""
        if self.expired():
            raise GRPCError(Status.DEADLINE_EXCEEDED, "the deadline passed before the call began")
        try:
            async with asyncio.timeout_at(_loop_time(self.at)):
                yield
        except TimeoutError:
            raise GRPCError(Status.DEADLINE_EXCEEDED, "deadline exceeded") from None


def grpclib_enforces(value: str) -> bool:
    """Whether grpclib's own deadline handling is right for this `grpc-timeout` value."""
    match = _TIMEOUT.fullmatch(value)
    return match is not None and int(match[1]) * _SECONDS[match[2]] >= MIN_GRPCLIB_TIMEOUT


def parse(value: str, received_at: float) -> Deadline:
    """The deadline a `grpc-timeout` value sets for a call received at `received_at`."""
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        raise invalid_argument(
            InvalidArgument.of(HEADER, f"{value[:40]!r} is not a timeout such as '500m' or '10S'")
        )
    amount, unit = match.groups()
    return Deadline(received_at + int(amount) * _SECONDS[unit])


def _loop_time(monotonic_at: float) -> float:
    """A monotonic instant on the running loop's clock (the same clock unless a loop says not)."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_at - time.monotonic())
