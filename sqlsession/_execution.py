"""How a store runs its statements: one executor for every engine, on the engine's own pool.

Each call checks a connection out of the engine's pool (so ``pool_size``, ``max_overflow``,
``pool_timeout``, ``pool_pre_ping``, ``pool_recycle`` and the pool's events keep their meaning):
synchronously when an open connection waits in the pool, else in a task of its own. It
runs the statement, compiled once for the dialect, on the driver's own connection in autocommit
(one round trip; an implicit transaction the driver opened is committed at once; a MySQL
connection is switched to autocommit once and switched back when anyone else checks it out), and
checks the connection back in. When the engine has cursor-execute listeners or ``echo``, the statement runs
through Core instead, so that tracing and logging see it.

Cleanup cannot be skipped by a cancellation, however often it is repeated (anyio cancel scopes):
a connection that saw an error or a cancellation is invalidated synchronously, and a healthy one
goes back to the pool synchronously, or, when the pool would close it (an overflow connection,
a pool that keeps none), in a shielded task.

A store that owns its engine (``SQLStore.with_url``) keeps a few checked-out connections between
calls, per event loop (never more than ``pool_size - 1``, and none when the pool pings or recycles),
which saves the checkout. They are returned by ``close()``, and before any of the store's own calls
waits for the pool.

When the pool is at its limit, a call waits for a connection that another call of the store on the
same event loop is about to give back, which is handed to it directly (no check-in, no checkout, no
task), for at most ``pool_timeout`` seconds. Only while no one else waits in the pool's own queue
(the application's sessions on a shared engine): then connections go back to the pool, and a call
that waited joins the pool's queue (within what is left of its ``pool_timeout``).

An engine's pool and its connections belong to one event loop at a time: a call made while calls of
another event loop (thread) that is running run, or while the pool's queue or a connection waiting
in it belongs to such a loop, is refused at once with a clear :class:`StoreError` (an asyncio queue
wakes no waiter from another thread: such calls hung; a pre-ping on another thread's connection
crashed asyncpg). A pool without a queue (``NullPool``) serves any loop at any time.
When calls move to a new event loop, a store that owns its engine puts a new pool in it if the old
one's queue (bound to the first loop that waited in it) or connections belong to another loop, and
closes the old connections (those of a loop that is not running by shutting their sockets down);
``close()`` does the same. The executor always reads the engine's current pool, and a connection of
an old one that a call gives back afterwards is closed, not checked in there. On the application's
engine, a pool bound to another loop fails the call with advice (``await engine.dispose()``).

Every failure is raised as :class:`StoreError` (the driver's error is its ``__cause__``), as
:class:`StoreUnavailableError` when the database could not be reached; a call made with
``fail_open`` (a store with ``on_error="miss"``) answers that as a miss instead, and a circuit
breaker (``_breaker``) holds such calls back without trying after repeated failures. A statement
that failed because the connection was lost (server restarted, connection killed: the pool's older
connections are dropped too) runs once more at once on a new connection; one the server rolled back
(serialization failure, deadlock victim) runs up to ``ROLLED_BACK_ATTEMPTS`` times in all, after short
random waits that double (``Attempts``), during which the call holds no connection. That is safe
because every call is one autocommitted statement that gives the same result when run twice:
upserts and deletes of given rows, reads, renewals to a given expiry, compare-and-set updates. The
only visible difference: ``delete_expired`` may count fewer rows (and leave a batch for its next run)
when a batch had committed before the connection was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import sqlalchemy
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import DBAPIError, MissingGreenlet
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool
from sqlalchemy.pool.base import reset_commit
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.util import greenlet_spawn

from . import _dialects
from ._breaker import Breaker
from .errors import StoreError, StoreUnavailableError, TableMissingError, upgrade_hint

__all__ = ("Executor", "Statement")

logger = logging.getLogger("sqlsession")
# SQLAlchemy 2.1 hands out a connection waiting in an asyncio pool without awaiting; 2.0 always awaits
_QUEUE_GET_IS_LOCAL = tuple(int(part) for part in sqlalchemy.__version__.split(".")[:2]) >= (2, 1)
IN_USE_ELSEWHERE = (
    "this store's engine is in use on another event loop (thread); an AsyncEngine's pool and connections "
    "belong to one event loop: give each loop its own store (SQLStore.with_url per loop), or create the "
    "engine with poolclass=NullPool"
)
LOG_REPEAT_SECONDS = 60.0
"""A failure with the same cause is logged again after this long, with the count of those between."""


class Statement:
    """A Core statement, and its SQL compiled once for one dialect."""

    __slots__ = ("core", "literal_params", "param_order", "sql")

    def __init__(self, core: Executable, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        if not isinstance(core, ClauseElement):
            raise TypeError(f"not a Core statement: {core!r}")
        self.core = core
        compiled = core.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql = compiled.string
        positions = getattr(compiled, "positiontup", None)
        # the parameter names in the order of a positional driver's placeholders
        self.param_order: tuple[str, ...] | None = (
            tuple(positions) if dialect.positional and positions else None
        )
        # values given in the statement itself (e.g. a LIMIT)
        self.literal_params = {name: value for name, value in compiled.params.items() if value is not None}

    def args(self, params: Mapping[str, Any]) -> Any:
        """Parameters in the form the driver takes: a tuple (positional styles) or the mapping."""
        if self.literal_params:
            params = {**self.literal_params, **params}
        if self.param_order is None:
            return params
        return tuple([params[name] for name in self.param_order])


def _driver_error(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def _bound_to_another_loop(error: BaseException) -> bool:
    """Whether ``error`` is asyncio's refusal of an object (a pool's queue, a connection) that belongs
    to another event loop."""
    orig = _driver_error(error)
    message = str(orig)
    return isinstance(orig, RuntimeError) and (
        "different loop" in message or "different event loop" in message or "loop is closed" in message
    )


def _store_error(error: BaseException, table: str, pool: Pool, url: URL, *, unreachable: bool) -> StoreError:
    if isinstance(error, PoolTimeoutError):
        return StoreUnavailableError(
            f"store operation on table {table!r}: no connection was free within pool_timeout "
            f"({pool.status()}); raise pool_size or max_overflow, or find what holds the connections"
        )
    orig = _driver_error(error)
    if _dialects.is_missing_table(orig):
        return TableMissingError(f"the table {table!r} does not exist: run {upgrade_hint(url, table)}")
    # the driver's own message: SQLAlchemy's wrapper would also print the parameters (the values)
    message = f"store operation on table {table!r} failed: {type(orig).__name__}: {orig}"
    if unreachable or _dialects.is_unreachable(orig):
        return StoreUnavailableError(message)
    if _bound_to_another_loop(orig):
        message += (
            "; the engine's pool or its connections belong to another event loop: dispose of the engine "
            "(await engine.dispose()) after code on another loop used it, or give each loop its own store"
        )
    return StoreError(message)


def _retryable(error: BaseException, driver_connection: Any) -> tuple[bool, bool]:
    """``(disconnect, rolled_back)`` for an error raised by a statement."""
    if not isinstance(error, Exception):  # a cancellation
        return False, False
    orig = _driver_error(error)
    disconnect = _dialects.is_disconnect(orig, driver_connection) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )
    return disconnect, not disconnect and _dialects.is_rolled_back(orig)


ROLLED_BACK_ATTEMPTS = 4
"""Runs in all of a statement the server rolls back (serialization failure, deadlock victim): a
one-row statement conflicts only with transactions on the same row at the same moment, so a conflict
that outlasts three waits is lasting contention, where more attempts only add load; the waits add at
most 35 ms to a call (17 ms on average)."""
BACKOFF_FIRST = 0.005
"""Seconds: the longest wait before the first run again; it doubles for each next one."""
BACKOFF_MAX = 0.1
"""Seconds: the longest wait before any run again."""


class Attempts:
    """What a call may still try after a failure: a disconnect runs the statement once more at once
    (on a new connection), a rollback up to ``ROLLED_BACK_ATTEMPTS`` runs in all, each after a wait
    drawn uniformly below a cap that doubles from ``BACKOFF_FIRST`` up to ``BACKOFF_MAX`` ("full
    jitter": callers that conflicted once do not meet again at the same moment)."""

    __slots__ = ("disconnects", "rollbacks")

    def __init__(self) -> None:
        self.disconnects = 0
        self.rollbacks = 0

    def next_delay(self, *, disconnect: bool, rolled_back: bool) -> float | None:
        """Seconds to wait before running the statement again; ``None``: give up (raise)."""
        if disconnect:
            if self.disconnects:
                return None
            self.disconnects += 1
            return 0.0
        if not rolled_back or self.rollbacks >= ROLLED_BACK_ATTEMPTS - 1:
            return None
        cap = min(BACKOFF_MAX, BACKOFF_FIRST * 2**self.rollbacks)
        self.rollbacks += 1
        return random.uniform(0.0, cap)


class Executor:
    """Runs a store's statements on an engine's pool (see the module's docstring)."""

    __slots__ = (
        "breaker",
        "busy",
        "calls",
        "checkin_commits",
        "checkout_is_local",
        "closing",
        "connecting",
        "engine",
        "idle",
        "in_flight",
        "keep",
        "last_failure",
        "last_miss",
        "owned",
        "runner",
        "running_on",
        "sweeps",
        "table",
        "waiters",
        "waiting",
    )

    def __init__(
        self,
        engine: AsyncEngine,
        table: str,
        *,
        owned: bool,
        keep: int = 0,
        breaker_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        pool = engine.sync_engine.pool
        self.table = table  # named in errors
        self.owned = owned  # created by the store: its autocommit engine is disposed by close()
        self.runner = _dialects.driver_runner(engine.dialect)
        _dialects.share_engine(engine)
        # a pool that commits on the way in does I/O there: never checked in synchronously
        self.checkin_commits = getattr(pool, "_reset_on_return", None) is reset_commit
        # a checkout from a queue of connections, with no pre-ping (I/O), can be done synchronously
        self.checkout_is_local = (
            _QUEUE_GET_IS_LOCAL and isinstance(pool, QueuePool) and not getattr(pool, "_pre_ping", True)
        )
        # connections kept checked out between calls, per event loop
        self.keep = keep if isinstance(pool, QueuePool) else 0
        self.idle: dict[asyncio.AbstractEventLoop, list[PoolProxiedConnection]] = {}
        self.waiting: dict[asyncio.AbstractEventLoop, int] = {}  # our calls waiting for the pool
        # our calls holding a connection, and those waiting for one of them to be handed on
        self.busy: dict[asyncio.AbstractEventLoop, int] = {}
        self.waiters: dict[asyncio.AbstractEventLoop, deque[tuple[asyncio.Future[Any], float]]] = {}
        self.sweeps: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}  # _time_out_waiters
        self.closing: set[asyncio.Future[Any]] = set()
        self.connecting: set[asyncio.Future[Any]] = set()  # our checkouts in tasks, not yet done
        # the event loop whose calls run now, and how many: calls of another loop are refused
        # meanwhile (an asyncio pool's queue would wake one loop's waiters from another's thread)
        # (a pool without a queue, such as NullPool, opens and closes connections on each call's own
        # loop: any loop may use it at any time)
        self.calls: threading.Lock | None = threading.Lock() if isinstance(pool, QueuePool) else None
        self.running_on: asyncio.AbstractEventLoop | None = None
        self.in_flight = 0
        # the cause last logged, when, and how many failures with that cause went unlogged since
        self.last_failure: tuple[str, float, int] = ("", 0.0, 0)
        # calls that could not reach the database: shared by the store and its namespaces
        self.breaker = Breaker(breaker_clock)
        # when a call answered as a miss was last logged, and how many were not logged since
        self.last_miss: tuple[float | None, int] = (None, 0)

    @property
    def pool(self) -> Pool:
        """The engine's pool: a new one after ``engine.dispose()`` (which ``close()`` calls)."""
        return self.engine.sync_engine.pool

    # -- running statements ------------------------------------------------------------------------

    async def rows(
        self, stmt: Statement, params: Mapping[str, Any], *, fail_open: bool = False
    ) -> Sequence[Sequence[Any]]:
        """The rows of ``stmt``. ``fail_open``: when the database cannot be reached (or the breaker
        holds calls back), no rows instead of ``StoreUnavailableError``."""
        if fail_open and not self.breaker.allow():
            self._missed(None)
            return ()
        loop = self._enter()
        try:
            if self.runner is None or self._traced():
                rows: Sequence[Sequence[Any]] = await self._through_core(stmt, params, fetch=True)
            else:
                rows = await self._native(self.runner.rows, stmt, params)
        except StoreError as failure:
            if self._failed_open(failure, fail_open):
                return ()
            raise
        finally:
            self._leave(loop)
        if self.breaker.failures:
            self._reached()
        return rows

    async def rowcount(self, stmt: Statement, params: Mapping[str, Any], *, fail_open: bool = False) -> int:
        """The rows ``stmt`` changed. ``fail_open``: when the database cannot be reached (or the
        breaker holds calls back), ``0`` (nothing was done) instead of ``StoreUnavailableError``."""
        if fail_open and not self.breaker.allow():
            self._missed(None)
            return 0
        loop = self._enter()
        try:
            if self.runner is None or self._traced():
                count: int = await self._through_core(stmt, params, fetch=False)
            else:
                count = await self._native(self.runner.rowcount, stmt, params)
        except StoreError as failure:
            if self._failed_open(failure, fail_open):
                return 0
            raise
        finally:
            self._leave(loop)
        if self.breaker.failures:
            self._reached()
        return count

    def _enter(self) -> asyncio.AbstractEventLoop:
        """Count a call on the running event loop. Refused at once while calls of another event loop
        (thread) that is running run, or while the pool's queue or a connection waiting in it belongs
        to such a loop: an asyncio pool's queue belongs to one loop (a connection given back from
        another thread did not wake a call waiting in it: it hung), and a checkout that pings would
        do I/O on another thread's connection (asyncpg crashed). A pool bound to a loop that is not
        running (ended, or left stopped) is replaced when the store owns the engine."""
        loop = asyncio.get_running_loop()
        if self.calls is None:
            return loop
        with self.calls:
            running_on = self.running_on
            if running_on is not loop:
                # (a loop that is not running makes no progress: its calls may never end, e.g. a loop
                # left stopped after run_until_complete gave up waiting, and must not block others)
                others = self._other_loops(loop)
                if any(other.is_running() for other in others) or (
                    running_on is not None and self.in_flight and running_on.is_running()
                ):
                    raise StoreError(IN_USE_ELSEWHERE)
                self.running_on = loop
                self.in_flight = 0  # (the calls of a loop that was stopped or closed under them)
                if self.owned and others:
                    self._renew_pool()
            self.in_flight += 1
        return loop

    def _leave(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.calls is None:
            return
        with self.calls:
            if self.running_on is loop:
                self.in_flight -= 1

    def _loop_in_use_elsewhere(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether calls of another event loop, which is running, run now."""
        if self.calls is None:
            return False
        with self.calls:
            running_on = self.running_on
            return running_on not in (None, loop) and self.in_flight > 0 and running_on.is_running()

    def _traced(self) -> bool:
        """Whether SQLAlchemy must see the statement: ``echo`` or cursor-execute listeners."""
        sync = self.engine.sync_engine
        return bool(sync.echo or sync.dispatch.before_cursor_execute or sync.dispatch.after_cursor_execute)

    async def _native(
        self,
        call: Callable[[PoolProxiedConnection, str, Any], Awaitable[Any]],
        stmt: Statement,
        params: Mapping[str, Any],
    ) -> Any:
        args = stmt.args(params)
        attempts = Attempts()
        while True:
            lease = await self._checkout()
            try:
                result = await call(lease, stmt.sql, args)
            except BaseException as error:
                # synchronous: a repeated cancellation cannot interrupt it
                disconnect, rolled_back = _retryable(error, lease.driver_connection)
                self._discard(lease, error, disconnect)
                delay = attempts.next_delay(disconnect=disconnect, rolled_back=rolled_back)
                if delay is None:
                    if isinstance(error, Exception):
                        raise self._failed(error, unreachable=disconnect) from _driver_error(error)
                    raise
            else:
                await self._give_back(lease)
                return result
            if delay:  # holding no connection: a cancellation here leaves nothing to clean up
                await asyncio.sleep(delay)

    async def _through_core(self, stmt: Statement, params: Mapping[str, Any], *, fetch: bool) -> Any:
        attempts = Attempts()
        while True:
            try:
                return await self._core_once(stmt, params, fetch=fetch)
            except Exception as error:
                disconnect, rolled_back = _retryable(error, None)
                delay = attempts.next_delay(disconnect=disconnect, rolled_back=rolled_back)
                if delay is None:
                    # chained to the driver's error: SQLAlchemy's would print the statement's
                    # parameters (session data) into any logged traceback
                    raise self._failed(error, unreachable=disconnect) from _driver_error(error)
            if delay:  # the connection went back to the pool when _core_once returned
                await asyncio.sleep(delay)

    async def _core_once(self, stmt: Statement, params: Mapping[str, Any], *, fetch: bool) -> Any:
        async with self.engine.connect() as conn:
            if not self.owned and _dialects.autocommit_is_local(self.engine.dialect):
                # set on the connection in hand: no BEGIN/COMMIT round trips
                try:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                except Exception as error:
                    # not seen by SQLAlchemy's disconnect handling: do what it would do
                    if _dialects.is_disconnect(_driver_error(error)):
                        await conn.invalidate(error)
                    raise
                local_autocommit = True
            else:
                local_autocommit = self.owned
            result = await conn.execute(stmt.core, params)
            value = result.all() if fetch else int(getattr(result, "rowcount", 0))
            if not local_autocommit:
                await conn.commit()
            return value

    def _failed(self, error: BaseException, *, unreachable: bool = False) -> StoreError:
        """The ``StoreError`` for ``error``: ``StoreUnavailableError`` when the database could not
        be reached (``unreachable``: known to be so already)."""
        return _store_error(error, self.table, self.pool, self.engine.url, unreachable=unreachable)

    def _failed_open(self, failure: StoreError, fail_open: bool) -> bool:
        """Count a failure to reach the database in the breaker; whether the call answers it as a
        miss (``fail_open``), logged as a warning, or raises it, logged as an error."""
        unreachable = isinstance(failure, StoreUnavailableError)
        if unreachable:
            self.breaker.failed()
        if unreachable and fail_open:
            self._missed(failure)
            return True
        self._log_failure(failure)
        return False

    def _missed(self, failure: StoreError | None) -> None:
        """A call answered as a miss (``failure``: why; ``None``: held back by the breaker). Logged
        as a warning at most every ``LOG_REPEAT_SECONDS``, with the number of misses in between."""
        logged_at, unlogged = self.last_miss
        now = self.breaker.clock()
        if logged_at is not None and now - logged_at < LOG_REPEAT_SECONDS:
            self.last_miss = (logged_at, unlogged + 1)
            return
        cause = str(failure) if failure is not None else "calls are held back after repeated failures"
        again = f" ({unlogged} more since the last warning)" if unlogged else ""
        logger.warning(
            "sqlsession: the database cannot be reached, stores with on_error='miss' answer reads as "
            "misses and skip writes: %s%s",
            cause,
            again,
        )
        self.last_miss = (now, 0)

    def _reached(self) -> None:
        """A call reached the database after failures: the breaker closes."""
        if self.breaker.succeeded():
            logger.info("sqlsession: the database can be reached again")

    def _log_failure(self, failure: StoreError) -> None:
        """Log a failure that is raised: a cause is logged once, and again (with the number of
        failures in between) while it goes on, at most every ``LOG_REPEAT_SECONDS``."""
        cause = str(failure)
        last, logged_at, unlogged = self.last_failure
        now = self.breaker.clock()
        if cause != last or now - logged_at >= LOG_REPEAT_SECONDS:
            again = f" ({unlogged} more failures like it since it was last logged)" if unlogged else ""
            logger.error("sqlsession: %s%s", cause, again)
            self.last_failure = (cause, now, 0)
        else:
            self.last_failure = (last, logged_at, unlogged + 1)

    # -- connections -------------------------------------------------------------------------------

    async def _checkout(self) -> PoolProxiedConnection:
        """A connection for one call, counted in ``busy`` until the call hands it on, gives it back
        or drops it (``_pass_on``, ``_discard``), with no await in between."""
        loop = asyncio.get_running_loop()
        idle = self.idle.get(loop)
        if idle:
            self._took(loop)
            return idle.pop()
        if self.idle:
            self._drop_dead_loops()
        self.waiting[loop] = self.waiting.get(loop, 0) + 1
        retried = False
        try:
            while True:
                pool = self.pool
                try:
                    # synchronously only when no other call of ours waits for the pool (first come,
                    # first served)
                    lease = self._checkout_now() if self.waiting[loop] == 1 else None
                    deadline = None
                    if lease is None and self.busy.get(loop) and self._pool_at_limit():
                        deadline = loop.time() + self._timeout()
                        handed = await self._handed_on(loop, deadline)
                        if handed is not None:
                            return handed  # counted in busy since the call before took it
                    if lease is None:
                        # sent on to the pool after waiting for a hand-on: within what is left
                        lease = await self._connect(deadline)
                except Exception as error:
                    if retried or not _bound_to_another_loop(error):
                        raise self._failed(error) from _driver_error(error)
                    # the pool's queue or a connection (pinged in the checkout) of another event loop:
                    # a new pool when the store owns the engine; else the pool has replaced the
                    # connection it could not ping
                    retried = True
                    others = self._other_loops(loop)
                    if any(other.is_running() for other in others):
                        raise self._failed(error) from _driver_error(error)
                    if self.owned and self.pool is pool and others:
                        self._renew_pool()
                    continue
                owner = _dialects.connection_loop(lease.driver_connection)
                if owner is None or owner is loop:
                    self._took(loop)
                    return lease
                if owner.is_running():
                    self._drop(lease)  # not ours to use, nor to give back from this thread
                    raise StoreError(IN_USE_ELSEWHERE)
                # made on an event loop that has ended or stopped (start-up code, say): unusable here
                self._drop(lease)
        finally:
            if self.waiting[loop] > 1:
                self.waiting[loop] -= 1
            else:  # no entry kept for an event loop that may end
                del self.waiting[loop]

    def _pool_at_limit(self) -> bool:
        """Whether the pool may open no more connections and holds none that is free: none, or
        those on their way to checkouts of ours that wait in its queue (and whether it tells who
        waits there)."""
        pool = self.pool
        limit = getattr(pool, "_max_overflow", -1)
        return (
            isinstance(pool, QueuePool)
            and limit > -1
            and (pool.checkedin() == 0 or self._connecting_on(asyncio.get_running_loop()) > 0)
            and getattr(pool, "_overflow", limit) >= limit
            and _queued(pool) is not None
        )

    def _timeout(self) -> float:
        return self.pool.timeout() if isinstance(self.pool, QueuePool) else 30.0

    async def _handed_on(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> PoolProxiedConnection | None:
        """The connection another call on this loop hands on when it is done with it; ``None``:
        take one from the pool instead (that call gave its connection back to the pool, or lost it).
        Raises SQLAlchemy's pool ``TimeoutError`` after about ``pool_timeout`` seconds, as the pool
        would (one timer per event loop looks at the waiting calls a few times per ``pool_timeout``:
        a timer per call would cost a tenth of a busy store's CPU)."""
        handed: asyncio.Future[PoolProxiedConnection | None] = loop.create_future()
        timeout = self._timeout()
        entry = (handed, deadline)
        waiters = self.waiters.setdefault(loop, deque())
        waiters.append(entry)
        if loop not in self.sweeps:
            self.sweeps[loop] = loop.call_later(timeout / 4, self._time_out_waiters, loop, timeout)
        try:
            return await handed
        except BaseException:
            # handed on, then cancelled before this call could take it: on to the next (synchronous)
            if handed.done() and not handed.cancelled() and handed.exception() is None:
                lease = handed.result()
                if lease is not None and not self._pass_on(lease, loop):
                    self._drop(lease)
            raise
        finally:
            handed.cancel()  # no-op once it has its answer
            if handed.cancelled() or handed.exception() is not None:  # not taken off by who answered
                with contextlib.suppress(ValueError):
                    waiters.remove(entry)
            # this loop's deque only if it is still the one this call joined: once emptied it may
            # have been replaced by a new one, holding calls that wait now
            if not waiters and self.waiters.get(loop) is waiters:
                del self.waiters[loop]

    def _connecting_on(self, loop: asyncio.AbstractEventLoop) -> int:
        """How many of the store's checkouts in tasks on ``loop`` are not done yet."""
        return sum(1 for task in list(self.connecting) if task.get_loop() is loop)

    def _time_out_waiters(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        del self.sweeps[loop]
        waiters = self.waiters.get(loop, ())
        now = loop.time()
        for handed, deadline in waiters:
            if deadline <= now and not handed.done():
                message = (
                    f"no connection was handed on within pool_timeout ({timeout} s): {self.pool.status()}"
                )
                handed.set_exception(PoolTimeoutError(message))
        if any(not handed.done() for handed, _ in waiters):
            self.sweeps[loop] = loop.call_later(timeout / 4, self._time_out_waiters, loop, timeout)

    def _checkout_now(self) -> PoolProxiedConnection | None:
        """The connection waiting in the pool, checked out without awaiting (so that nothing can
        interrupt it) when that takes no I/O; ``None`` when it would (no connection waiting, one
        the pool must reconnect, a pre-ping, checkout listeners): the caller then checks out in a
        task of its own. Saves the task and its event loop turns (a third of a call's CPU)."""
        pool = self.pool
        if (
            not self.checkout_is_local
            or _dialects.other_checkout_listeners(pool)
            or not _next_checkout_is_open(pool)
        ):
            return None
        try:
            return _dialects.checkout_for_store(pool)
        except MissingGreenlet:  # it needed I/O after all: SQLAlchemy raises before any, taking nothing
            return None

    async def _connect(self, deadline: float | None = None) -> PoolProxiedConnection:
        """Check a connection out of the pool, in a task of its own: a checkout may take I/O (a new
        connection, a wait for one, a pre-ping, a recycle), and a cancellation of the caller must
        not cut it in half; a connection that arrives after the caller left goes back at once.
        ``deadline`` (the loop's time): give up then, as the pool gives up after ``pool_timeout``."""
        # the pool read when the checkout runs: close() may have replaced it since
        task = self._in_background(greenlet_spawn(lambda: _dialects.checkout_for_store(self.pool)))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)
        try:
            if deadline is None:
                return await asyncio.shield(task)
            try:
                return await asyncio.wait_for(asyncio.shield(task), max(deadline - task.get_loop().time(), 0))
            except asyncio.TimeoutError:
                status = self.pool.status()
                raise PoolTimeoutError(f"no connection was free within pool_timeout: {status}") from None
        except BaseException:
            task.add_done_callback(self._give_back_unwanted)
            raise

    def _give_back_unwanted(self, task: asyncio.Task[PoolProxiedConnection]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        lease, loop = task.result(), task.get_loop()
        owner = _dialects.connection_loop(lease.driver_connection)
        if owner is None or owner is loop:
            self._took(loop)  # for a call of ours that waits, else back to the pool
            if self._pass_on(lease, loop):
                return
        self._drop(lease)
        self._wake_one(loop)

    async def _give_back(self, lease: PoolProxiedConnection) -> None:
        loop = asyncio.get_running_loop()
        if not self._pass_on(lease, loop):
            # the pool will close it (an I/O): in a task of its own, so that no cancellation cuts it
            await asyncio.shield(self._in_background(greenlet_spawn(_checkin_clean, lease)))

    def _took(self, loop: asyncio.AbstractEventLoop) -> None:
        self.busy[loop] = self.busy.get(loop, 0) + 1

    def _done_with(self, loop: asyncio.AbstractEventLoop) -> None:
        """A connection on ``loop`` left the hands of the store's calls."""
        if self.busy[loop] > 1:
            self.busy[loop] -= 1
        else:
            del self.busy[loop]

    def _pass_on(self, lease: PoolProxiedConnection, loop: asyncio.AbstractEventLoop) -> bool:
        """Hand ``lease`` to a call of ours waiting on this loop, keep it, or check it in, all
        without awaiting; ``False``: the pool would close it, which the caller must do."""
        if _of_replaced_pool(lease, self.pool):
            # from a pool the engine has disposed of since (close()): closed, not checked in there
            self._done_with(loop)
            self._drop(lease)
            self._wake_one(loop)
            return True
        waiters = self.waiters.get(loop)
        while waiters:
            handed, deadline = waiters.popleft()
            if handed.done():  # timed out or cancelled
                continue
            queued = _queued(self.pool)
            if queued == 0:
                handed.set_result(lease)  # still busy: counted once, by the call that took it
                return True
            if queued is None or queued > self._connecting_on(loop):
                # the application's sessions wait in the pool's queue: the connection goes back
                # there, and this call takes its turn in that queue
                handed.set_result(None)
            else:  # a checkout of ours waits there: it takes the connection, this call waits on
                waiters.appendleft((handed, deadline))
            break
        self._done_with(loop)
        if self.keep and not self.waiting.get(loop):
            idle = self.idle.setdefault(loop, [])
            if len(idle) < self.keep:
                idle.append(lease)
                return True
        return self._checkin_now(lease)

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)
        return task

    def _drop(self, lease: PoolProxiedConnection) -> None:
        """Take ``lease`` out of the pool (which makes a new connection in its place when needed)
        and close it, without awaiting anything: nothing can interrupt this."""
        driver_connection = lease.driver_connection
        lease.detach()
        self._close_unpooled(driver_connection)

    def _close_unpooled(self, driver_connection: Any) -> None:
        owner = _dialects.connection_loop(driver_connection)
        if owner is not None and owner.is_running() and owner is not asyncio.get_running_loop():
            # another thread's event loop: closed there (an asyncio transport is not thread-safe)
            with contextlib.suppress(RuntimeError):  # (unless that loop has closed since: closed here)
                owner.call_soon_threadsafe(self._close_unpooled, driver_connection)
                return
        closing = _dialects.close_unpooled(driver_connection)
        if asyncio.iscoroutine(closing):
            self._in_background(closing)
        elif isinstance(closing, asyncio.Future):  # completed by the driver's thread: awaited by close()
            self.closing.add(closing)
            closing.add_done_callback(self.closing.discard)

    def _checkin_now(self, lease: PoolProxiedConnection) -> bool:
        """Check ``lease`` in synchronously when the pool keeps it (no I/O); whether it did."""
        pool = self.pool
        if (
            self.checkin_commits
            or not isinstance(pool, QueuePool)
            or _of_replaced_pool(lease, pool)  # closed instead
            or pool.checkedin() >= pool.size()
        ):
            return False
        _checkin_clean(lease)
        return True

    def _discard(self, lease: PoolProxiedConnection, error: BaseException, disconnect: bool) -> None:
        """After an error or a cancellation the connection's state is unknown: invalidate it (the
        driver's connection is closed at once, without I/O). After a disconnect also this loop's idle
        connections, and the pool's connections of the same age (a server restart kills them all)."""
        loop = asyncio.get_running_loop()
        self._done_with(loop)
        if disconnect:
            # what SQLAlchemy does on a disconnect: connections as old as this one are replaced
            invalidate_older = getattr(self.pool, "_invalidate", None)
            if invalidate_older is not None:
                invalidate_older(lease, error, _checkin=False)
            stale = self.idle.pop(loop, [])
        else:
            stale = []
        for connection in (lease, *stale):
            self._drop(connection)
        self._wake_one(loop)

    def _wake_one(self, loop: asyncio.AbstractEventLoop) -> None:
        """A connection left the store's hands on ``loop`` without being handed on: the first call
        of ours waiting there for one goes to the pool instead (which may open one in its place)."""
        waiters = self.waiters.get(loop)
        while waiters:
            handed, _ = waiters.popleft()
            if not handed.done():
                handed.set_result(None)
                return

    def _kept_elsewhere(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether another event loop keeps connections between its calls."""
        return any(idle for other, idle in list(self.idle.items()) if other is not loop)

    def _other_loops(self, loop: asyncio.AbstractEventLoop) -> set[asyncio.AbstractEventLoop]:
        """The event loops other than ``loop`` that the pool's queue (an asyncio queue belongs to the
        first loop that waited in it: SQLAlchemy's own) or a connection waiting in it belongs to."""
        pool = self.pool
        loops = {_queue_loop(pool)} | {
            _dialects.connection_loop(connection) for connection in _pooled_connections(pool)
        }
        return {other for other in loops if other is not None and other is not loop}

    def _renew_pool(self) -> None:
        """Put a new pool in the engine the store owns, synchronously (``Engine.dispose(close=False)``),
        and close the connections that waited in the old one: also those of an event loop that has
        ended, which the pool's own ``dispose()`` cannot close (it logs an error for each)."""
        old = self.pool
        self.engine.sync_engine.dispose(close=False)
        for connection in _pooled_connections(old):
            self._close_unpooled(connection)

    def _drop_dead_loops(self) -> None:
        # list(): a copy taken at once, while other threads (event loops) may add their own
        for loop in [loop for loop in list(self.idle) if loop.is_closed()]:
            for lease in self.idle.pop(loop, []):
                self._drop(lease)
            self.waiting.pop(loop, None)
            self.busy.pop(loop, None)
            self.waiters.pop(loop, None)
            self.sweeps.pop(loop, None)

    async def close(self, *, dispose: bool) -> None:
        """Give back the connections this event loop holds; ``dispose``: put a new pool in an engine
        the store created and close the old one's connections (the engine stays usable), unless
        another event loop's calls run or keep connections now (that loop's own close() does it)."""
        loop = asyncio.get_running_loop()
        self._drop_dead_loops()
        renew = dispose and self.owned
        while True:
            # a checkout in a task that its call left may still bring a connection back to keep
            for lease in self.idle.pop(loop, []):
                if not self._checkin_now(lease):
                    self._drop(lease)
            # asyncio.wait: a cancelled close() leaves this work to finish (gather would cancel it)
            ours = [task for task in list(self.closing) if task.get_loop() is loop]
            if ours:
                await asyncio.wait(ours)
                continue
            # no checkout of this loop's calls is under way in the old pool now (none is left waiting
            # for a connection that is being closed); another loop's calls or kept connections are
            # that loop's, and its own close() ends them
            if not renew or self._loop_in_use_elsewhere(loop) or self._kept_elsewhere(loop):
                break
            self._renew_pool()
            renew = False


def _asyncio_queue(pool: Pool) -> Any:
    """The asyncio queue of connection records in an asyncio ``QueuePool`` (SQLAlchemy's private
    state, read only here); ``None`` for any other shape of pool, which the readers below treat as
    "unknown"."""
    return getattr(getattr(pool, "_pool", None), "_queue", None)


def _of_replaced_pool(lease: PoolProxiedConnection, pool: Pool) -> bool:
    """Whether ``lease`` came from a pool the engine has replaced since (``close()``, a new event loop):
    it is closed, never checked in there (its private attribute, read only here)."""
    return getattr(lease, "_pool", pool) is not pool


def _next_checkout_is_open(pool: Pool) -> bool:
    """Whether the connection a checkout of ``pool`` takes next is open and need not be replaced
    (SQLAlchemy's own test in ``_ConnectionRecord.get_connection``, read from the pool's private
    state: a queue of connection records; any other shape of it reads as ``False``)."""
    try:
        waiting = _asyncio_queue(pool)._queue
        record = waiting[-1] if pool._pool.use_lifo else waiting[0]  # type: ignore[attr-defined]
        return bool(
            record.dbapi_connection is not None
            and pool._recycle < 0
            and pool._invalidate_time <= record.starttime
            and record._soft_invalidate_time <= record.starttime
        )
    except (AttributeError, IndexError, TypeError):
        return False


def _pooled_connections(pool: Pool) -> list[Any]:
    """The driver connections waiting in ``pool`` (read from its private state, a queue of connection
    records); none for any other shape of it."""
    try:
        records = list(_asyncio_queue(pool)._queue)
        return [record.driver_connection for record in records if record.dbapi_connection is not None]
    except (AttributeError, TypeError, RuntimeError):
        return []


def _queue_loop(pool: Pool) -> asyncio.AbstractEventLoop | None:
    """The event loop ``pool``'s asyncio queue belongs to, once a checkout waited in it (its private
    state); ``None``: none yet, or another shape of pool."""
    loop = getattr(_asyncio_queue(pool), "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def _queued(pool: Pool) -> int | None:
    """How many wait in ``pool``'s own queue for a connection (read from its private state, an
    asyncio queue); ``None`` for any other shape of it."""
    try:
        getters = _asyncio_queue(pool)._getters
        return sum(not getter.done() for getter in getters)
    except (AttributeError, TypeError, RuntimeError):  # RuntimeError: changed by another thread
        return None


def _checkin_clean(lease: PoolProxiedConnection) -> None:
    """Check in a connection whose transaction the store has already ended (nothing to roll back)."""
    # SQLAlchemy's own Connection checks in this way after it has ended the transaction itself
    lease._close_special(transaction_reset=True)
