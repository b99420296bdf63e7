"""Settings for each backend the suite runs against, by name ("postgres", "sqlite+redis", ...)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from docservice.settings import Settings
from tests.support.servers import free_port

__all__ = ["BACKENDS", "backend_settings", "scratch_database"]

# Every contract test runs against each of these; "+redis" puts the Redis cache in front.
BACKENDS = ["sqlite", "postgres", "mongo", "sqlite+redis", "postgres+redis"]
# nx-27017, the MongoDB-protocol test server, is Python sharing two cores with the suite: under
# load it has answered a check after more than the 400 ms default, which marks it down for the
# client (UNAVAILABLE in tests about something else). The fault tests keep the default.
MONGO_TEST_TIMEOUT_MS = 2000


def backend_settings(
    backend: str, tmp: Path, request: pytest.FixtureRequest, **extra: object
) -> Settings:
    """Settings for a backend name such as "postgres" or "sqlite+redis".

    The servers come from the session fixtures of tests/conftest.py (`postgres_url`,
    `mongo_url`, `redis_url`), looked up through `request` only when the backend needs them.
    """
    backend, _, cache = backend.partition("+")
    if cache:
        redis_url = request.getfixturevalue("redis_url")
        extra = {"redis_url": redis_url, "cache_key_prefix": f"{tmp.name}:", **extra}
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'docservice.db'}"
    elif backend == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif backend == "mongo":
        url = ""
        extra = {
            "mongo_url": request.getfixturevalue("mongo_url"),
            "mongo_db": tmp.name,
            "mongo_timeout_ms": MONGO_TEST_TIMEOUT_MS,
            **extra,
        }
    else:
        raise ValueError(backend)
    values: dict[str, object] = {
        "db_type": backend,
        "database_url": url,
        "grpc_port": free_port(),
        "shutdown_grace_seconds": 2.0,
        **extra,
    }
    return Settings.model_validate(values)


@asynccontextmanager
async def scratch_database(postgres_url: str, prefix: str) -> AsyncIterator[str]:
    """A new database on the server of `postgres_url` (its URL), dropped afterwards: for tests
    that count its backends or migrate it from an older schema."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(postgres_url).set(database=name).render_as_string(False)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def postgres_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as asyncpg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(False)
