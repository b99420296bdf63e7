"""A small circuit breaker: stop calling a flaky dependency for a while, then probe it again."""

from __future__ import annotations

import logging
import time

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; while open, `allow()` is False until
    `cooldown` seconds have passed, then one probe is let through (half-open). A success closes it.

    Logs one warning when it opens and one info when it closes, never one per call.

    A *slow* answer (a timeout) counts as a failure only when nothing at all has succeeded for
    `quiet` seconds: a busy event loop delays every reply a little, a hung server stops them.
    """

    def __init__(
        self, name: str, threshold: int, cooldown: float, log: logging.Logger, quiet: float = 0.25
    ) -> None:
        self._name = name
        self._threshold = threshold
        self._cooldown = cooldown
        self._log = log
        self._failures = 0
        self._open_until: float | None = None
        self._quiet = quiet
        self._last_success = time.monotonic()

    def allow(self) -> bool:
        if self._open_until is None:
            return True
        if time.monotonic() >= self._open_until:
            self._open_until = time.monotonic() + self._cooldown  # one probe per cool-down
            return True
        return False

    def record_success(self) -> None:
        if self._open_until is not None:
            self._log.info("%s is back; using it again", self._name)
        self._failures = 0
        self._open_until = None
        self._last_success = time.monotonic()

    def record_failure(self, error: BaseException, *, slow_only: bool = False) -> None:
        if slow_only and time.monotonic() - self._last_success < self._quiet:
            return
        self._failures += 1
        if self._open_until is None and self._failures >= self._threshold:
            self._log.warning(
                "%s is failing (%r); bypassing it for %.1f s at a time",
                self._name,
                error,
                self._cooldown,
            )
        if self._failures >= self._threshold:
            self._open_until = time.monotonic() + self._cooldown
