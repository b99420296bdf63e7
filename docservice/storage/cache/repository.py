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

Redis trouble never fails a request: every call has a short timeout, errors fall back to the
database, and a circuit breaker skips Redis for a cool-down after repeated failures (timeouts
count only while no reply at all arrives: a loaded event loop makes replies late). A write is
acknowledged once the database committed, whatever Redis does. If its write-through cannot reach
Redis, this process stops reading from the cache until it has written those documents through
again and bumped the list generation (or, after very many such writes, until every entry written
before the outage has expired). The repair writes rather than deletes: a reader that read an
older version from the database before the write may still store it, and only a newer entry in
place refuses it. Other processes sharing the Redis learn nothing of this:
a reader there may see the older entry until this process repairs it, at its next call that
reaches Redis. Counters of hits, misses, errors and bypasses are kept in `stats`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import betterproto2
from redis.asyncio import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from docservice._proto.document import Document
from docservice.core.repository import (
    DocumentRepository,
    EncodedDocument,
    ListQuery,
    Page,
    Snapshot,
)
from docservice.storage.cache.breaker import CircuitBreaker
from docservice.storage.cache.scripts import (
    BUMP_GENERATION,
    READ_LIST,
    READ_VERSIONS,
    SET_IF_NEWER,
    WRITE_THROUGH,
)

__all__ = ["CacheStats", "CachedDocumentRepository", "connect_redis"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=betterproto2.Message)
T = TypeVar("T")

VERSION_TTL_SECONDS = 7 * 24 * 3600
MAGIC = b"ds1"
TIMESTAMP_LENGTH = len("2026-11-26T10:00:00.123456Z")
MAX_DIRTY_IDS = 10_000
MAX_DIRTY_BYTES = 64 * 1024 * 1024


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypasses: int = 0


class _ConnectionPool(ConnectionPool):
    # redis-py 8 wraps get_connection in a deprecation check that inspects the arguments of
    # every command (5 % of a cached GetDocument's server CPU); we never pass the deprecated
    # arguments, so take the undecorated method.
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


def _pack_snapshot(snapshot: Snapshot) -> bytes:
    """A version as a sealed `updated_at` line followed by the encoded Document."""
    return seal(snapshot.updated_at.encode() + b"\n" + snapshot.encoded)


def _unpack_snapshot(raw: object, version: int) -> Snapshot | None:
    payload = unseal(raw)
    if payload is None:
        return None
    updated_at, _, data = payload.partition(b"\n")
    # A timestamp as format_timestamp writes it; anything else (say, an entry written in an
    # older format, which starts with the Document itself) is a miss.
    if len(updated_at) != TIMESTAMP_LENGTH or not updated_at.endswith(b"Z"):
        return None
    return Snapshot(version, updated_at.decode("ascii", "replace"), data)


def _pack_page(page: Page) -> bytes:
    """A page as a sealed JSON header line (with each document's length) followed by its
    encoded documents."""
    lengths = [len(d) for d in page.encoded]
    header = [page.total_size, page.has_more, page.last, lengths]
    return seal(json.dumps(header, separators=(",", ":")).encode() + b"\n" + b"".join(page.encoded))


def _unpack_page(raw: object) -> Page | None:
    payload = unseal(raw)
    if payload is None:
        return None
    header, _, body = payload.partition(b"\n")
    try:
        total_size, has_more, last, lengths = json.loads(header)
        if sum(lengths) != len(body) or any(type(n) is not int or n < 0 for n in lengths):
            return None
        view = memoryview(body)
        encoded, start = [], 0
        for length in lengths:
            encoded.append(bytes(view[start : start + length]))
            start += length
        return Page(encoded, int(total_size), bool(has_more), tuple(last) if last else None)
    except (ValueError, TypeError):
        return None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | RedisTimeoutError)


def _entry(document: Document) -> tuple[bytes, bytes]:
    """The sealed bytes and the deleted flag stored for a document."""
    return seal(bytes(document)), b"1" if document.is_deleted else b"0"


def seal(payload: bytes) -> bytes:
    """Frame a cached value as b"ds1" + sha1 hex + payload.

    Garbage under a key must read as a miss, and protobuf decodes most garbage without
    complaint. sha1 (an integrity check, not security) because Redis's Lua can compute it too.
    """
    return MAGIC + hashlib.sha1(payload).hexdigest().encode() + payload


def unseal(raw: object) -> bytes | None:
    """The payload of a sealed value, or None if `raw` is not one."""
    if not isinstance(raw, bytes) or not raw.startswith(MAGIC):
        return None
    checksum, payload = raw[3:43], raw[43:]
    return payload if hashlib.sha1(payload).hexdigest().encode() == checksum else None


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
        self._bump_generation = redis.register_script(BUMP_GENERATION)
        self._read_list = redis.register_script(READ_LIST)
        self._read_versions = redis.register_script(READ_VERSIONS)
        # Write-through arguments of the documents whose write-through failed, by id.
        self._dirty: dict[str, list[Any]] = {}
        self._dirty_bytes = 0
        self._lists_dirty = False
        self._bypass_until = 0.0
        self.stats = CacheStats()

    @property
    def inner(self) -> DocumentRepository:
        return self._inner

    # -- reads -------------------------------------------------------------------------------

    async def get(self, document_id: str, *, fresh: bool = False) -> Document | None:
        if fresh:
            return await self._inner.get(document_id, fresh=True)
        key = self._document_key(document_id)
        raw = await self._call(lambda redis: redis.hget(key, "b"))
        if (cached := self._parse(Document, raw)) is not None:
            self.stats.hits += 1
            return cached
        if raw is SKIPPED:
            return await self._inner.get(document_id)
        return await self._get_and_store(document_id)

    async def _get_and_store(self, document_id: str) -> Document | None:
        """A miss: read the store and cache what it says (if newer than what is cached)."""
        self.stats.misses += 1
        document = await self._inner.get(document_id)
        if document is not None:
            await self._store_document(document)
        return document

    async def get_encoded(self, document_id: str) -> EncodedDocument | None:
        """The cached bytes as they are, with no decoding: the GetDocument fast path."""
        key = self._document_key(document_id)
        found = await self._call(lambda redis: redis.hmget(key, "b", "x"))
        payload = unseal(found[0]) if isinstance(found, list) else None
        if isinstance(found, list) and payload is not None and found[1] in (b"0", b"1"):
            self.stats.hits += 1
            return EncodedDocument(payload, found[1] == b"1")
        if found is SKIPPED:
            document = await self._inner.get(document_id)
        else:
            document = await self._get_and_store(document_id)
        return None if document is None else EncodedDocument(bytes(document), document.is_deleted)

    async def list_page(self, query: ListQuery) -> Page:
        query_hash = hashlib.blake2b(repr(query).encode(), digest_size=16).hexdigest()
        page_prefix = f"{self._prefix}l:"
        found = await self._call(
            lambda redis: self._read_list(
                keys=[self._generation_key], args=[page_prefix, query_hash]
            )
        )
        if isinstance(found, list):
            generation, raw = found
            if (cached := _unpack_page(raw)) is not None:
                self.stats.hits += 1
                return cached
            if raw is not None:
                self.stats.errors += 1  # garbage: a miss
        page = await self._inner.list_page(query)
        if isinstance(found, list):
            self.stats.misses += 1
            key = f"{page_prefix}{generation.decode()}:{query_hash}"
            packed = _pack_page(page)
            await self._call(lambda redis: redis.set(key, packed, ex=self._ttl))
        return page

    async def versions(self, document_id: str, after_version: int, limit: int) -> list[Snapshot]:
        prefix = self._version_key(document_id, "")
        found = await self._call(
            lambda redis: self._read_versions(
                keys=[self._document_key(document_id)], args=[prefix, after_version, limit]
            )
        )
        if isinstance(found, list):
            snapshots = [
                _unpack_snapshot(raw, after_version + n) for n, raw in enumerate(found, start=1)
            ]
            if all(s is not None for s in snapshots):
                self.stats.hits += 1
                return [s for s in snapshots if s is not None]
            if any(s is None and raw is not None for s, raw in zip(snapshots, found, strict=True)):
                self.stats.errors += 1  # garbage among them (not just uncached ones): a miss
        snapshots_from_db = await self._inner.versions(document_id, after_version, limit)
        if found is not SKIPPED:
            self.stats.misses += 1
            await self._store_versions(document_id, snapshots_from_db)
        return snapshots_from_db

    async def version(self, document_id: str, version: int) -> Document | None:
        key = self._version_key(document_id, version)
        raw = await self._call(lambda redis: redis.get(key))
        if (cached := _unpack_snapshot(raw, version)) is not None:
            self.stats.hits += 1
            return cached.decode()
        if isinstance(raw, bytes):
            self.stats.errors += 1  # garbage: a miss
        snapshot = await self._inner.version(document_id, version)
        if raw is not SKIPPED:
            self.stats.misses += 1
            if snapshot is not None:
                await self._store_versions(document_id, [Snapshot.of(snapshot)])
        return snapshot

    async def get_by_request_id(self, request_id: str) -> Document | None:
        return await self._inner.get_by_request_id(request_id)

    # -- writes: the database first, then the cache, whose trouble never fails the write -----

    async def create(self, document: Document, request_id: str) -> Document:
        created = await self._inner.create(document, request_id)
        await self._after_write(created)
        return created

    async def save(self, document: Document, previous: Document) -> bool:
        saved = await self._inner.save(document, previous)
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
                keys=[key], args=[document.version, *_entry(document), self._ttl]
            )
        )

    async def _store_versions(self, document_id: str, snapshots: list[Snapshot]) -> None:
        if not snapshots:
            return

        async def store(redis: Redis) -> Any:
            async with redis.pipeline(transaction=False) as pipe:
                for snapshot in snapshots:
                    key = self._version_key(document_id, snapshot.version)
                    pipe.set(key, _pack_snapshot(snapshot), ex=VERSION_TTL_SECONDS)
                return await pipe.execute()

        await self._call(store)

    async def _after_write(self, document: Document) -> None:
        key = self._document_key(document.id)
        args: list[Any] = [document.version, *_entry(document), self._ttl]
        done = await self._call(
            lambda redis: self._write_through(keys=[key, self._generation_key], args=args)
        )
        if done is not SKIPPED:
            return
        self._lists_dirty = True
        known = self._dirty.get(document.id)
        if known is None or known[0] < document.version:
            self._dirty[document.id] = args
            self._dirty_bytes += len(args[1])
        if len(self._dirty) > MAX_DIRTY_IDS or self._dirty_bytes > MAX_DIRTY_BYTES:
            # Too much to hold for a repair: wait until every entry written before has expired.
            self._dirty.clear()
            self._dirty_bytes = 0
            self._bypass_until = time.monotonic() + self._ttl

    async def _call(self, operation: Callable[[Redis], Awaitable[T]]) -> T | _NoReply:
        """Run one Redis operation within the timeout; SKIPPED if Redis is unusable.

        An error about the data (e.g. a key of the wrong type) is GARBAGE: a miss whose entry
        the caller overwrites, not an outage.
        """
        if time.monotonic() < self._bypass_until or not self._breaker.allow():
            self.stats.bypasses += 1
            return SKIPPED
        try:
            async with asyncio.timeout(self._timeout):
                if self._dirty or self._lists_dirty:
                    await self._repair()
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

    async def _repair(self) -> None:
        """Write through what this process could not; move lists to a new generation."""
        dirty = list(self._dirty.items())
        if dirty:
            async with self._redis.pipeline(transaction=False) as pipe:
                for document_id, args in dirty:
                    key = self._document_key(document_id)
                    await self._set_if_newer(keys=[key], args=args, client=pipe)
                await pipe.execute()
        await self._bump_generation(keys=[self._generation_key])
        for document_id, args in dirty:
            if self._dirty.get(document_id) is args:
                del self._dirty[document_id]
                self._dirty_bytes -= len(args[1])
        self._lists_dirty = False

    def _parse(self, message_type: type[M], raw: object) -> M | None:
        """The message sealed in `raw`, or None for a miss (absent, garbage, wrong checksum)."""
        if raw is None or isinstance(raw, _NoReply):
            return None
        payload = unseal(raw)
        try:
            if payload is not None:
                return message_type.parse(payload)
        except Exception:  # a checksummed payload that does not decode: still just a miss
            pass
        self.stats.errors += 1
        return None
