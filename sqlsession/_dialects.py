"""Every difference between dialects lives here; the rest of the package is dialect-neutral Core.

- the upsert construct (``ON CONFLICT DO UPDATE`` vs ``ON DUPLICATE KEY UPDATE``);
- the renew strategy, read off SQLAlchemy's dialect (``UPDATE ... RETURNING`` or not);
- a ``DELETE`` of at most N rows found through the expiry index (``ORDER BY ... LIMIT`` on MySQL,
  a subquery elsewhere);
- the default async driver for a plain URL, and the settings of an engine we create
  (SQLite: WAL, ``synchronous=NORMAL``, a busy timeout; behind a transaction-mode pooler such as
  PgBouncer, no named server-side prepared statements);
- recognising in a driver error that the table does not exist, that the connection is gone, that
  the database cannot be reached, or that the server rolled the statement back (deadlock victim);
  whether switching a connection to autocommit costs round trips (MySQL);
- how to run a compiled statement on each driver's own connection, in autocommit whatever the
  engine's isolation level: asyncpg, psycopg, asyncmy, aiosqlite (asyncmy: a connection a store
  switched to autocommit is switched back when anyone else checks it out); the event loop a
  driver's connection is bound to. Parameters are plain ``bytes``, ``int`` and ``None``, which every one of
  them binds natively.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    ColumnElement,
    Delete,
    Table,
    and_,
    any_,
    column,
    delete,
    event,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnClause, UnaryExpression
from sqlalchemy.sql.visitors import replacement_traverse

__all__ = (
    "SQLITE_BUSY_TIMEOUT_MS",
    "TRANSACTION_POOLING_CONNECT_ARGS",
    "DriverRunner",
    "async_url",
    "autocommit_is_local",
    "bounded_delete",
    "checkout_for_store",
    "close_unpooled",
    "configure_owned_engine",
    "connection_loop",
    "driver_runner",
    "is_disconnect",
    "is_missing_table",
    "is_rolled_back",
    "is_unreachable",
    "other_checkout_listeners",
    "renew_with_returning",
    "share_engine",
    "upsert_statement",
)

SQLITE_BUSY_TIMEOUT_MS = 15_000

# driver used when a URL names only the database ("postgresql://...")
_DEFAULT_ASYNC_DRIVER = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",  # the form many hosting providers hand out
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
}
# the async drivers the store runs on, and the extra of sqlsession that installs each
_DRIVER_EXTRAS = {"aiosqlite": None, "asyncpg": "asyncpg", "psycopg": "psycopg", "asyncmy": "asyncmy"}
_ADVICE = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg or postgresql+psycopg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
}


def _on_conflict_upsert(insert: Callable[[Table], Any]) -> Callable[[Table], Insert]:
    def build(table: Table) -> Insert:
        stmt = insert(table)
        result: Insert = stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
        return result

    return build


def _on_duplicate_key_upsert(table: Table) -> Insert:
    stmt = mysql.insert(table)
    return stmt.on_duplicate_key_update(value=stmt.inserted.value, expires_at=stmt.inserted.expires_at)


_UPSERT: dict[str, Callable[[Table], Insert]] = {
    "sqlite": _on_conflict_upsert(sqlite.insert),
    "postgresql": _on_conflict_upsert(postgresql.insert),
    "mysql": _on_duplicate_key_upsert,
    "mariadb": _on_duplicate_key_upsert,
}


def upsert_statement(dialect: Dialect, table: Table) -> Insert:
    """An ``INSERT`` of one row that replaces ``value`` and ``expires_at`` on a key conflict."""
    try:
        build = _UPSERT[dialect.name]
    except KeyError:
        raise ValueError(
            f"sqlsession supports SQLite, PostgreSQL and MySQL/MariaDB, not {dialect.name!r}"
        ) from None
    return build(table)


def renew_with_returning(dialect: Dialect) -> bool:
    """Whether renewal is one ``UPDATE ... RETURNING`` (SQLite, PostgreSQL) or select-then-update."""
    return bool(dialect.update_returning)


def bounded_delete(
    dialect: Dialect,
    table: Table,
    scope: Sequence[ColumnElement[bool]],
    expired: ColumnElement[bool],
    limit: int,
) -> Delete:
    """``DELETE`` of at most ``limit`` rows in ``scope`` (terms on the namespace; none: the whole
    table) that match ``expired`` (a bound on the indexed ``expires_at``), found through that index.

    SQLite: ``scope`` is kept from the planner. Where many rows have expired, its statistics make a
    namespace's primary key range look cheaper than the index, and each batch would then walk that
    range from its start past every live row the batches before it kept (minutes instead of
    seconds for a million expired rows beside a million live ones). MariaDB does the same (127 s
    for that table on this project's machine, where one unbatched ``DELETE`` takes 17.5 s)."""
    if dialect.name in ("mysql", "mariadb"):
        # MySQL cannot select from the table it deletes from, but has DELETE ... ORDER BY ... LIMIT.
        # The scope written ``(terms) IS TRUE`` (the same rows) serves no index range, and the order
        # steers the optimizer to the expires_at index: 15-16 s instead of 127 s for the table above
        terms = (and_(*scope).is_(true()),) if scope else ()
        return _OrderedDelete(table, table.c.expires_at, limit).where(*terms, expired)
    # The batch is chosen in a subquery; the terms are checked again on each row the DELETE reaches,
    # so that a row renewed or replaced after the subquery read it (READ COMMITTED re-reads the
    # newest version of a row it has to wait for) is not deleted.
    if dialect.name == "postgresql":
        # by physical row address: no join back through the primary key (five times faster on a
        # table of two million rows than the primary key form below)
        ctid: ColumnClause[Any] = column("ctid")
        rows = select(ctid).select_from(table).where(*scope, expired).limit(limit)
        return delete(table).where(ctid == any_(func.array(rows.scalar_subquery())), *scope, expired)
    # SQLite: the batch is read from the expires_at index, then each row found by its primary key;
    # a term on a column written ``+column`` (the same value) is one its planner serves with no index
    key = tuple_(*table.primary_key.columns)
    batch = select(*table.primary_key.columns).where(*_unindexed(scope, table), expired).limit(limit)
    return delete(table).where(key.in_(batch), *_unindexed((*scope, expired), table))


class _OrderedDelete(Delete):
    """``DELETE ... ORDER BY column LIMIT n`` (MySQL/MariaDB), compiled by :func:`_ordered_delete`."""

    inherit_cache = False  # order and limit are not part of Delete's cache key: compiled each time

    def __init__(self, table: Table, order_by: ColumnElement[Any], limit: int) -> None:
        super().__init__(table)
        self.order_by = order_by
        self.limit = int(limit)


@compiles(_OrderedDelete, "mysql", "mariadb")
def _ordered_delete(element: _OrderedDelete, compiler: SQLCompiler, **kw: Any) -> str:
    # the limit is an int in the SQL text: the statement is compiled once, for the driver
    order_by = compiler.process(element.order_by, **kw)
    deleted = compiler.visit_delete(element, **kw)  # type: ignore[no-untyped-call]
    return f"{deleted} ORDER BY {order_by} LIMIT {element.limit}"


def _unindexed(where: Sequence[ColumnElement[bool]], table: Table) -> list[ColumnElement[bool]]:
    """``where`` with each column of ``table`` written ``+column``: the same value, but SQLite's
    planner does not use an index for that term."""

    def plus(element: Any, **_: Any) -> ColumnElement[Any] | None:
        if isinstance(element, Column) and element.table is table:
            return UnaryExpression(element, operator=operators.custom_op("+"), type_=element.type)
        return None

    terms: list[ColumnElement[bool]] = [replacement_traverse(term, {}, plus) for term in where]
    return terms


def async_url(url: str | URL) -> URL:
    """``url`` with the default async driver filled in when it names none (``sqlite:///x.db``,
    ``postgres://...``); ``ValueError`` for a driver the store does not run on."""
    parsed = make_url(url)
    driver = _DEFAULT_ASYNC_DRIVER.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    check_driver(parsed.get_backend_name(), parsed.get_driver_name())
    return parsed


def missing_database_file(url: URL) -> Path | None:
    """The path of an embedded (SQLite) database file that does not exist, so that a command
    that only reads does not create it; ``None`` for a server URL, memory or a ``file:`` URI."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path


def check_driver(backend: str, driver: str) -> None:
    """``ValueError`` naming the supported drivers when ``backend+driver`` is not one of them."""
    if driver.removesuffix("_async") in _DRIVER_EXTRAS:
        return
    supported = _ADVICE.get(backend, ", ".join(sorted(set(_DEFAULT_ASYNC_DRIVER.values()))))
    raise ValueError(
        f"sqlsession does not run on {backend}+{driver}: use {supported} "
        f"(pip install 'sqlsession[all]' installs every supported driver)"
    )


def missing_driver(error: ImportError, url: URL) -> ImportError:
    """The error for a driver that is not installed, naming the extra that installs it."""
    driver = url.get_driver_name().removesuffix("_async")
    extra = _DRIVER_EXTRAS.get(driver)
    install = f"pip install 'sqlsession[{extra}]'" if extra else f"pip install {driver}"
    return ModuleNotFoundError(
        f"the {driver} driver for {url.drivername} is not installed: {install}", name=error.name
    )


# Connect arguments for a server behind a pooler in transaction (or statement) pooling mode, such as
# PgBouncer with pool_mode = transaction: between two transactions, and so between two autocommitted
# statements, the pooler may hand the client's session to another server connection, where a named
# prepared statement of the first one does not exist (or another client's of the same name does).
TRANSACTION_POOLING_CONNECT_ARGS: dict[str, dict[str, Any]] = {
    # asyncpg prepares every statement that has parameters; with its statement cache off it uses the
    # unnamed statement and parses it again in the same round trip as Bind/Execute (asyncpg does this
    # for PgBouncer), for its own fetch/execute (our runner) and for the statements SQLAlchemy's adapter
    # prepares and caches (Core). SQLAlchemy's prepared_statement_name_func is left alone: named
    # statements, even uniquely named, are prepared and run in two round trips, which the pooler may
    # send to two server connections when no transaction holds one.
    "asyncpg": {"statement_cache_size": 0},
    # psycopg prepares a statement server-side once it has run prepare_threshold (5) times
    "psycopg": {"prepare_threshold": None},
    # asyncmy and aiosqlite send no server-side prepared statements: nothing to change
}


def configure_owned_engine(engine: AsyncEngine, *, transaction_pooling: bool = False) -> None:
    """Settings for an engine the store creates itself.

    SQLite: WAL journal with ``synchronous=NORMAL`` (durable across application crashes; a power
    loss can drop the last transactions, not corrupt the file) and a busy timeout, so that
    several processes can write one file without "database is locked" reaching the caller.

    ``transaction_pooling``: the server sits behind a transaction-mode pooler; every new connection
    gets the driver's ``TRANSACTION_POOLING_CONNECT_ARGS`` (over any given in ``connect_args``).
    """
    pooling_args = TRANSACTION_POOLING_CONNECT_ARGS.get(engine.dialect.driver)
    if transaction_pooling and pooling_args:

        def on_do_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            cparams.update(pooling_args)

        event.listen(engine.sync_engine, "do_connect", on_do_connect)
    if engine.dialect.name != "sqlite":
        return

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)


_MYSQL_NO_SUCH_TABLE = 1146
_PG_UNDEFINED_TABLE = "42P01"


def is_missing_table(error: BaseException) -> bool:
    """Whether a DBAPI error (the ``orig`` of SQLAlchemy's wrapper) says the table does not exist."""
    if getattr(error, "sqlstate", None) == _PG_UNDEFINED_TABLE:
        return True
    if _error_code(error) == _MYSQL_NO_SUCH_TABLE:
        return True
    return "no such table" in str(error)


# PostgreSQL: class 08 (connection exception), and the server going away under the connection
_PG_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})  # admin shutdown, crash shutdown, starting up
# MySQL/MariaDB client and server codes of a lost connection (as SQLAlchemy's mysql dialect has them)
_MYSQL_CONNECTION_LOST = frozenset({1053, 1927, 2006, 2013, 2014, 2045, 2055, 4031})
# the server rolled the statement back for a concurrency reason: it took no effect
_PG_ROLLED_BACK = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
_MYSQL_DEADLOCK = 1213


def _error_code(error: BaseException) -> object:
    args = getattr(error, "args", ())
    return args[0] if args else None


def _closed(driver_connection: Any) -> bool:
    """Whether the driver's own connection object says it is closed or broken."""
    if driver_connection is None:
        return False
    is_closed = getattr(driver_connection, "is_closed", None)  # asyncpg
    if callable(is_closed):
        return bool(is_closed())
    if getattr(driver_connection, "broken", False) is True:  # psycopg
        return True
    if getattr(driver_connection, "closed", False) is True:  # psycopg
        return True
    return getattr(driver_connection, "connected", True) is False  # asyncmy


def is_disconnect(error: BaseException, driver_connection: Any = None) -> bool:
    """Whether a driver error means the connection is gone (server restarted or shut down,
    connection killed, network cut), so that the statement can only succeed on a new connection.

    ``driver_connection``: the driver's connection the error came from, when known; a connection
    that reports itself closed or broken after the error counts as a disconnect.
    """
    if isinstance(error, (ConnectionError, EOFError)):  # reset, refused, broken pipe, incomplete read
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _PG_SERVER_GONE):
        return True
    code = _error_code(error)
    if isinstance(code, int) and code in _MYSQL_CONNECTION_LOST:
        return True
    if code == 0 and type(error).__name__ == "InterfaceError" and "(0, '')" in repr(error):  # asyncmy, closed
        return True
    return _closed(driver_connection)


# PostgreSQL refusing connections for now: starting up or shutting down, too many connections
_PG_UNAVAILABLE = frozenset({"57P03", "53300"})
# MySQL/MariaDB: cannot connect (socket, TCP, unknown host), too many connections
_MYSQL_UNAVAILABLE = frozenset({1040, 2002, 2003, 2005})
# SQLite primary result codes: busy beyond the busy timeout, I/O error, cannot open the file
_SQLITE_UNAVAILABLE = frozenset({5, 10, 14})
_SQLITE_UNAVAILABLE_MESSAGES = frozenset(
    {"database is locked", "disk I/O error", "unable to open database file"}
)
# psycopg reports a failed connection without a SQLSTATE; these say the server was not reached
# or refuses connections for now (the server's own refusals start with "FATAL:")
_PSYCOPG_UNAVAILABLE = ("starting up", "shutting down", "too many", "recovery mode")


def is_unreachable(error: BaseException, driver_connection: Any = None) -> bool:
    """Whether a driver error means that the database could not be reached: the connection was
    lost or refused, the server is down, starting, shutting down or has no connection left, the
    host is unknown or did not answer in time; SQLite's file cannot be opened, read or locked in
    time. Not: a missing table, a wrong password or database name, or any other error the server
    answered with (those are mistakes to fix, not outages to ride out)."""
    # OSError: also TimeoutError, which is asyncio.TimeoutError from Python 3.11 on (not on 3.10)
    if is_disconnect(error, driver_connection) or isinstance(error, (OSError, asyncio.TimeoutError)):
        return True
    code = _error_code(error)
    if isinstance(code, int) and code in _MYSQL_UNAVAILABLE:
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_UNAVAILABLE
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return sqlite_code & 0xFF in _SQLITE_UNAVAILABLE
    if type(error).__module__ == "sqlite3":  # Python 3.10: no error code, the message only
        return str(error) in _SQLITE_UNAVAILABLE_MESSAGES
    if type(error).__module__.startswith("psycopg"):
        if type(error).__name__ == "ConnectionTimeout":
            return True
        message = str(error)
        return message.startswith("connection failed") and (
            "FATAL:" not in message or any(sign in message for sign in _PSYCOPG_UNAVAILABLE)
        )
    return False


def autocommit_is_local(dialect: Dialect) -> bool:
    """Whether switching a pooled connection to autocommit and back costs no round trip.

    True for the PostgreSQL drivers and SQLite (a flag of the driver's connection). MySQL sends
    ``SET AUTOCOMMIT`` both ways, and SQLAlchemy lets a failure of the way back (a connection
    lost while it returns to the pool) escape and lose the pool slot: on a borrowed MySQL engine
    a statement is committed instead, which also costs fewer round trips.
    """
    return dialect.name not in ("mysql", "mariadb")


def is_rolled_back(error: BaseException) -> bool:
    """Whether the server rolled the statement back for a concurrency reason (deadlock victim,
    serialization failure): it took no effect, and running it again is safe."""
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_ROLLED_BACK
    return _error_code(error) == _MYSQL_DEADLOCK


class DriverRunner(Protocol):
    """Runs SQL compiled for its dialect on the driver's own connection of a pooled connection, in
    autocommit whatever the engine's isolation level: the connection goes back to the pool with
    nothing to roll back."""

    async def rows(self, lease: PoolProxiedConnection, sql: str, args: Any) -> Sequence[Sequence[Any]]: ...

    async def rowcount(self, lease: PoolProxiedConnection, sql: str, args: Any) -> int: ...


class _Asyncpg:
    # asyncpg never opens a transaction by itself: every statement commits on its own
    async def rows(self, lease: PoolProxiedConnection, sql: str, args: Any) -> Sequence[Sequence[Any]]:
        conn: Any = lease.driver_connection
        rows: Sequence[Sequence[Any]] = await conn.fetch(sql, *args)
        return rows

    async def rowcount(self, lease: PoolProxiedConnection, sql: str, args: Any) -> int:
        conn: Any = lease.driver_connection
        status: str = await conn.execute(sql, *args)  # e.g. "DELETE 3"
        return int(status.rpartition(" ")[2])


class _Psycopg:
    async def rows(self, lease: PoolProxiedConnection, sql: str, args: Any) -> Sequence[Sequence[Any]]:
        cursor = await self._execute(lease.driver_connection, sql, args)
        rows: Sequence[Sequence[Any]] = await cursor.fetchall()
        return rows

    async def rowcount(self, lease: PoolProxiedConnection, sql: str, args: Any) -> int:
        cursor = await self._execute(lease.driver_connection, sql, args)
        return int(cursor.rowcount)

    @staticmethod
    async def _execute(conn: Any, sql: str, args: Any) -> Any:
        # not in autocommit, psycopg opens a transaction before any statement: switching the flag
        # around the statement costs no round trip
        if conn.autocommit:
            return await conn.execute(sql, args)
        await conn.set_autocommit(True)
        cursor = await conn.execute(sql, args)
        await conn.set_autocommit(False)
        return cursor


# MySQL: a connection not in autocommit opens a transaction at any statement, a read included, and
# ending it costs a round trip (COMMIT), as does switching to autocommit and back (SET AUTOCOMMIT).
# So a store switches a connection to autocommit once, marks it in the connection's ``info``, and
# leaves it so in the pool for its next calls; whoever else checks it out gets it switched back
# first (``_switch_back``, a checkout listener on the engine's pool: ``share_engine``).
_SWITCHED = "sqlsession.switched_to_autocommit"
_FOR_STORE: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlsession_checkout", default=False)


def checkout_for_store(pool: Pool) -> PoolProxiedConnection:
    """``pool.connect()`` for a store's call (which ``_switch_back`` leaves in autocommit)."""
    token = _FOR_STORE.set(True)
    try:
        return pool.connect()
    finally:
        _FOR_STORE.reset(token)


def _switch_back(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A connection a store switched to autocommit, checked out by anyone else: switched back (in
    SQLAlchemy's checkout, within its greenlet). If that fails, the pool replaces the connection."""
    if _FOR_STORE.get() or not record.info.get(_SWITCHED):
        return
    try:
        dbapi_connection.autocommit(False)
    except Exception as error:
        raise DisconnectionError(f"could not switch the connection back from autocommit: {error}") from error
    del record.info[_SWITCHED]


def share_engine(engine: AsyncEngine) -> None:
    """Make ``engine`` ready for a store's calls (once per engine): on MySQL (asyncmy), the checkout
    listener that switches back the connections a store left in autocommit. A pool the engine makes
    anew (``dispose()``) keeps its listeners."""
    if engine.dialect.driver == "asyncmy":
        pool = engine.sync_engine.pool
        if not event.contains(pool, "checkout", _switch_back):
            event.listen(pool, "checkout", _switch_back)


def other_checkout_listeners(pool: Pool) -> bool:
    """Whether ``pool`` has checkout listeners other than ``share_engine``'s."""
    return bool(pool.dispatch.checkout) and any(fn is not _switch_back for fn in pool.dispatch.checkout)


class _Asyncmy:
    async def rows(self, lease: PoolProxiedConnection, sql: str, args: Any) -> Sequence[Sequence[Any]]:
        cursor = (await self._autocommitted(lease)).cursor()
        await cursor.execute(sql, args)
        rows: Sequence[Sequence[Any]] = await cursor.fetchall()
        return rows

    async def rowcount(self, lease: PoolProxiedConnection, sql: str, args: Any) -> int:
        conn = await self._autocommitted(lease)
        return int(await conn.cursor().execute(sql, args))

    @staticmethod
    async def _autocommitted(lease: PoolProxiedConnection) -> Any:
        conn: Any = lease.driver_connection
        if not conn.get_autocommit():  # read from the server's last reply: no round trip
            lease.info[_SWITCHED] = True  # first: a cancelled switch drops the connection anyway
            await conn.autocommit(True)
        return conn


def _sqlite_run(db: Any, sql: str, args: Any, fetch: bool) -> Any:
    """In aiosqlite's thread, on the ``sqlite3`` connection: the statement, its rows or row count,
    and the commit of a transaction ``sqlite3`` opened before a write (an engine not in
    autocommit); all in one hop to the thread."""
    cursor = db.execute(sql, args)
    try:
        result = cursor.fetchall() if fetch else cursor.rowcount
    finally:
        cursor.close()
    if db.in_transaction:
        db.commit()
    return result


class _Aiosqlite:
    # aiosqlite runs each call in its thread through the private ``_execute(fn, *args)``, the one
    # way to run execute, fetch and commit in one hop (its public calls take one hop each); an
    # aiosqlite without it gets the public calls
    async def rows(self, lease: PoolProxiedConnection, sql: str, args: Any) -> Sequence[Sequence[Any]]:
        conn: Any = lease.driver_connection
        if hasattr(conn, "_execute"):
            rows: Sequence[Sequence[Any]] = await conn._execute(_sqlite_run, conn._conn, sql, args, True)
            return rows
        rows = await conn.execute_fetchall(sql, args)
        if conn.in_transaction:  # UPDATE ... RETURNING, not in autocommit
            await conn.commit()
        return rows

    async def rowcount(self, lease: PoolProxiedConnection, sql: str, args: Any) -> int:
        conn: Any = lease.driver_connection
        if hasattr(conn, "_execute"):
            return int(await conn._execute(_sqlite_run, conn._conn, sql, args, False))
        cursor = await conn.execute(sql, args)
        if conn.in_transaction:  # not in autocommit, sqlite3 opened a transaction before the write
            await conn.commit()
        return int(cursor.rowcount)


_RUNNERS: dict[str, DriverRunner] = {
    "asyncpg": _Asyncpg(),
    "psycopg": _Psycopg(),
    "asyncmy": _Asyncmy(),
    "aiosqlite": _Aiosqlite(),
}


def connection_loop(driver_connection: Any) -> asyncio.AbstractEventLoop | None:
    """The event loop a driver's connection is bound to (asyncpg, asyncmy); ``None`` when it works on
    any loop (aiosqlite's thread, psycopg's waits on the running loop)."""
    loop = getattr(driver_connection, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def close_unpooled(driver_connection: Any) -> Awaitable[Any] | None:
    """Close a driver's connection that has left the pool, without awaiting: asyncpg and asyncmy
    close the socket at once; otherwise what completes the close is returned, to be awaited later
    (aiosqlite 0.22.1+: the future its thread resolves once closed; psycopg, older aiosqlite: the
    coroutine that closes it, to be run in a task of its own). A connection whose event loop is not
    running (ended, or left stopped by start-up code) cannot close through it: its socket is shut down
    first, which ends the server's session at once."""
    loop = connection_loop(driver_connection)
    if loop is not None and not loop.is_running():
        transport = getattr(driver_connection, "_transport", None)  # asyncpg's and asyncmy's
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    for name in ("terminate", "stop"):  # asyncpg; aiosqlite
        close = getattr(driver_connection, name, None)
        if callable(close):
            try:
                closing = close()
            except Exception:  # e.g. its event loop has ended
                return None
            return closing if isinstance(closing, asyncio.Future) else None
    close = getattr(driver_connection, "close", None)
    if not callable(close):
        return None
    try:
        closing = close()  # asyncmy: closes at once; psycopg, old aiosqlite: a coroutine
    except Exception:
        return None
    return closing if asyncio.iscoroutine(closing) else None


def driver_runner(dialect: Dialect) -> DriverRunner | None:
    """The native runner for this dialect's async driver; ``None``: go through SQLAlchemy."""
    return _RUNNERS.get(dialect.driver) if dialect.is_async else None
