"""Read-your-writes under concurrency: no read that starts after an acknowledged write returns
an older version of that document, whether from GetDocument, ListDocuments or the history.

With the cache on this is the race of a reader that missed, read the old row and stores it after
a writer committed; a naive invalidate-on-write cache fails this test.
"""

from __future__ import annotations

import asyncio
import random

from docservice._proto.document import (
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from tests.support.contract import create, unique

DOCUMENTS = 3
WRITERS, WRITES_EACH = 6, 15
READERS, READS_EACH = 12, 40


async def test_no_read_after_an_acknowledged_write_is_older(stub: DocumentServiceStub) -> None:
    author = unique("ryw")
    ids = [(await create(stub, author=author)).id for _ in range(DOCUMENTS)]
    acknowledged = dict.fromkeys(ids, 1)
    stale: list[str] = []
    rng = random.Random(7)

    async def writer() -> None:
        for _ in range(WRITES_EACH):
            document_id = rng.choice(ids)
            response = await stub.update_document(
                UpdateDocumentRequest(id=document_id, content=unique("c"))
            )
            version = response.document.version
            acknowledged[document_id] = max(acknowledged[document_id], version)

    async def reader() -> None:
        for turn in range(READS_EACH):
            document_id = rng.choice(ids)
            floor = acknowledged[document_id]  # every write acknowledged before this read
            kind = turn % 3
            if kind == 0:
                got = (await stub.get_document(GetDocumentRequest(id=document_id))).document
                seen = got.version
            elif kind == 1:
                page = await stub.list_documents(ListDocumentsRequest(author=author))
                seen = next(d.version for d in page.documents if d.id == document_id)
            else:
                history = await stub.get_document_versions(
                    GetDocumentVersionsRequest(id=document_id)
                )
                seen = history.versions[-1].version
            if seen < floor:
                stale.append(f"{('get', 'list', 'history')[kind]}: saw v{seen} after v{floor}")

    await asyncio.gather(*(writer() for _ in range(WRITERS)), *(reader() for _ in range(READERS)))
    assert stale == []
    for document_id in ids:
        final = (await stub.get_document(GetDocumentRequest(id=document_id))).document
        assert final.version == acknowledged[document_id]
    assert sum(acknowledged.values()) == DOCUMENTS + WRITERS * WRITES_EACH
