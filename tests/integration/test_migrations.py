"""The Alembic migrations build exactly the schema that docservice.storage.sql.schema describes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from docservice.storage.sql import search
from docservice.storage.sql.migrate import upgrade
from docservice.storage.sql.repository import create_engine
from docservice.storage.sql.schema import metadata


def _not_search(name: str | None, _type: str, _parents: object) -> bool:
    """The search index's objects are derived data outside the models (storage/sql/search.py)."""
    return not (name or "").startswith(search.OBJECT_PREFIX)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_name": _not_search})
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrated_schema_matches_models(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run is a no-op
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()
