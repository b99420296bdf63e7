"""Which MongoDB faults are worth another try, and the retry around single round trips."""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from docservice.storage.retries import retry_transient

__all__ = ["is_transient", "retry"]


def is_transient(exc: BaseException) -> bool:
    """Lost or refused connections (a pool reset cancels the operations in flight on it too:
    pymongo's `_OperationCancelled` is an AutoReconnect)."""
    return isinstance(exc, ConnectionFailure | ServerSelectionTimeoutError)


# Applied to the methods that each make one round trip, never to those that combine them: a
# retry never runs inside another.
retry = retry_transient(is_transient)
