"""Bounded retries of transient storage faults, shared by every backend."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from docservice.core.errors import Unavailable

__all__ = ["retry_transient", "stats"]

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

ATTEMPTS = 3
BUDGET_SECONDS = 1.5
FIRST_WAIT_SECONDS = 0.05


@dataclass
class RetryStats:
    retries: int = 0
    unavailable: int = 0


stats = RetryStats()  # process-wide, exported as metrics


def _count_retry(_state: RetryCallState) -> None:
    stats.retries += 1


def retry_transient(
    is_transient: Callable[[BaseException], bool],
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Retry a storage call on transient faults (a few attempts, < 2 s in all).

    A fault that outlives the budget becomes `Unavailable`, so callers get UNAVAILABLE rather
    than a hang or INTERNAL. The wrapped call must be safe to repeat: writes are compare-and-set,
    and a fault while committing is raised as Unavailable inside the call, never retried here.

    Wrap the lowest-level I/O only (one round trip, one transaction), never a function that
    calls another wrapped one: nested, the attempts multiply and the budget no longer holds.
    """

    def decorate(
        func: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:  # the common case costs one call, no retry machinery
                return await func(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                stats.retries += 1
            await asyncio.sleep(FIRST_WAIT_SECONDS)
            retrying = AsyncRetrying(
                retry=retry_if_exception(is_transient),
                stop=stop_after_attempt(ATTEMPTS - 1) | stop_after_delay(BUDGET_SECONDS),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                before_sleep=_count_retry,
            )
            try:
                return await retrying(func, *args, **kwargs)
            except RetryError as exc:
                cause = exc.last_attempt.exception()
                stats.unavailable += 1
                log.warning("storage unavailable after %d attempts: %r", ATTEMPTS, cause)
                raise Unavailable("the document store is unavailable, try again later") from cause

        return wrapper

    return decorate
