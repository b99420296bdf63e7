"""The storage interface the service layer talks to, and the query types it passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from docservice._proto.document import ChangeKind, Document, Snippet

if TYPE_CHECKING:
    from docservice.core.feed import EventPage, FeedPosition
    from docservice.core.filtering import Node
    from docservice.core.searching import Term

__all__ = [
    "Change",
    "DocumentRepository",
    "EncodedDocument",
    "ListQuery",
    "Order",
    "Page",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "Snapshot",
]


@dataclass(frozen=True, slots=True)
class Order:
    """The list order: a stored field (updated_at, created_at or title), descending or not;
    ties go by id in the same direction."""

    field: str = "updated_at"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of documents in `order` (newest `updated_at` first unless asked otherwise),
    ties broken by id in the same direction."""

    limit: int
    offset: int = 0
    # Keyset position: (the order field's value, id) of the last document already returned;
    # timestamps as RFC 3339 strings.
    after: tuple[str, str] | None = None
    status: int | None = None
    author: str = ""
    tag: str = ""
    category: str = ""
    show_deleted: bool = False
    # Count the whole filtered set (total_size)? Only the first page does; the page token
    # carries the figure on, so that later pages cost the same however large the set.
    count: bool = True
    # End the page early, before its encoded documents would exceed this many bytes (at least
    # one document always comes); 0: no limit.
    max_bytes: int = 0
    # An AIP-160 filter (core/filtering.py), ANDed with the fields above.
    where: Node | None = None
    order: Order = Order()
    # The BASIC view: documents without content and comments.
    basic: bool = False


class EncodedDocument(NamedTuple):
    encoded: bytes
    is_deleted: bool


@dataclass(slots=True)
class Page:
    """One page of documents, each already encoded: a cached page reaches the wire without
    being decoded and encoded again."""

    encoded: list[bytes]
    total_size: int = 0
    has_more: bool = False
    # (the order field's value, id) of the last document: where the next page starts.
    last: tuple[str, str] | None = None

    @classmethod
    def of(
        cls,
        documents: list[Document],
        total_size: int,
        has_more: bool,
        max_bytes: int = 0,
        order_field: str = "updated_at",
    ) -> Page:
        encoded = [bytes(d) for d in documents]
        if max_bytes:
            fits = fitting(encoded, max_bytes)
            if fits < len(encoded):
                encoded, documents, has_more = encoded[:fits], documents[:fits], True
        return cls(
            encoded=encoded,
            total_size=total_size,
            has_more=has_more,
            last=(getattr(documents[-1], order_field), documents[-1].id) if documents else None,
        )


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One page of the documents matching all of `terms`, best first (score descending, ties
    by id ascending)."""

    terms: tuple[Term, ...]
    limit: int
    # Keyset position: (score, id) of the last result already returned.
    after: tuple[float, str] | None = None
    where: Node | None = None
    show_deleted: bool = False
    basic: bool = False
    max_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    encoded: bytes  # the Document
    score: float
    snippets: tuple[Snippet, ...]


@dataclass(slots=True)
class SearchPage:
    hits: list[SearchHit]
    has_more: bool = False

    @property
    def last(self) -> tuple[float, str] | None:
        if not self.hits:
            return None
        return self.hits[-1].score, self.hits[-1].id

    @classmethod
    def of(cls, hits: list[SearchHit], has_more: bool, max_bytes: int) -> SearchPage:
        """The page of `hits`, ended early to fit `max_bytes` (0: no cap)."""
        if max_bytes and hits:
            sizes = [h.encoded + b"".join(bytes(s) for s in h.snippets) for h in hits]
            fits = fitting(sizes, max_bytes)
            if fits < len(hits):
                hits, has_more = hits[:fits], True
        return cls(hits, has_more)


@dataclass(frozen=True, slots=True)
class Change:
    """The audit trail of one version: what kind of write made it, who, and why."""

    kind: ChangeKind = ChangeKind.CHANGE_KIND_UNSPECIFIED
    by: str = ""
    message: str = ""
    reverted_from: int = 0  # for a revert, the version whose fields it restored


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of a document: the encoded Document, with what a DocumentVersion needs
    besides."""

    version: int
    updated_at: str
    encoded: bytes
    change: Change = Change()

    @classmethod
    def of(cls, document: Document, change: Change) -> Snapshot:
        return cls(document.version, document.updated_at, bytes(document), change)

    def decode(self) -> Document:
        return Document.parse(self.encoded)


# What a response spends on each item besides its encoded bytes (a tag and a length; for a
# DocumentVersion also its number and timestamp), generously rounded up.
ITEM_OVERHEAD_BYTES = 64


def fitting(encoded: list[bytes], max_bytes: int) -> int:
    """How many of `encoded`, from the first, fit in `max_bytes` (at least one)."""
    used = 0
    for count, item in enumerate(encoded):
        used += len(item) + ITEM_OVERHEAD_BYTES
        if used > max_bytes and count:
            return count
    return len(encoded)


class DocumentRepository(Protocol):
    """Stores the current state of each document and an append-only list of its versions.

    Every write stores the new state and its version snapshot atomically, and only if the
    stored version is still the one the writer read (compare-and-set): several processes may
    share one database, so races are settled by the store, not by locks in this process.
    """

    async def get(self, document_id: str, *, fresh: bool = False) -> Document | None:
        """The current state, soft-deleted or not; None when the id is unknown.

        `fresh` reads the store itself, never a cache: writers need the latest state for their
        compare-and-set, or they would retry forever against a stale copy.
        """
        ...

    async def get_encoded(self, document_id: str) -> EncodedDocument | None:
        """The current state as protobuf bytes. Stores return documents, so this default
        encodes what `get` found; the cache, which holds bytes, answers without decoding."""
        document = await self.get(document_id)
        if document is None:
            return None
        return EncodedDocument(bytes(document), document.is_deleted)

    async def get_by_request_id(self, request_id: str) -> Document | None: ...

    async def create(self, document: Document, request_id: str, change: Change) -> Document:
        """Insert version 1. If `request_id` was already used, return that document instead."""
        ...

    async def save(self, document: Document, previous: Document, change: Change) -> bool:
        """Store `document` (version = previous.version + 1) with its snapshot and `change`.

        Returns False, writing nothing, when the stored version is no longer `previous.version`.
        """
        ...

    async def list_page(self, query: ListQuery) -> Page: ...

    async def search_page(self, query: SearchQuery) -> SearchPage:
        """Full-text search, read from the store's index: a write acknowledged before the call
        began is found (the index is written with the document, atomically)."""
        ...

    async def versions(self, document_id: str, after_version: int, limit: int) -> list[Snapshot]:
        """Snapshots with version > after_version in ascending order, at most `limit`."""
        ...

    async def version(self, document_id: str, version: int) -> Snapshot | None: ...

    async def feed_position(self) -> FeedPosition:
        """The event log's identity and its settled head (core/feed.py)."""
        ...

    async def events(self, after: int, limit: int) -> EventPage:
        """Up to `limit` settled events with sequence > `after`, in sequence order. No event
        with a sequence at or below the page's `through` may commit after this call."""
        ...

    async def migrate(self) -> None:
        """Bring the schema (tables, indexes) up to date."""
        ...

    async def ping(self) -> None:
        """Raise Unavailable unless the store answers."""
        ...

    async def close(self) -> None: ...
