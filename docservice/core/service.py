"""The business rules of docservice: validation, versioning, soft delete, paging.

Every method takes and returns the generated messages. Writes follow one loop (`_change`): read
the current state, check existence and etag, compute the new state, and store it with a
compare-and-set on the version; a lost race reads again, so concurrent writers each get their own
contiguous version number and none is lost.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from docservice._proto.document import (
    BlameDocumentRequest,
    BlameDocumentResponse,
    ChangeKind,
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DiffDocumentVersionsRequest,
    DiffDocumentVersionsResponse,
    Document,
    DocumentView,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    SearchDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice.core import page_tokens
from docservice.core.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StaleEtag,
)
from docservice.core.filtering import parse_filter, parse_order_by
from docservice.core.history import History, VersionsPage, check_budget, is_legacy
from docservice.core.model import (
    EDITABLE_FIELDS,
    etag_for,
    format_timestamp,
    parse_document_id,
    parse_timestamp,
    utc_now,
)
from docservice.core.page_tokens import PageTokens
from docservice.core.repository import (
    Change,
    DocumentRepository,
    ListQuery,
    Order,
    SearchPage,
    SearchQuery,
    Snapshot,
)
from docservice.core.searching import parse_query
from docservice.core.validation import Limits, Validator, check_mask_paths
from docservice.settings import Settings

__all__ = ["DocumentService", "DocumentsPage", "SearchResults", "VersionsPage"]

# Each lost compare-and-set means another writer made progress; this only bounds pathological
# contention (it is far above what 50 concurrent writers on one document need).
MAX_WRITE_ATTEMPTS = 200
MAX_REQUEST_ID_LENGTH = 128
MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1
MAX_INT64_DIGITS = len(str(MAX_INT64))
RESPONSE_RESERVE_BYTES = 1024
KNOWN_VIEWS = frozenset(
    {DocumentView.DOCUMENT_VIEW_UNSPECIFIED, DocumentView.BASIC, DocumentView.FULL}
)

# Given the current state and the change's timestamp, return the changed fields (None: no change).
Mutation = Callable[[Document, str], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class DocumentsPage:
    """A ListDocuments answer, its documents still encoded (see Page)."""

    encoded: list[bytes]
    next_page_token: str
    total_size: int


@dataclass(frozen=True, slots=True)
class SearchResults:
    page: SearchPage
    next_page_token: str


class DocumentService:
    def __init__(
        self,
        repository: DocumentRepository,
        settings: Settings,
        on_write: Callable[[], None] = lambda: None,
    ) -> None:
        self._repository = repository
        self._on_write = on_write  # the change feed's nudge
        self._validator = Validator(Limits.from_settings(settings))
        secret = settings.page_token_secret
        self._page_tokens = PageTokens(
            secret.get_secret_value().encode() if secret is not None else None
        )
        self._default_page_size = settings.default_page_size
        self._max_page_size = settings.max_page_size
        # Kept free for the page token and total_size around the items.
        self._response_budget = settings.max_response_bytes - RESPONSE_RESERVE_BYTES
        self._history = History(
            repository, self._page_tokens, settings.max_versions_page, self._response_budget
        )

    async def get(self, raw_id: str) -> Document:
        document_id = parse_document_id(raw_id)
        document = await self._repository.get(document_id)
        if document is None or document.is_deleted:
            raise NotFound(f"document {document_id} not found")
        return document

    async def get_encoded(self, raw_id: str) -> bytes:
        """The live document, encoded: a cached one reaches the wire without being decoded and
        encoded again."""
        document_id = parse_document_id(raw_id)
        found = await self._repository.get_encoded(document_id)
        if found is None or found.is_deleted:
            raise NotFound(f"document {document_id} not found")
        return found.encoded

    async def create(self, request: CreateDocumentRequest, actor: str = "") -> Document:
        values = self._validator.clean({name: getattr(request, name) for name in EDITABLE_FIELDS})
        change = self._change_of(ChangeKind.CREATED, actor, request.change_message)
        request_id = request.request_id
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidArgument.of(
                "request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters"
            )
        if request_id:
            existing = await self._repository.get_by_request_id(request_id)
            if existing is not None:
                return await self._replay(existing, values)
        now = format_timestamp(utc_now())
        document_id = str(uuid.uuid4())
        document = Document(
            id=document_id,
            created_at=now,
            updated_at=now,
            version=1,
            etag=etag_for(document_id, 1),
            **values,
        )
        created = await self._repository.create(document, request_id, change)
        self._on_write()
        if created.id != document_id:  # a concurrent create with this request_id won
            return await self._replay(created, values)
        return created

    async def _replay(self, existing: Document, values: dict[str, Any]) -> Document:
        """The answer to a create whose request_id was used before: the document as that
        first create made it (version 1), if this request asks for the same fields; an error
        naming request_id if it does not (a key reused for another request)."""
        first = await self._repository.version(existing.id, 1)
        original = first.decode() if first is not None else existing
        asked = Document(**values)
        if any(getattr(asked, name) != getattr(original, name) for name in EDITABLE_FIELDS):
            raise InvalidArgument.of(
                "request_id",
                f"was already used to create document {existing.id} with other fields",
            )
        return original

    async def update(self, request: UpdateDocumentRequest, actor: str = "") -> Document:
        document_id = parse_document_id(request.id)
        change = self._change_of(ChangeKind.UPDATED, actor, request.change_message)
        mask = request.update_mask.paths if request.update_mask is not None else []
        if mask:
            names = check_mask_paths(mask)
        else:  # legacy rule: empty string, empty list and DRAFT mean "leave as is"
            names = tuple(name for name in EDITABLE_FIELDS if getattr(request, name))
        values = self._validator.clean({name: getattr(request, name) for name in names})

        def apply(current: Document, now: str) -> dict[str, Any] | None:
            changed = {k: v for k, v in values.items() if getattr(current, k) != v}
            return changed or None

        return await self._change(document_id, request.etag, apply, change)

    async def delete(self, request: DeleteDocumentRequest, actor: str = "") -> None:
        change = self._change_of(ChangeKind.DELETED, actor, request.change_message)

        def mark_deleted(current: Document, now: str) -> dict[str, Any]:
            return {"is_deleted": True, "deleted_at": now}

        await self._change(parse_document_id(request.id), request.etag, mark_deleted, change)

    async def restore(self, request: RestoreDocumentRequest, actor: str = "") -> Document:
        change = self._change_of(ChangeKind.RESTORED, actor, request.change_message)

        def mark_live(current: Document, now: str) -> dict[str, Any]:
            return {"is_deleted": False, "deleted_at": ""}

        document_id = parse_document_id(request.id)
        return await self._change(document_id, request.etag, mark_live, change, deleted=True)

    async def revert(self, request: RevertDocumentRequest, actor: str = "") -> Document:
        document_id = parse_document_id(request.id)
        kept = self._change_of(ChangeKind.REVERTED, actor, request.change_message)
        snapshot = await self._history.snapshot(document_id, request.version, request.version_id)
        target = snapshot.decode()
        change = dataclasses.replace(kept, reverted_from=snapshot.version)

        def copy_fields(current: Document, now: str) -> dict[str, Any] | None:
            # Like an update that changes nothing, a revert to what is current appends nothing.
            changed = {
                name: getattr(target, name)
                for name in EDITABLE_FIELDS
                if getattr(target, name) != getattr(current, name)
            }
            return changed or None

        return await self._change(document_id, request.etag, copy_fields, change)

    def _change_of(self, kind: ChangeKind, actor: str, message: str) -> Change:
        """The audit record of a write by `actor` (the face checked it), its message checked."""
        return Change(kind, actor, self._validator.change_message(message))

    async def list_documents(self, request: ListDocumentsRequest) -> DocumentsPage:
        for name in ("skip", "limit", "page_size"):
            if getattr(request, name) < 0:
                raise InvalidArgument.of(name, "must not be negative")
        size = min(
            request.page_size or request.limit or self._default_page_size, self._max_page_size
        )
        status = None
        if request.status is not None:
            status = int(self._validator.status(request.status))
        where = parse_filter(request.filter)
        order = parse_order_by(request.order_by)
        basic = self._basic_view(request.view)
        # Tokens bind the filter and order; those of plain queries read as before.
        query_print = page_tokens.fingerprint(
            "documents",
            status,
            request.author,
            request.tag,
            request.category,
            request.show_deleted,
            *(() if where is None and order == Order() else (repr(where), repr(order))),
        )
        after, total_size = None, 0
        if request.page_token:
            position = self._page_tokens.decode(request.page_token, query_print)
            after, total_size = _document_position(position, order)
        query = ListQuery(
            limit=size,
            offset=0 if after else request.skip,
            after=after,
            status=status,
            author=request.author,
            tag=request.tag,
            category=request.category,
            show_deleted=request.show_deleted,
            count=after is None,
            # A request that can page on ends early rather than outgrow a client's limit.
            max_bytes=0 if is_legacy(request) else self._response_budget,
            where=where,
            order=order,
            basic=basic,
        )
        page = await self._repository.list_page(query)
        if is_legacy(request):
            check_budget(page.encoded, "documents", self._response_budget)
        total_size = page.total_size if after is None else total_size
        token = ""
        if page.has_more and page.last is not None:
            token = self._page_tokens.encode(query_print, [*page.last, total_size])
        return DocumentsPage(page.encoded, token, total_size)

    async def search(self, request: SearchDocumentsRequest) -> SearchResults:
        if request.page_size < 0:
            raise InvalidArgument.of("page_size", "must not be negative")
        terms = parse_query(request.query)
        where = parse_filter(request.filter)
        basic = self._basic_view(request.view)
        query_print = page_tokens.fingerprint(
            "search", repr(terms), repr(where), request.show_deleted
        )
        after = None
        if request.page_token:
            after = _search_position(self._page_tokens.decode(request.page_token, query_print))
        query = SearchQuery(
            terms=terms,
            limit=min(request.page_size or self._default_page_size, self._max_page_size),
            after=after,
            where=where,
            show_deleted=request.show_deleted,
            basic=basic,
            max_bytes=self._response_budget,
        )
        page = await self._repository.search_page(query)
        token = ""
        if page.has_more and page.last is not None:
            token = self._page_tokens.encode(query_print, list(page.last))
        return SearchResults(page, token)

    @staticmethod
    def _basic_view(view: DocumentView) -> bool:
        if view not in KNOWN_VIEWS:
            raise InvalidArgument.of("view", f"unknown DocumentView value {int(view)}")
        return view == DocumentView.BASIC

    async def versions(self, request: GetDocumentVersionsRequest) -> VersionsPage:
        return await self._history.versions(request)

    async def version(self, request: GetDocumentVersionRequest) -> Snapshot:
        return await self._history.version(request)

    async def diff(self, request: DiffDocumentVersionsRequest) -> DiffDocumentVersionsResponse:
        return await self._history.diff(request)

    async def blame(self, request: BlameDocumentRequest) -> BlameDocumentResponse:
        return await self._history.blame(request)

    async def _change(
        self,
        document_id: str,
        etag: str,
        mutate: Mutation,
        change: Change,
        *,
        deleted: bool = False,
    ) -> Document:
        """Apply `mutate` to the current state as one new version (see the module docstring).

        `deleted` says which state the document must be in: live (absent otherwise) or
        soft-deleted (restore).
        """
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = await self._repository.get(document_id, fresh=True)
            if current is None or (current.is_deleted and not deleted):
                raise NotFound(f"document {document_id} not found")
            if deleted and not current.is_deleted:
                raise FailedPrecondition(f"document {document_id} is not deleted")
            if etag and etag != current.etag:
                raise StaleEtag(document_id, etag, current.etag)
            now = _after(current.updated_at)
            changes = mutate(current, now)
            if changes is None:
                return current
            version = current.version + 1
            document = dataclasses.replace(
                current,
                updated_at=now,
                version=version,
                etag=etag_for(document_id, version),
                **changes,
            )
            if await self._repository.save(document, current, change):
                self._on_write()
                return document
        raise Aborted(f"document {document_id} is changing too fast, try again")


def _after(previous: str) -> str:
    """Now, but never at or before the previous change (clocks of several hosts may differ)."""
    now = utc_now()
    earliest = parse_timestamp(previous) + timedelta(microseconds=1)
    return format_timestamp(max(now, earliest))


def _document_position(position: list[Any], order: Order) -> tuple[tuple[str, str], int]:
    """The (order value, id) a page token resumes after, and the total_size it carries."""
    if len(position) == 3 and isinstance(position[0], str) and isinstance(position[1], str):
        total = position[2]
        if type(total) is int and 0 <= total <= MAX_INT32:
            try:
                if order.field != "title":
                    parse_timestamp(position[0])
                return (position[0], str(uuid.UUID(position[1]))), total
            except (ValueError, OverflowError):
                pass
    raise InvalidArgument.of(page_tokens.FIELD, "is not a valid page token")


def _search_position(position: list[Any]) -> tuple[float, str]:
    """The (score, id) a search page token resumes after."""
    if (
        len(position) == 2
        and type(position[0]) is float
        and math.isfinite(position[0])
        and isinstance(position[1], str)
    ):
        try:
            return position[0], str(uuid.UUID(position[1]))
        except ValueError:
            pass
    raise InvalidArgument.of(page_tokens.FIELD, "is not a valid page token")
