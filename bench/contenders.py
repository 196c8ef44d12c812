"""What a run measures (:class:`Settings`) and the stores it measures, each on a table (or namespace, or
folder) of its own: Litestar's ``Store`` calls, and a ``close()``; :func:`dropping` drops the tables."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from litestar.stores.file import FileStore
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sqlsession import SQLStore
from sqlsession._keys import encode_namespace, key_digest

POSTGRES, MYSQL = "postgresql://postgres@127.0.0.1:5432/test", "mysql://root@127.0.0.1:3306/test"
# dialect -> (server URL env variable or None for the embedded SQLite, default URL, async driver)
SERVERS: dict[str, tuple[str | None, str, str]] = {"sqlite": (None, "", "sqlite+aiosqlite")}
SERVERS |= {d: ("BENCH_POSTGRES_URL", POSTGRES, f"postgresql+{d}") for d in ("asyncpg", "psycopg")}
SERVERS["asyncmy"] = ("BENCH_MYSQL_URL", MYSQL, "mysql+asyncmy")
ALL_DIALECTS = tuple(SERVERS)
# the column order of every table: the floor first, the main contender second
ALL_CONTENDERS = ("raw", "sqlsession", "sqlsession-engine", "sqlspec", "advanced-alchemy", "FileStore")
ALL_CONTENDERS += ("RedisStore",)
OPS = ("set", "get", "get_renew", "exists", "delete")  # the operations of the sequential shape
REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/0"

DAY, MICROSECONDS = 86_400, 1_000_000  # seconds in a day; per second (expires_at counts microseconds)
# ``{t}``: the table; ``{b}`` / ``{i}``: a bytes / an integer parameter; ``{where}``, ``{live}``: below
_UPSERT = "INSERT INTO {t} (namespace, key_hash, value, expires_at) VALUES ({b}, {b}, {b}, {i}) ON "
_CONFLICT = "CONFLICT (namespace, key_hash) DO UPDATE SET value = excluded.value, "
_CONFLICT += "expires_at = excluded.expires_at"
_DUPLICATE = "DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)"
_WHERE = " WHERE namespace = {b} AND key_hash = {b}"
_LIVE = _WHERE + " AND (expires_at IS NULL OR expires_at > {i})"
_RENEW = "UPDATE {t} SET expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE {i} END"
_RENEW += "{live} RETURNING value"
PRAGMAS = ("PRAGMA busy_timeout = 15000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")
# the marks of a bytes and of an integer parameter, ``{}`` its number: the casts SQLAlchemy renders
MARKS = {"asyncpg": ("${}::BYTEA", "${}::BIGINT"), "psycopg": ("%s", "%s::BIGINT"), "asyncmy": ("%s", "%s")}
SQLSPEC = {"asyncpg": "Asyncpg", "psycopg": "PsycopgAsync", "asyncmy": "Asyncmy", "sqlite": "Aiosqlite"}


async def _cursor_fetch(conn: Any, sql: str, args: tuple[Any, ...]) -> Any:
    cursor = conn.cursor()
    await cursor.execute(sql, args)
    return await cursor.fetchall()


DRIVERS: dict[str, tuple[Any, Any]] = {  # how a statement runs; how it returns its rows
    "asyncpg": (lambda c, sql, args: c.execute(sql, *args), lambda c, sql, args: c.fetch(sql, *args)),
    "psycopg": (lambda c, sql, args: c.execute(sql, args), _cursor_fetch),
    "asyncmy": (lambda c, sql, args: c.cursor().execute(sql, args), _cursor_fetch),
    "sqlite": (lambda c, sql, args: c.execute(sql, args), lambda c, sql, args: c.execute_fetchall(sql, args)),
}


class RawStore:
    """The floor: Litestar's ``Store`` calls on ``connections`` of the driver of ``dialect``, running by hand,
    in autocommit, the statements ``SQLStore`` compiles for it, with the same parameters, and nothing else;
    driven by the tables above. A lone caller always gets the same connection."""

    def __init__(self, dialect: str, table: str, namespace: bytes, connections: list[Any]) -> None:
        self.ns, (self.execute, self.fetch), self.pool = namespace, DRIVERS[dialect], asyncio.LifoQueue()
        for conn in connections:
            self.pool.put_nowait(conn)
        self.mysql, marks = dialect == "asyncmy", MARKS.get(dialect, ("?", "?"))  # MySQL: no RETURNING

        def sql(text: str) -> str:
            text, count = text.format(t=table, live=_LIVE, where=_WHERE, b="{b}", i="{i}"), itertools.count(1)
            return re.sub(r"\{([bi])\}", lambda m: marks[m[1] == "i"].format(next(count)), text)

        self.upsert = sql(_UPSERT + (_DUPLICATE if self.mysql else _CONFLICT))
        self.select_value = sql("SELECT value FROM {t}{live}")
        self.select_expiry = sql("SELECT expires_at FROM {t}{live}")
        self.select_value_expiry = sql("SELECT value, expires_at FROM {t}{live}")
        self.renew, self.delete_sql = sql(_RENEW), sql("DELETE FROM {t}{where}")
        self.renew_cas = sql("UPDATE {t} SET expires_at = {i}{where} AND expires_at = {i}")

    async def _one(self, run: Any, sql: str, args: tuple[Any, ...]) -> Any:
        conn = self.pool.get_nowait() if self.pool.qsize() else await self.pool.get()
        try:
            return await run(conn, sql, args)
        finally:
            self.pool.put_nowait(conn)

    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> None:
        expires_at = round((time.time() + expires_in) * MICROSECONDS) if expires_in else None
        await self._one(self.execute, self.upsert, (self.ns, key_digest(key), value, expires_at))

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None:
        now, digest = round(time.time() * MICROSECONDS), key_digest(key)
        new_expiry = now + (renew_for or 0) * MICROSECONDS
        if not renew_for:
            rows = await self._one(self.fetch, self.select_value, (self.ns, digest, now))
        elif not self.mysql:
            rows = await self._one(self.fetch, self.renew, (new_expiry, self.ns, digest, now))
        else:  # renew only the version that was read, on the same connection
            conn = self.pool.get_nowait() if self.pool.qsize() else await self.pool.get()
            try:
                rows = await self.fetch(conn, self.select_value_expiry, (self.ns, digest, now))
                if rows and rows[0][1] is not None:
                    await self.execute(conn, self.renew_cas, (new_expiry, self.ns, digest, rows[0][1]))
            finally:
                self.pool.put_nowait(conn)
        return bytes(rows[0][0]) if rows else None

    async def exists(self, key: str) -> bool:
        args = (self.ns, key_digest(key), round(time.time() * MICROSECONDS))
        return bool(await self._one(self.fetch, self.select_expiry, args))

    async def delete(self, key: str) -> None:
        await self._one(self.execute, self.delete_sql, (self.ns, key_digest(key)))


@dataclass(frozen=True)
class Settings:
    """Counts and switches of one run (``--quick`` shrinks them all)."""

    dialects: tuple[str, ...] = ALL_DIALECTS
    contenders: tuple[str, ...] = ALL_CONTENDERS
    sizes: tuple[int, ...] = (512, 16 * 1024)
    batch: int = 60  # sequential: calls per contender, operation, size and round (0: a warm-up)
    rounds: int = 20
    tasks: tuple[int, ...] = (1, 32)  # concurrent: the session mix on ``keys`` keys
    seconds: float = 1.5
    conc_rounds: int = 3
    keys: int = 2000
    expires_in: int = 3600
    pool_size: int = 10  # connections of every SQL contender (sqlsession: pool_size, max_overflow=0)
    # scale: sqlsession alone on tables of these many rows (empty: none), then delete_expired() on the
    # largest, half of whose rows expire, while tasks get live keys, this many calls per second in all
    rows: tuple[int, ...] = (1_000, 2_000_000)
    scale_keys: int = 64
    scale_rounds: int = 24
    fill_value_bytes: int = 128
    delete_get_tasks: int = 8
    delete_get_rate: float = 1000.0
    workdir: Path = field(default_factory=lambda: Path("/tmp"))
    redis_url: str = field(default_factory=lambda: os.environ.get("BENCH_REDIS_URL", REDIS_URL_DEFAULT))


def dialect_url(dialect: str, sqlite_path: Path | None = None) -> URL:
    """The async SQLAlchemy URL of ``dialect`` (SQLite: the file ``sqlite_path``)."""
    env, default, driver = SERVERS[dialect]
    url = os.environ.get(env, default) if env else f"sqlite:///{sqlite_path}"
    return make_url(url).set(drivername=driver)


def server_reason(dialect: str, url: URL | str | None = None) -> str | None:
    """Why the server of ``dialect`` (``"redis"``: at ``url``) does not answer, or ``None`` (SQLite: none)."""
    if dialect == "sqlite":
        return None
    url = make_url(url or dialect_url(dialect))
    host, port = url.host or "127.0.0.1", url.port or {"asyncmy": 3306, "redis": 6379}.get(dialect, 5432)
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as error:
        return f"{host}:{port} does not answer ({error})"


def tool_settings(dialects: str, skipped: str) -> Iterator[tuple[str, Settings]]:
    """For the tools: each of ``dialects`` (comma-separated) that can run here, with the settings of a run
    (SQLite: files in a temporary directory); for each other, prints ``skipped`` with its ``{reason}``."""
    with tempfile.TemporaryDirectory() as tmp:
        for dialect in filter(None, dialects.split(",")):
            if reason := server_reason(dialect):
                print(skipped.format(dialect=dialect, reason=reason))
            else:
                yield dialect, Settings(workdir=Path(tmp))


def version_of(distribution: str) -> str:
    with contextlib.suppress(PackageNotFoundError):
        return version(distribution)
    return "not installed"


class Unavailable(Exception):
    """This contender cannot run here; the message says why."""


@dataclass
class Contender:
    name: str
    store: Any
    close: Callable[[], Awaitable[Any]]
    note: str = ""


_CREATED: dict[str, URL] = {}  # the tables of this run on a server (SQLite's go with the working directory)


@contextlib.asynccontextmanager
async def dropping() -> AsyncIterator[list[Contender]]:
    """A list for the contenders one opens; at the end, they are closed and the run's tables dropped."""
    opened: list[Contender] = []
    try:
        yield opened
    finally:
        for contender in opened:
            with contextlib.suppress(Exception):  # a failed close() changes no figure
                await contender.close()
        for name in list(_CREATED):
            engine = create_async_engine(_CREATED.pop(name), isolation_level="AUTOCOMMIT")
            with contextlib.suppress(Exception):  # the server is down: nothing more can be done from here
                async with engine.connect() as conn:
                    await conn.exec_driver_sql("DROP TABLE IF EXISTS " + name)
            await engine.dispose()


def _engine(url: URL, closing: contextlib.AsyncExitStack, **options: Any) -> AsyncEngine:
    """An engine ``closing`` disposes; on SQLite: WAL, synchronous=NORMAL, as SQLStore.with_url, sqlspec."""
    engine = create_async_engine(url, **options)
    closing.push_async_callback(engine.dispose)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", on_connect)
    return engine


async def open_contender(name: str, dialect: str, s: Settings, file: str = "", **options: Any) -> Contender:
    """Contender ``name`` of ``dialect`` on a table of its own (SQLite: in a file ``file`` of its own: none
    waits on another's write lock); ``options`` of ``SQLStore.with_url``. :class:`Unavailable` if not here."""
    url, tag = dialect_url(dialect, s.workdir / f"{file or name}.db"), uuid.uuid4().hex[:10]
    table, size, driver = f"bench_{name.replace('-', '_')}_{tag}", s.pool_size, url.drivername.split("+")[1]
    closing = contextlib.AsyncExitStack()  # what its close() does, in the reverse order
    if name not in ("FileStore", "RedisStore"):
        _CREATED[table] = url
    try:
        if name == "FileStore":  # Litestar's: always installed
            store = FileStore(s.workdir / f"filestore_{dialect}_{tag}", create_directories=True)
            closing.push_async_callback(store.delete_all)
            note = "litestar.stores.file.FileStore, a folder in a temporary directory"
        elif name == "RedisStore":
            from litestar.stores.redis import RedisStore

            if reason := server_reason("redis", s.redis_url):
                raise Unavailable(f"Redis at {s.redis_url}: {reason}")
            store = RedisStore.with_client(url=s.redis_url, namespace=f"BENCH{tag}")  # its keys only
            await closing.enter_async_context(store)  # its exit closes its client
            closing.push_async_callback(store.delete_all)
            note = "litestar.stores.redis.RedisStore, a namespace of its own"
        elif name == "sqlspec":  # the documented way: the store creates its table
            prefix = SQLSPEC[dialect]  # of its class names
            adapter = importlib.import_module(f"sqlspec.adapters.{driver}")
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            connection: dict[str, Any] = {"dsn": dsn, "min_size": size, "max_size": size}  # PostgreSQL
            if dialect == "asyncmy":
                connection = url.translate_connect_args(username="user") | {"minsize": size, "maxsize": size}
            elif dialect == "sqlite":  # sqlspec's pool sets WAL and synchronous=NORMAL on a file by default
                connection = {"database": url.database or "", "pool_size": size}
            extension = {"extension_config": {"litestar": {"session_table": table}}}
            config = getattr(adapter, f"{prefix}Config")(connection_config=connection, **extension)
            closing.push_async_callback(config.close_pool)
            store = getattr(importlib.import_module(f"{adapter.__name__}.litestar"), f"{prefix}Store")(config)
            await store.create_table()
            note = f"{prefix}Store (sqlspec {version_of('sqlspec')})"
        elif name == "advanced-alchemy":
            from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
            from advanced_alchemy.extensions.litestar.store import SQLAlchemyStore, StoreModelMixin

            # the documented way: a model of one's own on StoreModelMixin, its table created from it
            model = type(f"BenchStore_{table}", (StoreModelMixin,), {"__tablename__": table})
            sa_table: Any = model.__table__
            engine = _engine(url, closing, pool_size=size, max_overflow=0)
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(sa_table.create)
            finally:  # out of the metadata the models share
                sa_table.metadata.remove(sa_table)
            store = SQLAlchemyStore(SQLAlchemyAsyncConfig(engine_instance=engine), model=model)
            note = f"SQLAlchemyStore (advanced-alchemy {version_of(name)})"
        elif name == "raw":
            # the driver's own connections, set up as SQLStore.with_url sets its own up (autocommit;
            # SQLite: WAL, synchronous=NORMAL), and the namespace bytes the store writes
            sql_store = SQLStore.with_url(url, table_name=table, engine_options={"pool_size": size})
            closing.push_async_callback(sql_store.close)
            held = [await closing.enter_async_context(sql_store.engine.connect()) for _ in range(size)]
            drivers = [(await conn.get_raw_connection()).driver_connection for conn in held]
            store = RawStore(dialect, table, encode_namespace(sql_store.namespace_path), drivers)
            note = f"{driver} alone, the store's SQL, autocommit"
        elif name == "sqlsession":  # the owned-engine fast path
            pool = {"pool_size": size, "max_overflow": 0}
            store = sql_store = SQLStore.with_url(url, table_name=table, engine_options=pool, **options)
            closing.push_async_callback(store.close)
            note = "SQLStore.with_url(url)"
        else:  # an engine the application made as it usually does: SQLAlchemy's defaults, no autocommit
            engine = _engine(url, closing)
            store = sql_store = SQLStore(engine, table_name=table)
            note = "SQLStore(create_async_engine(url))"
        if name in ("raw", "sqlsession", "sqlsession-engine"):  # the store's table, as the migrations make it
            async with sql_store.engine.begin() as conn:
                await conn.run_sync(sql_store.table.create)
        return Contender(name, store, closing.aclose, note)
    except BaseException as error:
        with contextlib.suppress(Exception):  # what was opened before the failure
            await closing.aclose()
        if isinstance(error, ImportError):
            raise Unavailable(f"not installed: {error}") from None
        raise
