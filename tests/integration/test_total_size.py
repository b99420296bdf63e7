"""total_size on PostgreSQL: exact up to EXACT_TOTAL_UP_TO matches, the planner's estimate above
it (so that the first page of a huge set costs no more than of a small one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text

from docservice.core.repository import ListQuery
from docservice.storage.sql.repository import (
    EXACT_TOTAL_UP_TO,
    SqlDocumentRepository,
    create_engine,
)
from docservice.storage.sql.schema import documents


@pytest.fixture
async def repository(postgres_url: str) -> AsyncIterator[SqlDocumentRepository]:
    repository = SqlDocumentRepository(create_engine(postgres_url))
    await repository.migrate()
    try:
        yield repository
    finally:
        await repository.close()


async def _add(repository: SqlDocumentRepository, author: str, count: int) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "version": 1,
            "title": "t",
            "content": "",
            "status": 0,
            "author": author,
            "tags": [],
            "category": "",
            "comments": [],
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(count)
    ]
    async with repository._engine.begin() as conn:
        await conn.execute(insert(documents), rows)
        await conn.execute(text("ANALYZE documents"))


async def test_exact_up_to_the_bound(repository: SqlDocumentRepository) -> None:
    author = f"o'k %s 100% \\ {uuid.uuid4().hex}"  # quoting and percent signs survive
    await _add(repository, author, EXACT_TOTAL_UP_TO)
    page = await repository.list_page(ListQuery(limit=5, author=author))
    assert page.total_size == EXACT_TOTAL_UP_TO


async def test_estimated_above_the_bound(repository: SqlDocumentRepository) -> None:
    author = f"o'k %s 100% \\ {uuid.uuid4().hex}"
    await _add(repository, author, 3 * EXACT_TOTAL_UP_TO)
    page = await repository.list_page(ListQuery(limit=5, author=author))
    # Never below what was counted exactly; the planner's estimate after ANALYZE is close.
    assert page.total_size > EXACT_TOTAL_UP_TO
    assert EXACT_TOTAL_UP_TO * 1.5 <= page.total_size <= EXACT_TOTAL_UP_TO * 6
