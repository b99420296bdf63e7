"""`CachedDocumentRepository`: a Redis read-through cache around any DocumentRepository.

Consistency scheme (read-your-writes for every client while Redis is healthy):

* Documents live at ``{prefix}d:{id}`` as a hash ``{v: version, b: protobuf bytes}``. Every
  store goes through ``SET_IF_NEWER``, a Lua script that replaces an entry only with a higher
  version. Writers store the new state right after their commit (write-through). So a reader
  that missed, read an old row and stores it late cannot overwrite the newer state a writer
  stored meanwhile: the classic invalidate-then-stale-refill race cannot happen.
* List pages live at ``{prefix}l:{generation}:{hash of every query parameter}``. Every write
  increments ``{prefix}lgen`` after its commit, in the same script as its write-through. A reader
  reads the generation *before* the database; a page it stores late lands under a generation
  nobody reads any more. Invalidation is one INCR: no SCAN, no per-key bookkeeping. A missing
  counter (Redis restarted or evicted it) starts at Redis's clock in microseconds, never at 0,
  so that no generation number is used twice.
* Version snapshots never change: ``{prefix}v:{id}:{n}`` with a long TTL, never invalidated. A
  history page is served from them when the cached document says which versions exist.

Every read is one of: a hit; a miss (no entry, or garbage under the key: then an error too),
filled from the database; or skipped (Redis unusable), served by the database alone.

Redis trouble never fails a request: every call has a short timeout, errors fall back to the
database, and a circuit breaker skips Redis for a cool-down after repeated failures (timeouts
count only while no reply at all arrives: a loaded event loop makes replies late). A write is
acknowledged once the database committed, whatever Redis does. If its write-through cannot reach
Redis, this process stops reading from the cache until it has written those documents through
again and bumped the list generation (or, after very many such writes, until every entry written
before the outage has expired); repair.py keeps that account. The repair writes rather than
deletes: a reader that read an older version from the database before the write may still store
it, and only a newer entry in place refuses it. Other processes sharing the Redis learn nothing
of this: a reader there may see the older entry until this process repairs it, at its next call
that reaches Redis. Counters of hits, misses, errors and bypasses are kept in `stats`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from docservice._proto.document import Document
from docservice.core.feed import EventPage, FeedPosition
from docservice.core.repository import (
    Change,
    DocumentRepository,
    EncodedDocument,
    ListQuery,
    Page,
    SearchPage,
    SearchQuery,
    Snapshot,
)
from docservice.storage.cache.breaker import CircuitBreaker
from docservice.storage.cache.entries import (
    GarbageEntry,
    document_entry,
    pack_page,
    pack_snapshot,
    unpack_document,
    unpack_encoded,
    unpack_page,
    unpack_snapshot,
    unpack_snapshots,
)
from docservice.storage.cache.repair import Repair
from docservice.storage.cache.scripts import (
    BUMP_GENERATION,
    READ_LIST,
    READ_VERSIONS,
    SET_IF_NEWER,
    WRITE_THROUGH,
)

__all__ = ["CacheStats", "CachedDocumentRepository", "connect_redis"]

log = logging.getLogger(__name__)
T = TypeVar("T")

VERSION_TTL_SECONDS = 7 * 24 * 3600


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypasses: int = 0


class _ConnectionPool(ConnectionPool):
    # redis-py 8 wraps get_connection in a deprecation check that inspects the arguments of
    # every command (a visible share of a cached GetDocument's server CPU); we never pass the
    # deprecated arguments, so take the undecorated method.
    get_connection = getattr(
        ConnectionPool.get_connection, "__wrapped__", ConnectionPool.get_connection
    )


def connect_redis(url: str, timeout_seconds: float) -> Redis:
    """A client that gives up fast: short timeouts and no retries of its own."""
    pool = _ConnectionPool.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


class _NoReply(Enum):
    SKIPPED = "Redis was not asked (breaker open) or did not answer"
    GARBAGE = "Redis answered with an error about the data under a key (e.g. its type)"


SKIPPED, GARBAGE = _NoReply.SKIPPED, _NoReply.GARBAGE


class _Miss(NamedTuple):
    """A read the cache did not answer. `fill`: Redis answered, so the caller stores what the
    database returns; `reply`: what Redis answered."""

    fill: bool
    reply: object = None


_SKIP = _Miss(fill=False)


class CachedDocumentRepository:
    def __init__(
        self,
        inner: DocumentRepository,
        redis: Redis,
        *,
        prefix: str,
        ttl_seconds: int,
        timeout_seconds: float,
        breaker: CircuitBreaker,
    ) -> None:
        self._inner = inner
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._breaker = breaker
        self._generation_key = f"{prefix}lgen"
        self._set_if_newer = redis.register_script(SET_IF_NEWER)
        self._write_through = redis.register_script(WRITE_THROUGH)
        self._read_list = redis.register_script(READ_LIST)
        self._read_versions = redis.register_script(READ_VERSIONS)
        self._repair = Repair(
            redis,
            set_if_newer=self._set_if_newer,
            bump_generation=redis.register_script(BUMP_GENERATION),
            generation_key=self._generation_key,
            ttl_seconds=ttl_seconds,
        )
        self.stats = CacheStats()

    @property
    def inner(self) -> DocumentRepository:
        return self._inner

    # -- reads -------------------------------------------------------------------------------

    async def get(self, document_id: str, *, fresh: bool = False) -> Document | None:
        if fresh:
            return await self._inner.get(document_id, fresh=True)
        key = self._document_key(document_id)
        found = await self._lookup(lambda redis: redis.hget(key, "b"), unpack_document)
        if not isinstance(found, _Miss):
            return found
        return await self._get_and_fill(document_id, found)

    async def get_encoded(self, document_id: str) -> EncodedDocument | None:
        """The cached bytes as they are, with no decoding: the GetDocument fast path."""
        key = self._document_key(document_id)
        found = await self._lookup(lambda redis: redis.hmget(key, "b", "x"), unpack_encoded)
        if not isinstance(found, _Miss):
            return found
        document = await self._get_and_fill(document_id, found)
        return None if document is None else EncodedDocument(bytes(document), document.is_deleted)

    async def _get_and_fill(self, document_id: str, miss: _Miss) -> Document | None:
        document = await self._inner.get(document_id)
        if miss.fill and document is not None:
            await self._store_document(document)
        return document

    async def list_page(self, query: ListQuery) -> Page:
        query_hash = hashlib.blake2b(repr(query).encode(), digest_size=16).hexdigest()
        page_prefix = f"{self._prefix}l:"
        found = await self._lookup(
            lambda redis: self._read_list(
                keys=[self._generation_key], args=[page_prefix, query_hash]
            ),
            _unpack_listing,
        )
        if not isinstance(found, _Miss):
            return found
        page = await self._inner.list_page(query)
        if found.fill and isinstance(found.reply, list):  # else no generation to store under
            key = f"{page_prefix}{found.reply[0].decode()}:{query_hash}"
            packed = pack_page(page)
            await self._call(lambda redis: redis.set(key, packed, ex=self._ttl))
        return page

    async def search_page(self, query: SearchQuery) -> SearchPage:
        # Not cached: a search depends on every document, so any write would invalidate it.
        return await self._inner.search_page(query)

    async def versions(self, document_id: str, after_version: int, limit: int) -> list[Snapshot]:
        prefix = self._version_key(document_id, "")
        found = await self._lookup(
            lambda redis: self._read_versions(
                keys=[self._document_key(document_id)], args=[prefix, after_version, limit]
            ),
            lambda values: unpack_snapshots(values, after_version),
        )
        if not isinstance(found, _Miss):
            return found
        snapshots = await self._inner.versions(document_id, after_version, limit)
        if found.fill:
            await self._store_versions(document_id, snapshots)
        return snapshots

    async def version(self, document_id: str, version: int) -> Snapshot | None:
        key = self._version_key(document_id, version)
        found = await self._lookup(
            lambda redis: redis.get(key), lambda raw: unpack_snapshot(raw, version)
        )
        if not isinstance(found, _Miss):
            return found
        snapshot = await self._inner.version(document_id, version)
        if found.fill and snapshot is not None:
            await self._store_versions(document_id, [snapshot])
        return snapshot

    async def get_by_request_id(self, request_id: str) -> Document | None:
        return await self._inner.get_by_request_id(request_id)

    # The change feed is read from the store, the one source of its order (core/feed.py).

    async def feed_position(self) -> FeedPosition:
        return await self._inner.feed_position()

    async def events(self, after: int, limit: int) -> EventPage:
        return await self._inner.events(after, limit)

    # -- writes: the database first, then the cache, whose trouble never fails the write -----

    async def create(self, document: Document, request_id: str, change: Change) -> Document:
        created = await self._inner.create(document, request_id, change)
        await self._after_write(created)
        return created

    async def save(self, document: Document, previous: Document, change: Change) -> bool:
        saved = await self._inner.save(document, previous, change)
        if saved:
            await self._after_write(document)
        return saved

    async def migrate(self) -> None:
        await self._inner.migrate()

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
        await self._redis.aclose()

    # -- plumbing ----------------------------------------------------------------------------

    def _document_key(self, document_id: str) -> str:
        return f"{self._prefix}d:{document_id}"

    def _version_key(self, document_id: str, version: int | str) -> str:
        return f"{self._prefix}v:{document_id}:{version}"

    async def _store_document(self, document: Document) -> None:
        key = self._document_key(document.id)
        await self._call(
            lambda redis: self._set_if_newer(
                keys=[key], args=[document.version, *document_entry(document), self._ttl]
            )
        )

    async def _store_versions(self, document_id: str, snapshots: list[Snapshot]) -> None:
        if not snapshots:
            return

        async def store(redis: Redis) -> Any:
            async with redis.pipeline(transaction=False) as pipe:
                for snapshot in snapshots:
                    key = self._version_key(document_id, snapshot.version)
                    pipe.set(key, pack_snapshot(snapshot), ex=VERSION_TTL_SECONDS)
                return await pipe.execute()

        await self._call(store)

    async def _after_write(self, document: Document) -> None:
        key = self._document_key(document.id)
        args: list[Any] = [document.version, *document_entry(document), self._ttl]
        done = await self._call(
            lambda redis: self._write_through(keys=[key, self._generation_key], args=args)
        )
        # Not written through, whatever the reason (no reply, or an error reply such as OOM or
        # READONLY, which _call reports as GARBAGE): this process owes the entry a repair.
        if done is SKIPPED or done is GARBAGE:
            self._repair.write_through_failed(key, args)

    async def _lookup(
        self, operation: Callable[[Redis], Awaitable[Any]], unpack: Callable[[Any], T | None]
    ) -> T | _Miss:
        """One cache read, counted once: the value on a hit; else a _Miss, to be filled from
        the database if Redis answered (nothing there, or garbage: an error too)."""
        reply = await self._call(operation)
        if reply is SKIPPED:
            return _SKIP  # _call counted the bypass or the error
        if reply is not GARBAGE:  # GARBAGE: _call counted the error
            try:
                value = unpack(reply)
            except GarbageEntry as exc:
                log.debug("unexpected data in the cache: %s", exc)
                self.stats.errors += 1
            else:
                if value is not None:
                    self.stats.hits += 1
                    return value
        self.stats.misses += 1
        return _Miss(fill=True, reply=reply)

    async def _call(self, operation: Callable[[Redis], Awaitable[T]]) -> T | _NoReply:
        """Run one Redis operation within the timeout; SKIPPED if Redis is unusable.

        An error about the data (e.g. a key of the wrong type) is GARBAGE: a miss whose entry
        the caller overwrites, not an outage.
        """
        if time.monotonic() < self._repair.bypass_until or not self._breaker.allow():
            self.stats.bypasses += 1
            return SKIPPED
        try:
            async with asyncio.timeout(self._timeout):
                if self._repair.needed:
                    await self._repair.run()
                result = await operation(self._redis)
        except ResponseError as exc:
            log.debug("unexpected data in the cache: %r", exc)
            self.stats.errors += 1
            return GARBAGE
        except (RedisError, OSError, TimeoutError) as exc:
            self.stats.errors += 1
            self._breaker.record_failure(exc, slow_only=_is_timeout(exc))
            return SKIPPED
        self._breaker.record_success()
        return result


def _unpack_listing(reply: object) -> Page | None:
    """The page in a READ_LIST reply [generation, page entry]."""
    if not isinstance(reply, list):
        raise GarbageEntry("the list generation is not a number")
    return unpack_page(reply[1])


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | RedisTimeoutError)
