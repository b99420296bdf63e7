"""Apply the Alembic migrations from inside a running event loop (used at server start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["MIGRATIONS", "downgrade", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` over one of the engine's connections.

    Alembic owns the transactions (no outer one): a data migration may commit batches of its
    work on its own (0002 does, so that an interrupted run resumes where it stopped).
    """
    async with engine.connect() as connection:
        await connection.run_sync(lambda sync: command.upgrade(_alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the schema back to `revision` (0002's downgrade rebuilds full copies)."""
    async with engine.connect() as connection:
        await connection.run_sync(lambda sync: command.downgrade(_alembic_config(sync), revision))
