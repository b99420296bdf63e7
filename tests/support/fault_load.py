"""Load and checks shared by the fault tests (tests/integration/test_faults.py).

`Ledger` remembers every call's outcome and every acknowledged write; `write_load` runs writers
against a server until a time limit; `check_ledger` then proves that each acknowledged write is
stored at its version with its content, and that every document's history is 1..N with no gap
and ends at the document's current state.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from grpclib.exceptions import GRPCError, StreamTerminatedError

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)

DEADLINE = 5.0  # per call: well above the server's retry budget, so only a hang reaches it
MAX_CALLS_PER_WRITER = 5000  # load loops end at their time limit long before this
CHECK_CONCURRENCY = 8

# A client-side deadline (grpclib raises TimeoutError) and the server's own answer are one thing.
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
CONNECTION = "CONNECTION"  # refused or dropped connection: no gRPC status at all


def classify(exc: BaseException) -> str:
    """A failed call's outcome as a status name, CONNECTION or the exception's type."""
    if isinstance(exc, GRPCError):
        return exc.status.name
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return DEADLINE_EXCEEDED
    if isinstance(exc, StreamTerminatedError | OSError):
        return CONNECTION
    return type(exc).__name__


@dataclass
class Call:
    started: float
    ended: float
    outcome: str  # "OK" or what `classify` says


@dataclass
class Ledger:
    """Outcomes of calls and the writes the server acknowledged (id -> version -> content)."""

    calls: list[Call] = field(default_factory=list)
    acknowledged: dict[str, dict[int, str]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # every content ever sent, acknowledged or not
    authors: set[str] = field(default_factory=set)

    async def call(self, make: Callable[[], Awaitable[Any]]) -> Any | None:
        """Run one call; record its outcome. Returns the response, or None if it failed."""
        started = time.monotonic()
        try:
            response = await make()
        except Exception as exc:
            self.calls.append(Call(started, time.monotonic(), classify(exc)))
            return None
        self.calls.append(Call(started, time.monotonic(), "OK"))
        return response

    def acknowledge(self, document: Document) -> None:
        versions = self.acknowledged.setdefault(document.id, {})
        assert versions.get(document.version, document.content) == document.content, (
            f"two acknowledged contents for {document.id} v{document.version}"
        )
        versions[document.version] = document.content

    def failures(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """Failed calls by outcome, among those started in [since, until)."""
        return Counter(
            c.outcome for c in self.calls if since <= c.started < until and c.outcome != "OK"
        )

    def successes(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for c in self.calls if since <= c.started < until and c.outcome == "OK")

    def overlapping(self, since: float, until: float) -> Counter[str]:
        """Outcomes of the calls that were running at some moment in [since, until]."""
        return Counter(c.outcome for c in self.calls if c.started <= until and c.ended >= since)

    def failed_during(self, since: float, until: float) -> int:
        """How many calls running at some moment in [since, until] failed."""
        outcomes = self.overlapping(since, until)
        return sum(outcomes.values()) - outcomes["OK"]


async def write_load(
    ledger: Ledger,
    stub: DocumentServiceStub,
    *,
    writers: int,
    until: float,
    stop: asyncio.Event | None = None,
) -> None:
    """`writers` concurrent clients creating and updating documents until `until`.

    Each writer creates documents (its own author) and updates them; all writers also update
    a few shared documents, so that writes race on the same rows. Every content is unique, so
    the check can tell each acknowledged write from any other.
    """
    shared: list[str] = []
    for _ in range(3):  # the shared documents must exist before the load starts
        created = await create(ledger, stub, f"shared-{uuid.uuid4().hex[:8]}")
        assert created is not None, "the server does not serve before the fault"
        shared.append(created.id)
    await asyncio.gather(
        *(_writer(ledger, stub, shared, until, stop, random.Random(i)) for i in range(writers))
    )


async def create(
    ledger: Ledger, stub: DocumentServiceStub, author: str, deadline: float = DEADLINE
) -> Document | None:
    """CreateDocument with a new unique content; the document, or None if it failed."""
    ledger.authors.add(author)
    content = f"c-{uuid.uuid4().hex}"
    ledger.sent.add(content)
    request = CreateDocumentRequest(title="fault", author=author, content=content)
    document: Document | None = await ledger.call(
        lambda: stub.create_document(request, timeout=deadline)
    )
    if document is not None:
        ledger.acknowledge(document)
    return document


async def update(
    ledger: Ledger, stub: DocumentServiceStub, document_id: str, deadline: float = DEADLINE
) -> Document | None:
    """UpdateDocument with a new unique content; the updated document, or None if it failed."""
    content = f"u-{uuid.uuid4().hex}"
    ledger.sent.add(content)
    request = UpdateDocumentRequest(id=document_id, content=content)
    response = await ledger.call(lambda: stub.update_document(request, timeout=deadline))
    if response is None:
        return None
    document: Document = response.document
    assert document.content == content
    ledger.acknowledge(document)
    return document


async def _writer(
    ledger: Ledger,
    stub: DocumentServiceStub,
    shared: list[str],
    until: float,
    stop: asyncio.Event | None,
    rng: random.Random,
) -> None:
    author = f"writer-{uuid.uuid4().hex[:8]}"
    own: list[str] = []
    for _ in range(MAX_CALLS_PER_WRITER):
        if time.monotonic() >= until or (stop is not None and stop.is_set()):
            return
        dice = rng.random()
        if not own or dice < 0.3:
            written = await create(ledger, stub, author)
            if written is not None:
                own.append(written.id)
        else:
            written = await update(ledger, stub, rng.choice(own if dice < 0.8 else shared))
        if written is None:
            await asyncio.sleep(0.02)  # no busy loop against a refusing server


@dataclass
class CheckReport:
    documents: int = 0
    checked: int = 0  # acknowledged writes read back
    lost: list[str] = field(default_factory=list)  # acknowledged writes not stored as acked
    broken: list[str] = field(default_factory=list)  # histories with gaps, strays, mismatches


async def check_ledger(ledger: Ledger, stub: DocumentServiceStub) -> CheckReport:
    """Read back every acknowledged write and every document of the ledger's authors."""
    report = CheckReport()
    ids = set(ledger.acknowledged)
    for author in sorted(ledger.authors):
        ids |= await _listed(stub, author)
    report.documents = len(ids)
    semaphore = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def one_document(document_id: str) -> None:
        async with semaphore:
            problem = await _history_problem(ledger, stub, document_id)
        if problem:
            report.broken.append(problem)

    async def one_write(document_id: str, version: int, content: str) -> None:
        async with semaphore:
            request = GetDocumentVersionRequest(id=document_id, version=version)
            try:
                stored = await stub.get_document_version(request, timeout=DEADLINE)
            except GRPCError as exc:
                report.lost.append(f"{document_id} v{version}: {exc.status.name}")
                return
        report.checked += 1
        if stored.version != version or stored.document is None:
            report.lost.append(f"{document_id} v{version}: got v{stored.version}")
        elif stored.document.content != content:
            report.lost.append(f"{document_id} v{version}: content {stored.document.content!r}")

    await asyncio.gather(*(one_document(i) for i in ids))
    await asyncio.gather(
        *(
            one_write(document_id, version, content)
            for document_id, versions in ledger.acknowledged.items()
            for version, content in versions.items()
        )
    )
    return report


async def _listed(stub: DocumentServiceStub, author: str) -> set[str]:
    ids: set[str] = set()
    token = ""
    for _ in range(1000):
        request = ListDocumentsRequest(
            author=author, page_size=100, page_token=token, show_deleted=True
        )
        response = await stub.list_documents(request, timeout=DEADLINE)
        ids.update(d.id for d in response.documents)
        token = response.next_page_token
        if not token:
            return ids
    raise AssertionError(f"more than 1000 pages of documents by {author}")


async def _history_problem(ledger: Ledger, stub: DocumentServiceStub, document_id: str) -> str:
    """What is wrong with this document's history, or "" if nothing."""
    history: list[tuple[int, Document]] = []
    token = ""
    for _ in range(100):
        request = GetDocumentVersionsRequest(id=document_id, page_size=200, page_token=token)
        response = await stub.get_document_versions(request, timeout=DEADLINE)
        history.extend((v.version, v.document) for v in response.versions if v.document)
        token = response.next_page_token
        if not token:
            break
    else:
        return f"{document_id}: more than 100 pages of history"
    numbers = [number for number, _ in history]
    if numbers != list(range(1, len(numbers) + 1)):
        return f"{document_id}: versions {numbers} are not 1..N"
    strays = [d.content for _, d in history if d.content not in ledger.sent]
    if strays:
        return f"{document_id}: contents nobody sent {strays}"
    current = (
        await stub.get_document(GetDocumentRequest(id=document_id), timeout=DEADLINE)
    ).document
    assert current is not None
    last = history[-1][1]
    mine = (current.version, current.content, current.updated_at, current.etag)
    theirs = (last.version, last.content, last.updated_at, last.etag)
    if mine != theirs:
        return f"{document_id}: current {mine} but last history entry {theirs}"
    return ""


def summary(name: str, ledger: Ledger, report: CheckReport) -> str:
    failed = ledger.failures()
    slowest = max((c.ended - c.started for c in ledger.calls if c.outcome != "OK"), default=0.0)
    return (
        f"{name}: calls {len(ledger.calls)}, failed {sum(failed.values())} {dict(failed)} "
        f"(slowest failure {slowest:.2f} s), "
        f"documents {report.documents}, acknowledged writes checked {report.checked}, "
        f"lost {len(report.lost)}, broken histories {len(report.broken)}"
    )
