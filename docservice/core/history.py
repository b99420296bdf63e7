"""Reading history: version pages, one version, the diff of two versions, blame.

Versions are immutable, so nothing here needs the compare-and-set loop of the writes; every
read names the document and the versions it wants, and a version that does not exist is
NOT_FOUND whichever way it was named.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from docservice._proto.document import (
    BlameDocumentRequest,
    BlameDocumentResponse,
    DiffDocumentVersionsRequest,
    DiffDocumentVersionsResponse,
    Document,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
)
from docservice.core import page_tokens
from docservice.core.blame import Blame, Origin, ranges_of
from docservice.core.blame import response_bytes as blame_bytes
from docservice.core.diff import field_changes, hunks, line_ops, response_bytes, split_lines
from docservice.core.errors import InvalidArgument, NotFound, ResourceExhausted
from docservice.core.model import parse_document_id
from docservice.core.page_tokens import PageTokens
from docservice.core.repository import (
    ITEM_OVERHEAD_BYTES,
    DocumentRepository,
    Snapshot,
    fitting,
)

__all__ = ["History", "VersionsPage", "check_budget", "is_legacy"]

MAX_INT64 = 2**63 - 1
MAX_INT64_DIGITS = len(str(MAX_INT64))
# Contents with more lines than this (together) are diffed in a worker thread, so that the
# event loop goes on serving other calls meanwhile.
DIFF_IN_THREAD_LINES = 5_000
# Blame reads the history a page of versions at a time.
BLAME_PAGE = 200
# A version's blame never changes (versions are immutable), so the last ones computed are kept:
# at most this many, and only those of at most BLAME_CACHE_RANGES ranges.
BLAME_CACHE_ENTRIES = 256
BLAME_CACHE_RANGES = 2_000


@dataclass(frozen=True, slots=True)
class VersionsPage:
    snapshots: list[Snapshot]
    next_page_token: str


class History:
    def __init__(
        self,
        repository: DocumentRepository,
        tokens: PageTokens,
        max_versions_page: int,
        response_budget: int,
    ) -> None:
        self._repository = repository
        self._page_tokens = tokens
        self._max_versions_page = max_versions_page
        self._response_budget = response_budget
        self._blames: OrderedDict[tuple[str, int], BlameDocumentResponse] = OrderedDict()

    async def versions(self, request: GetDocumentVersionsRequest) -> VersionsPage:
        document_id = parse_document_id(request.id)
        if request.page_size < 0:
            raise InvalidArgument.of("page_size", "must not be negative")
        # page_size 0 is every legacy client: give it the whole history, up to the cap.
        size = min(request.page_size or self._max_versions_page, self._max_versions_page)
        query_print = page_tokens.fingerprint("versions", document_id)
        after = 0
        if request.page_token:
            position = self._page_tokens.decode(request.page_token, query_print)
            if (
                len(position) != 1
                or type(position[0]) is not int
                or not 0 <= position[0] <= MAX_INT64
            ):
                raise InvalidArgument.of(page_tokens.FIELD, "is not a valid page token")
            after = position[0]
        snapshots = await self._repository.versions(document_id, after, size + 1)
        if not snapshots and after == 0:
            raise NotFound(f"document {document_id} not found")
        page, more = snapshots[:size], len(snapshots) > size
        encoded = [s.encoded for s in page]
        if is_legacy(request):
            check_budget(encoded, "versions", self._response_budget)
        elif (fits := fitting(encoded, self._response_budget)) < len(page):
            page, more = page[:fits], True
        token = ""
        if more:
            token = self._page_tokens.encode(query_print, [page[-1].version])
        return VersionsPage(page, token)

    async def version(self, request: GetDocumentVersionRequest) -> Snapshot:
        document_id = parse_document_id(request.id)
        return await self.snapshot(document_id, request.version, request.version_id)

    async def snapshot(self, document_id: str, version: int, version_id: str = "") -> Snapshot:
        """The snapshot named by `version` or `version_id`; NOT_FOUND if there is none."""
        number = _version_number(version, version_id)
        snapshot = None
        if number is not None:
            snapshot = await self._repository.version(document_id, number)
        if snapshot is None:
            if await self._repository.get(document_id) is None:
                raise NotFound(f"document {document_id} not found")
            named = repr(version_id) if version_id else number
            raise NotFound(f"document {document_id} has no version {named}")
        return snapshot

    async def diff(self, request: DiffDocumentVersionsRequest) -> DiffDocumentVersionsResponse:
        """What changed from `from_version` (default: the one before `to_version`) to
        `to_version` (default: the current one). Either order; deleted documents too."""
        document_id = parse_document_id(request.id)
        _check_version("from_version", request.from_version)
        _check_version("to_version", request.to_version)
        to_number = request.to_version or await self._current_version(document_id)
        to_snapshot = await self.snapshot(document_id, to_number)
        # The version before version 1 is nothing: an empty document, everything added.
        from_number = request.from_version or to_number - 1
        old = Document()
        if from_number:
            old = (await self.snapshot(document_id, from_number)).decode()
        new = to_snapshot.decode()
        old_lines, new_lines = split_lines(old.content), split_lines(new.content)
        if len(old_lines) + len(new_lines) > DIFF_IN_THREAD_LINES:
            ops = await asyncio.to_thread(line_ops, old_lines, new_lines)
        else:
            ops = line_ops(old_lines, new_lines)
        size = response_bytes(ops)
        if size > self._response_budget:
            raise ResourceExhausted(
                f"the diff of versions {from_number} and {to_number} makes a response of about "
                f"{size} bytes, over the {self._response_budget}-byte limit: diff versions "
                "closer together"
            )
        found, unified = hunks(ops, f"{document_id}@{from_number}", f"{document_id}@{to_number}")
        return DiffDocumentVersionsResponse(
            id=document_id,
            from_version=from_number,
            to_version=to_number,
            field_changes=field_changes(old, new),
            hunks=found,
            unified_diff=unified,
        )

    async def blame(self, request: BlameDocumentRequest) -> BlameDocumentResponse:
        """For each line of version `version` (default: the current one), the version that
        last changed it: the history is read once, in order, a page at a time."""
        document_id = parse_document_id(request.id)
        _check_version("version", request.version)
        target = request.version or await self._current_version(document_id)
        if (cached := self._blames.get((document_id, target))) is not None:
            self._blames.move_to_end((document_id, target))
            return cached
        await self.snapshot(document_id, target)  # NOT_FOUND before any work
        blame = Blame()
        after = 0
        while after < target:
            page = await self._repository.versions(
                document_id, after, min(BLAME_PAGE, target - after)
            )
            if not page:
                break
            # The diffs run in a worker thread: the event loop serves other calls meanwhile.
            await asyncio.to_thread(_feed, blame, page)
            after = page[-1].version
        runs = blame.runs()
        if (size := blame_bytes(runs)) > self._response_budget:
            raise ResourceExhausted(
                f"the blame of version {target} has {len(runs)} ranges, a response of about "
                f"{size} bytes, over the {self._response_budget}-byte limit"
            )
        response = BlameDocumentResponse(id=document_id, version=target, ranges=ranges_of(runs))
        if len(response.ranges) <= BLAME_CACHE_RANGES:
            self._blames[document_id, target] = response
            if len(self._blames) > BLAME_CACHE_ENTRIES:
                self._blames.popitem(last=False)
        return response

    async def _current_version(self, document_id: str) -> int:
        current = await self._repository.get(document_id)
        if current is None:
            raise NotFound(f"document {document_id} not found")
        return current.version


def _feed(blame: Blame, page: list[Snapshot]) -> None:
    for snapshot in page:
        change = snapshot.change
        origin = Origin(snapshot.version, change.by, snapshot.updated_at, change.kind)
        blame.feed(snapshot.decode().content, origin)


def is_legacy(request: ListDocumentsRequest | GetDocumentVersionsRequest) -> bool:
    """Whether a request may come from a client that cannot see `next_page_token`: legacy
    clients never set page_size or page_token."""
    return request.page_size == 0 and not request.page_token


def check_budget(encoded: list[bytes], what: str, budget: int) -> None:
    """A legacy request cannot page on: refuse, rather than cut, a response too large."""
    size = sum(len(e) + ITEM_OVERHEAD_BYTES for e in encoded)
    if size > budget:
        raise ResourceExhausted(
            f"{len(encoded)} {what} make a response of about {size} bytes, over the "
            f"{budget}-byte limit: ask for fewer (limit), or set page_size "
            "to get pages that end early with a next_page_token"
        )


def _check_version(field: str, version: int) -> None:
    if version < 0:
        raise InvalidArgument.of(field, "must not be negative")


def _version_number(version: int, version_id: str) -> int | None:
    """The version asked for; None when `version_id` names none.

    `version_id` is opaque to clients: only the canonical form of a number ("3", never "03"
    or "+3") names a version, and any other string simply names none (NOT_FOUND).
    """
    if version_id:
        canonical = (
            len(version_id) <= MAX_INT64_DIGITS  # and int() never meets a huge string
            and version_id.isascii()
            and version_id.isdigit()
            and version_id == str(int(version_id))
            and 1 <= int(version_id) <= MAX_INT64
        )
        if not canonical:
            return None
        if version and version != int(version_id):
            raise InvalidArgument.of("version", "contradicts version_id")
        return int(version_id)
    if version < 1:
        raise InvalidArgument.of("version", "one of version (>= 1) or version_id is required")
    return version
