"""Bounded retries of transient storage faults, shared by every backend."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from docservice.errors import Unavailable

__all__ = ["retry_transient"]

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

ATTEMPTS = 3
BUDGET_SECONDS = 1.5


def retry_transient(
    is_transient: Callable[[BaseException], bool],
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Retry a storage call on transient faults (a few attempts, < 2 s in all).

    A fault that outlives the budget becomes `Unavailable`, so callers get UNAVAILABLE rather
    than a hang or INTERNAL. The wrapped call must be safe to repeat: writes are compare-and-set,
    and a fault while committing is raised as Unavailable inside the call, never retried here.
    """

    def decorate(
        func: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            retrying = AsyncRetrying(
                retry=retry_if_exception(is_transient),
                stop=stop_after_attempt(ATTEMPTS) | stop_after_delay(BUDGET_SECONDS),
                wait=wait_exponential(multiplier=0.05, max=0.5),
            )
            try:
                return await retrying(func, *args, **kwargs)
            except RetryError as exc:
                cause = exc.last_attempt.exception()
                log.warning("storage unavailable after %d attempts: %r", ATTEMPTS, cause)
                raise Unavailable("the document store is unavailable, try again later") from cause

        return wrapper

    return decorate
