"""The search index is derived data: built for SEARCH_LANGUAGE at start, rebuilt when the
language changes or its objects went missing, and a write that fails leaves no trace in it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from docservice._proto.document import (
    CreateDocumentRequest,
    SearchDocumentsRequest,
    UpdateDocumentRequest,
)
from docservice.core.repository import DocumentRepository
from docservice.core.service import DocumentService
from docservice.settings import Settings
from docservice.storage.mongo.repository import MongoDocumentRepository
from docservice.storage.sql.repository import SqlDocumentRepository, create_engine
from tests.support.backends import scratch_database


@pytest.fixture(params=["sqlite", "postgres", "mongo"])
async def opener(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, object]]:
    """(backend, its URL) of a store of this test's own."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite+aiosqlite:///{tmp_path / 'search.db'}"
    elif request.param == "postgres":
        async with scratch_database(request.getfixturevalue("postgres_url"), "search") as url:
            yield "postgres", url
    else:
        yield "mongo", request.getfixturevalue("mongo_url")


async def opened(backend: str, url: object, language: str, database: str) -> DocumentRepository:
    repository: DocumentRepository
    if backend == "mongo":
        repository = MongoDocumentRepository(str(url), database, search_language=language)
    else:
        repository = SqlDocumentRepository(create_engine(str(url)), search_language=language)
    await repository.migrate()
    return repository


async def found(service: DocumentService, query: str) -> set[str]:
    results = await service.search(SearchDocumentsRequest(query=query, page_size=100))
    return {hit.id for hit in results.page.hits}


async def test_a_new_language_rebuilds_the_index(opener: tuple[str, object]) -> None:
    backend, url = opener
    database = f"search_{uuid.uuid4().hex[:8]}"
    word = "m" + uuid.uuid4().hex[:10]
    repository = await opened(backend, url, "english", database)
    service = DocumentService(repository, Settings())
    made = await service.create(
        CreateDocumentRequest(title="t", author="a", content=f"{word} fresh vegetables")
    )
    assert await found(service, f"{word} vegetable") == {made.id}  # stemmed
    await repository.close()
    for language, stemmed in (("simple", set()), ("english", {made.id})):
        repository = await opened(backend, url, language, database)
        service = DocumentService(repository, Settings())
        assert await found(service, f"{word} vegetable") == stemmed, language
        assert await found(service, f"{word} vegetables") == {made.id}, language
        later = await service.create(
            CreateDocumentRequest(title="t", author="a", content=f"{word} later greens")
        )
        assert await found(service, f"{word} greens") >= {later.id}
        await repository.close()
    if backend == "mongo":
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(str(url))
        await client.drop_database(database)
        await client.close()


# MongoDB's index is the record itself: there is nothing to go missing.
@pytest.mark.parametrize("opener", ["sqlite", "postgres"], indirect=True)
async def test_missing_triggers_are_rebuilt_at_start(opener: tuple[str, object]) -> None:
    backend, url = opener
    word = "m" + uuid.uuid4().hex[:10]
    repository = await opened(backend, url, "english", "")
    service = DocumentService(repository, Settings())
    made = await service.create(CreateDocumentRequest(title="t", author="a", content=word))
    await repository.close()
    engine = create_engine(str(url))
    async with engine.begin() as conn:  # as a migration that recreates the table would
        if backend == "postgres":
            await conn.exec_driver_sql("DROP TRIGGER search_index_document ON documents")
        else:
            await conn.exec_driver_sql("DROP TRIGGER search_update")
    await engine.dispose()
    repository = await opened(backend, url, "english", "")
    service = DocumentService(repository, Settings())
    assert await found(service, word) == {made.id}
    other = "m" + uuid.uuid4().hex[:10]
    await service.update(UpdateDocumentRequest(id=made.id, content=other))
    assert await found(service, other) == {made.id}
    assert await found(service, word) == set()
    await repository.close()


# SQLite indexes any other language unstemmed, as the README says.
@pytest.mark.parametrize("opener", ["postgres", "mongo"], indirect=True)
async def test_an_unknown_language_stops_the_start(opener: tuple[str, object]) -> None:
    backend, url = opener
    with pytest.raises(ValueError, match="SEARCH_LANGUAGE"):
        await opened(backend, url, "klingon", f"search_{uuid.uuid4().hex[:8]}")
