"""What this process owes Redis after write-throughs that did not reach it, and the repair.

The invariant (see the consistency scheme in repository.py): while a committed write may be
missing from Redis, this process reads nothing from the cache. Before its next call to Redis it
writes those documents through again (with SET_IF_NEWER: a write, not a delete, so that a late
store of an older version is still refused) and moves list pages to a new generation. When too
much is owed to hold, it forgets the writes and keeps away from Redis until every entry written
before them has expired.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["Repair"]

MAX_OWED_DOCUMENTS = 10_000
MAX_OWED_BYTES = 64 * 1024 * 1024


class Repair:
    """The owed write-throughs, by document key, and the repair that settles them."""

    def __init__(
        self,
        redis: Redis,
        *,
        set_if_newer: AsyncScript,
        bump_generation: AsyncScript,
        generation_key: str,
        ttl_seconds: int,
    ) -> None:
        self._redis = redis
        self._set_if_newer = set_if_newer
        self._bump_generation = bump_generation
        self._generation_key = generation_key
        self._ttl = ttl_seconds
        # SET_IF_NEWER arguments [version, sealed bytes, deleted flag, ttl] by document key.
        self._owed: dict[str, list[Any]] = {}
        self._owed_bytes = 0
        self._failures = 0  # write-throughs failed so far: tells a repair of failures meanwhile
        # Read on every cache call, so kept as plain attributes rather than computed. `needed`
        # holds from a failed write-through until a repair begun after it has finished.
        self.needed = False
        self.bypass_until = 0.0

    def write_through_failed(self, key: str, args: list[Any]) -> None:
        """Remember a committed write that Redis may not have (newest version per key)."""
        self.needed = True
        self._failures += 1
        known = self._owed.get(key)
        if known is None or known[0] < args[0]:
            self._owed_bytes += len(args[1]) - (len(known[1]) if known is not None else 0)
            self._owed[key] = args
        if len(self._owed) > MAX_OWED_DOCUMENTS or self._owed_bytes > MAX_OWED_BYTES:
            # Too much to hold for a repair: wait until every entry written before has expired.
            self._owed.clear()
            self._owed_bytes = 0
            self.bypass_until = time.monotonic() + self._ttl

    async def run(self) -> None:
        """Write through what is owed, then move lists to a new generation.

        Raises what Redis raises; whatever was owed stays owed then.
        """
        failures, owed = self._failures, list(self._owed.items())
        if owed:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, args in owed:
                    await self._set_if_newer(keys=[key], args=args, client=pipe)
                await pipe.execute()
        await self._bump_generation(keys=[self._generation_key])
        for key, args in owed:
            if self._owed.get(key) is args:  # not replaced by a newer failure meanwhile
                del self._owed[key]
                self._owed_bytes -= len(args[1])
        if self._failures == failures:  # else that failure needs a repair of its own
            self.needed = False
