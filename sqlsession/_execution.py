"""How a store runs its statements: two executors with one interface.

- :class:`NativeExecutor`, for an engine the store created (``SQLStore.with_url``): each Core
  statement is compiled once for the dialect; a call takes a connection from a small lease list
  filled from the engine's pool (so steady state costs no pool checkout and no greenlet switch),
  runs the compiled SQL on the driver's own connection (one round trip, autocommit), and gives
  the connection back. A connection that saw any error is invalidated, with the idle ones.
- :class:`CoreExecutor`, for an engine the caller owns: plain SQLAlchemy Core on a connection
  of the engine's pool, with the ``AUTOCOMMIT`` execution option (no ``BEGIN``/``COMMIT``);
  on MySQL, where that option costs round trips, the statement is committed instead.

Both raise every failure as :class:`StoreError` (the driver's error is its ``__cause__``), and
both run a statement once more, on a new connection, when it failed because the connection was
lost (server restarted, connection killed: the pool's older connections are dropped too) or
because the server rolled it back as a deadlock victim or serialization failure. That is safe
because every call is one autocommitted statement that gives the same result when run twice:
upserts and deletes of given rows, reads, renewals to a given expiry, compare-and-set updates
(MySQL's renewal is two calls, each retried alone, and the second only changes the version the
first one read). The only visible difference: ``delete_expired`` may count fewer rows (and
leave a batch for its next run) when a batch had committed before the connection was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.util import greenlet_spawn

from . import _dialects

__all__ = ("CoreExecutor", "Executor", "NativeExecutor", "Statement", "StoreError", "TableMissingError")


class StoreError(Exception):
    """An operation of the store failed in the database or its driver (see ``__cause__``)."""


class TableMissingError(StoreError):
    """The store's table does not exist: the migrations have not been run."""


class Statement:
    """A Core statement, and its SQL compiled once for one dialect."""

    __slots__ = ("core", "fixed", "names", "sql")

    def __init__(self, core: Executable, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        self.core = core
        assert isinstance(core, ClauseElement)
        compiled: Compiled = core.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        self.sql = compiled.string
        positions = getattr(compiled, "positiontup", None)
        self.names: tuple[str, ...] | None = tuple(positions) if dialect.positional and positions else None
        # values fixed in the statement itself (e.g. a LIMIT)
        self.fixed = {name: value for name, value in compiled.params.items() if value is not None}

    def args(self, params: Mapping[str, Any]) -> Any:
        """Parameters in the form the driver takes: a tuple (positional styles) or the mapping."""
        if self.fixed:
            params = {**self.fixed, **params}
        if self.names is None:
            return params
        return tuple([params[name] for name in self.names])


def _store_error(error: BaseException, table: str) -> StoreError:
    orig = _driver_error(error)
    if _dialects.is_missing_table(orig):
        return TableMissingError(
            f"the table {table!r} does not exist: run the migrations "
            f"(`alembic upgrade head`, see the sqlsession README)"
        )
    # the driver's own message: SQLAlchemy's wrapper would also print the parameters (the values)
    return StoreError(f"store operation on table {table!r} failed: {type(orig).__name__}: {orig}")


def _driver_error(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def _invalidate_pool(pool: Pool, lease: PoolProxiedConnection, error: BaseException) -> None:
    """After a disconnect, make the pool replace every connection as old as ``lease`` at its next
    checkout (they died with it when the server restarted), as SQLAlchemy does on a disconnect."""
    invalidate = getattr(pool, "_invalidate", None)
    if invalidate is not None:
        invalidate(lease, error, _checkin=False)


class Executor:
    """Interface of the executors."""

    __slots__ = ("table",)

    def __init__(self, table: str) -> None:
        self.table = table

    async def rows(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def rowcount(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        """Give back what this executor holds; it stays usable."""


class CoreExecutor(Executor):
    """SQLAlchemy Core on the caller's engine, in autocommit (or committed, on MySQL)."""

    __slots__ = ("autocommit", "engine", "owned")

    def __init__(self, engine: AsyncEngine, table: str, *, owned: bool = False) -> None:
        super().__init__(table)
        self.engine = engine
        self.owned = owned  # created by the store (a driver without a native runner): disposed by close()
        self.autocommit = _dialects.autocommit_is_local(engine.dialect)

    async def close(self) -> None:
        if self.owned:
            await self.engine.dispose()

    async def rows(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self._run(stmt, params, fetch=True)
        return rows

    async def rowcount(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        count: int = await self._run(stmt, params, fetch=False)
        return count

    async def _run(self, stmt: Statement, params: Mapping[str, Any], *, fetch: bool) -> Any:
        retried = False
        while True:
            try:
                return await self._once(stmt, params, fetch=fetch)
            except Exception as error:
                if retried or not _retryable_core(error):
                    # chained to the driver's error: SQLAlchemy's would print the statement's
                    # parameters (session data) into any logged traceback
                    raise _store_error(error, self.table) from _driver_error(error)
                retried = True

    async def _once(self, stmt: Statement, params: Mapping[str, Any], *, fetch: bool) -> Any:
        async with self.engine.connect() as conn:
            if self.autocommit:
                try:
                    # set on the connection in hand, not as an engine option (where a failure
                    # while connecting would lose the connection)
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                except Exception as error:
                    # not seen by SQLAlchemy's disconnect handling: do what it would do
                    lease = await conn.get_raw_connection()
                    if _dialects.is_disconnect(_driver_error(error), lease.driver_connection):
                        _invalidate_pool(self.engine.sync_engine.pool, lease, error)
                        await conn.invalidate(error)
                        raise _Disconnected from error
                    raise
            result = await conn.execute(stmt.core, params)
            value = result.all() if fetch else int(getattr(result, "rowcount", 0))
            if not self.autocommit:
                await conn.commit()
            return value


class _Disconnected(Exception):
    """The connection was lost before the statement was sent (see ``__cause__``)."""


def _retryable_core(error: Exception) -> bool:
    """Whether a statement that failed on a borrowed engine may run once more."""
    if isinstance(error, _Disconnected):
        return True
    if isinstance(error, DBAPIError):
        # SQLAlchemy recognised a disconnect and invalidated the pool's connections of that age
        return error.connection_invalidated or _dialects.is_rolled_back(_driver_error(error))
    return False


class NativeExecutor(Executor):
    """Compiled SQL on the driver's connection, leased from the engine's pool."""

    __slots__ = ("closing", "count", "engine", "idle", "idle_cap", "limit", "loop", "runner", "waiters")

    def __init__(
        self, engine: AsyncEngine, table: str, runner: _dialects.DriverRunner, idle_cap: int, limit: int
    ) -> None:
        super().__init__(table)
        self.engine = engine
        self.runner = runner
        self.idle_cap = idle_cap  # connections kept between calls
        self.limit = max(limit, 1)  # connections leased at once; more callers wait their turn
        self.idle: list[PoolProxiedConnection] = []
        self.waiters: deque[asyncio.Future[PoolProxiedConnection | None]] = deque()
        self.count = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing: set[asyncio.Task[Any]] = set()

    async def rows(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self._run(self.runner.rows, stmt, params)
        return rows

    async def rowcount(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        count: int = await self._run(self.runner.rowcount, stmt, params)
        return count

    async def _run(
        self, call: Callable[[Any, str, Any], Awaitable[Any]], stmt: Statement, params: Mapping[str, Any]
    ) -> Any:
        args = stmt.args(params)
        retried = False
        while True:
            lease = await self._acquire()
            try:
                result = await call(lease.driver_connection, stmt.sql, args)
            except BaseException as error:
                retry = await self._discard(lease, error)
                if retried or not retry:
                    if isinstance(error, Exception) and not isinstance(error, StoreError):
                        raise _store_error(error, self.table) from error
                    raise
                retried = True
                continue
            self._release(lease)
            return result

    async def close(self) -> None:
        """Return the idle connections to the pool and dispose the engine (it stays usable)."""
        loop = asyncio.get_running_loop()
        same_loop = loop is self.loop
        idle, self.idle = self.idle, []
        self.count -= len(idle)
        if same_loop:
            for lease in idle:
                await greenlet_spawn(lease.close)
        # connections made on another event loop cannot be closed from this one
        await self.engine.dispose(close=same_loop)

    # -- leases -----------------------------------------------------------------------------------

    async def _acquire(self) -> PoolProxiedConnection:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            await self._rebind(loop)
        if self.idle:
            return self.idle.pop()
        if self.count >= self.limit:
            waiter: asyncio.Future[PoolProxiedConnection | None] = loop.create_future()
            self.waiters.append(waiter)
            try:
                lease = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._hand_on(waiter.result())  # handed to us while we were cancelled
                raise
            if lease is not None:
                return lease
            # a slot was freed for us: open a connection in it
        else:
            self.count += 1
        try:
            lease = await greenlet_spawn(self.engine.sync_engine.raw_connection)
        except BaseException as error:
            self._hand_on(None)
            if isinstance(error, Exception):
                raise _store_error(error, self.table) from error
            raise
        return lease

    def _release(self, lease: PoolProxiedConnection) -> None:
        if self._give_to_waiter(lease):
            return
        if len(self.idle) < self.idle_cap:
            self.idle.append(lease)
            return
        # over the idle cap: back to the engine's pool, which closes it if it is over its size
        self.count -= 1
        task = asyncio.get_running_loop().create_task(greenlet_spawn(lease.close))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    def _hand_on(self, lease: PoolProxiedConnection | None) -> None:
        """Pass a connection, or the slot of one that is gone (``None``), to the next waiter."""
        if lease is not None:
            self._release(lease)
        elif not self._give_to_waiter(None):
            self.count -= 1

    def _give_to_waiter(self, lease: PoolProxiedConnection | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(lease)
                return True
        return False

    async def _discard(self, lease: PoolProxiedConnection, error: BaseException) -> bool:
        """After any error the connection's state is unknown: invalidate it. After a disconnect
        also the idle ones and the pool's connections of the same age (a server restart kills
        them all). Return whether the statement may run once more on a new connection."""
        failed = isinstance(error, Exception)  # not a cancellation
        disconnect = failed and _dialects.is_disconnect(error, lease.driver_connection)
        idle: list[PoolProxiedConnection] = []
        if disconnect:
            _invalidate_pool(self.engine.sync_engine.pool, lease, error)
            idle, self.idle = self.idle, []
            self.count -= len(idle)
        retryable = disconnect or (failed and _dialects.is_rolled_back(error))
        for stale in (lease, *idle):
            with contextlib.suppress(Exception):
                await greenlet_spawn(stale.invalidate, error if isinstance(error, Exception) else None)
        self._hand_on(None)
        return retryable

    async def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First call on a new event loop: connections of the old one are unusable here."""
        if self.loop is not None:
            self.idle = []
            self.waiters.clear()
            self.count = 0
            await self.engine.dispose(close=False)
        self.loop = loop
