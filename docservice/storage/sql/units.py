"""Units of database work that a cancelled call cannot leave half done.

A call is cancelled at its deadline (docservice/grpc/deadlines.py) or when its client resets the
stream, at whatever await it has reached, and often twice: both happen as a client gives up.
Cut short there, the libraries below leave work behind:

- Once the pool has handed a connection out, SQLAlchemy still sets it up with awaits of its own
  (the autocommit isolation level of our reads goes through aiosqlite's thread). Cut there, the
  connection is held only by a Connection never finished, and waits for the garbage collector
  ("The garbage collector is trying to clean up non-checked-in connection"), its file
  descriptors open meanwhile.
- SQLAlchemy takes a cancellation inside a statement for a lost connection and closes it (the
  pool opens another for a later call), and a second cancellation cuts that close short:
  aiosqlite is told to stop at once, and the close, carrying on in the background, queues a
  second stop behind the first, which aiosqlite's thread never reaches ("Task was destroyed but
  it is pending!").
- asyncpg, cancelled while the pool opens a connection (to replace one closed for the reason
  above), leaves the future of its SSL negotiation holding "unexpected connection_lost() call",
  with nobody left to await it ("Future exception was never retrieved").

So a unit of work, from taking a connection from the pool (opening one if need be) through its
statements and COMMIT or ROLLBACK to giving the connection back, runs in a task of its own,
which the caller awaits through a shield. When the caller is cancelled, the unit is abandoned:

- waiting for a pooled connection, it is cancelled: it holds nothing yet;
- opening a connection or being handed one, it goes on, then gives the connection back unused;
- in a statement on PostgreSQL, it is cancelled, once: asyncpg has the server cancel the
  statement (which may wait on a lock for as long as the lock is held) and SQLAlchemy closes the
  connection, with nothing to cut that short. On SQLite a statement runs to its end in
  aiosqlite's thread whatever becomes of the task awaiting it, so the unit is left to finish;
- a write abandoned before its COMMIT rolls back instead; one whose COMMIT has begun commits or
  not, all or nothing, as the database decides. Either way the call ends cancelled.

The caller raises its CancelledError once the unit is over: a cancelled call never returns
while its connection is still out, so neither does shutdown, which disposes of the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["Unit", "Units"]

T = TypeVar("T")


class Unit:
    """What the caller and the task of one unit of work know of each other."""

    __slots__ = ("_interruptible", "_task", "abandoned")

    def __init__(self) -> None:
        self.abandoned = False  # the caller was cancelled: the work must not take effect
        self._interruptible = True  # while it waits for a pooled connection
        self._task: asyncio.Task[Any] | None = None

    def uninterrupted(self) -> None:
        """Never cancel the rest of this unit (COMMIT or ROLLBACK, giving the connection back)."""
        self._interruptible = False

    def _abandon(self) -> None:
        self.abandoned = True
        if self._interruptible and self._task is not None:
            self._interruptible = False  # cancelled once, so that its clean-up runs uncut
            self._task.cancel()


_current: ContextVar[Unit | None] = ContextVar("docservice_sql_unit", default=None)


def _handed_a_connection(*_: Any) -> None:
    """A pool event: the current unit is opening a connection or being handed one."""
    unit = _current.get()
    if unit is not None:
        unit.uninterrupted()


class Units:
    """Runs units of work on one engine (and the engines derived from it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Statements are interrupted where that reaches the database: not on SQLite.
        self._statements_interruptible = engine.dialect.name != "sqlite"
        for name in ("do_connect", "checkout"):
            if not event.contains(engine.sync_engine, name, _handed_a_connection):
                event.listen(engine.sync_engine, name, _handed_a_connection)

    async def run(
        self, bind: AsyncEngine, work: Callable[[AsyncConnection, Unit], Awaitable[T]]
    ) -> T:
        """`work` on a connection of `bind`, in a task that outlasts a cancelled caller."""
        unit = Unit()
        task = asyncio.create_task(self._work(unit, bind, work))
        unit._task = task
        abandoned_by: asyncio.CancelledError | None = None
        while True:
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError as exc:
                if not task.done():  # the caller is cancelled; the unit carries on, abandoned
                    abandoned_by = abandoned_by or exc
                    unit._abandon()
                    continue
                if abandoned_by is None:
                    raise
            except BaseException:
                if abandoned_by is None:
                    raise
            else:
                if abandoned_by is None:
                    return result
            raise abandoned_by

    async def _work(
        self, unit: Unit, bind: AsyncEngine, work: Callable[[AsyncConnection, Unit], Awaitable[T]]
    ) -> T:
        _current.set(unit)  # the task's own copy of the context
        conn = await bind.connect()
        unit.uninterrupted()
        try:
            if unit.abandoned:
                raise asyncio.CancelledError
            unit._interruptible = self._statements_interruptible
            return await work(conn, unit)
        finally:
            unit.uninterrupted()
            await conn.close()
