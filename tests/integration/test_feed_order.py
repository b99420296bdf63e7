"""The change feed never passes an event that could still commit below it (storage/sql/feed.py).

On PostgreSQL two transactions can commit out of the order in which they took their numbers.
Here a trigger holds writer A (title "slow") inside its transaction, after it took its number,
while writer B ("fast") writes; a reader polls ListDocumentEvents all along. Every page the
reader saw must be a prefix, in sequence order, of the events that finally committed: if B
could commit a higher number first, the reader would see B without A and pass A for good.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from grpclib.client import Channel

from docservice._proto.document import (
    CreateDocumentRequest,
    DocumentServiceStub,
    ListDocumentEventsRequest,
)
from tests.support.apps import running_app
from tests.support.backends import backend_settings, postgres_dsn, scratch_database
from tests.support.contract import unique

HOLD_SECONDS = 1.5
SLOW_TRIGGER = f"""
CREATE FUNCTION hold_slow_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.title = 'slow' THEN PERFORM pg_sleep({HOLD_SECONDS}); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hold_slow_writer BEFORE INSERT ON document_versions
    FOR EACH ROW EXECUTE FUNCTION hold_slow_writer();
"""


async def test_a_reader_never_passes_an_event_that_commits_later(
    postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with scratch_database(postgres_url, "feed_order") as url:
        settings = backend_settings("postgres", tmp_path, request, database_url=url)
        async with running_app(settings):
            connection = await asyncpg.connect(postgres_dsn(url))
            try:
                await connection.execute(SLOW_TRIGGER)
            finally:
                await connection.close()
            channel = Channel(settings.grpc_host, settings.grpc_port)
            stub = DocumentServiceStub(channel)
            author = unique("order")
            where = f'author = "{author}"'
            seen: list[list[int]] = []
            done = asyncio.Event()

            async def poll() -> None:
                deadline = time.monotonic() + 30
                while not done.is_set() and time.monotonic() < deadline:
                    page = await stub.list_document_events(
                        ListDocumentEventsRequest(filter=where, page_size=100)
                    )
                    seen.append([e.sequence for e in page.events])
                    await asyncio.sleep(0.01)

            def create(title: str) -> CreateDocumentRequest:
                return CreateDocumentRequest(title=title, author=author, content=title)

            poller = asyncio.create_task(poll())
            slow = asyncio.create_task(stub.create_document(create("slow")))
            await asyncio.sleep(HOLD_SECONDS / 3)  # A holds its number, uncommitted
            fast = await stub.create_document(create("fast"))
            slow_done = await slow
            done.set()
            await poller
            final = await stub.list_document_events(
                ListDocumentEventsRequest(filter=where, page_size=100)
            )
            channel.close()
    order = [(e.document_id, e.sequence) for e in final.events]
    assert [document for document, _ in order] == [slow_done.id, fast.id]  # A took first
    committed = [sequence for _, sequence in order]
    assert committed[0] < committed[1]
    assert any(page == [] for page in seen), "the reader never looked before the commits"
    for page in seen:
        assert page == committed[: len(page)], f"the reader saw {page} of {committed}"
