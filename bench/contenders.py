"""What a run measures (:class:`Settings`), and the stores under test, each on a table (or namespace,
or folder) of its own: Litestar's ``Store`` calls ``set``, ``get``, ``exists`` and ``delete``, and a
``close()`` that drops what it made. One that cannot run here raises :class:`Unavailable`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sqlsession import SQLStore, store_table

from .raw import open_raw

POSTGRES, MYSQL = "postgresql://postgres@127.0.0.1:5432/test", "mysql://root@127.0.0.1:3306/test"
# dialect -> (server URL env variable or None for the embedded SQLite, default URL, async driver)
SERVERS: dict[str, tuple[str | None, str, str]] = {
    "sqlite": (None, "", "sqlite+aiosqlite"),
    "asyncpg": ("BENCH_POSTGRES_URL", POSTGRES, "postgresql+asyncpg"),
    "psycopg": ("BENCH_POSTGRES_URL", POSTGRES, "postgresql+psycopg"),
    "asyncmy": ("BENCH_MYSQL_URL", MYSQL, "mysql+asyncmy"),
}
ALL_DIALECTS = tuple(SERVERS)
# column order of every table: the floor first, the main contender second
ALL_CONTENDERS = ("raw", "sqlsession", "sqlsession-engine", "sqlspec", "advanced-alchemy", "FileStore")
ALL_CONTENDERS += ("RedisStore",)
OPS = ("set", "get", "get_renew", "exists", "delete")  # the operations of the sequential shape
REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Settings:
    """Counts and switches of one run (``--quick`` shrinks them all)."""

    dialects: tuple[str, ...] = ALL_DIALECTS
    contenders: tuple[str, ...] = ALL_CONTENDERS
    sizes: tuple[int, ...] = (512, 16 * 1024)
    # sequential shape: per (contender, operation, size) each round runs ``batch`` calls; round 0 is a
    # warm-up. Small batches, many rounds: the contenders alternate every few milliseconds
    batch: int = 60
    rounds: int = 20
    # concurrent shape: a session mix (70% get with renew, 25% set, 5% delete) on ``keys`` keys
    tasks: tuple[int, ...] = (1, 32)
    seconds: float = 1.5
    conc_rounds: int = 3
    keys: int = 2000
    expires_in: int = 3600
    pool_size: int = 10  # connections of every SQL contender (sqlsession: pool_size, max_overflow=0)
    # scale part: sqlsession alone, sequential ops on tables of these many rows, and delete_expired()
    # on the largest, where half the rows expire and half stay live; empty = skip
    rows: tuple[int, ...] = (1_000, 2_000_000)
    scale_keys: int = 64
    scale_rounds: int = 24
    fill_value_bytes: int = 128
    # while delete_expired() runs: this many tasks get live keys, this many calls per second in all
    delete_get_tasks: int = 8
    delete_get_rate: float = 1000.0
    workdir: Path = field(default_factory=lambda: Path("/tmp"))
    redis_url: str = field(default_factory=lambda: os.environ.get("BENCH_REDIS_URL", REDIS_URL_DEFAULT))


def dialect_url(dialect: str, sqlite_path: Path | None = None) -> URL:
    """The async SQLAlchemy URL of ``dialect`` (SQLite: the file ``sqlite_path``)."""
    env, default, driver = SERVERS[dialect]
    return make_url(os.environ.get(env, default) if env else f"sqlite:///{sqlite_path}").set(
        drivername=driver
    )


def reachable(url: URL | str, default_port: int) -> str | None:
    """``None`` when something answers on the URL's TCP port, else why not."""
    url = make_url(url)
    host, port = url.host or "127.0.0.1", url.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as error:
        return f"{host}:{port} does not answer ({error})"


def server_reason(dialect: str) -> str | None:
    """Why ``dialect`` cannot run here, or ``None``."""
    url = dialect_url(dialect)
    return None if dialect == "sqlite" else reachable(url, 5432 if "postgres" in url.drivername else 3306)


def tool_urls(dialects: str) -> Iterator[tuple[str, URL | None, str | None]]:
    """For the standalone tools: each of ``dialects`` (comma-separated) with its URL (SQLite: a file in a
    temporary directory) or why it cannot run here."""
    with tempfile.TemporaryDirectory() as tmp:
        for dialect in filter(None, dialects.split(",")):
            reason = server_reason(dialect)
            yield dialect, None if reason else dialect_url(dialect, Path(tmp) / f"{dialect}.db"), reason


class Unavailable(Exception):
    """This contender cannot run here; the message says why."""


@dataclass
class Contender:
    name: str
    store: Any
    close: Callable[[], Awaitable[Any]]
    note: str = ""


# the tables of this run on a server, until ``drop_tables`` drops them (SQLite files go with the
# working directory)
_CREATED: dict[str, URL] = {}


def _table(prefix: str, url: URL) -> str:
    name = f"bench_{prefix}_{uuid.uuid4().hex[:10]}"
    if url.get_backend_name() != "sqlite":
        _CREATED[name] = url
    return name


async def drop_tables() -> list[str]:
    """Drop every table of this run that is still there (after its stores are closed); their names."""
    names = list(_CREATED)
    for name in names:
        engine = create_async_engine(_CREATED.pop(name), isolation_level="AUTOCOMMIT")
        with contextlib.suppress(Exception):  # the server is down: nothing more can be done from here
            async with engine.connect() as conn:
                await conn.exec_driver_sql("DROP TABLE IF EXISTS " + name)
        await engine.dispose()
    return names


def _engine(url: URL, **options: Any) -> AsyncEngine:
    """An engine; on SQLite with WAL and synchronous=NORMAL, as ``SQLStore.with_url`` and sqlspec set."""
    engine = create_async_engine(url, **options)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in ("busy_timeout = 15000", "journal_mode = WAL", "synchronous = NORMAL"):
            cursor.execute("PRAGMA " + pragma)
        cursor.close()

    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", on_connect)
    return engine


def version_of(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


async def open_contender(
    name: str, dialect: str, settings: Settings, file: str = "", **options: Any
) -> Contender:
    """Contender ``name`` of ``dialect`` on a table of its own (SQLite: in a file of its own, ``file``,
    so that no contender waits on another's write lock); ``options``: of ``SQLStore.with_url``.
    :class:`Unavailable` if it cannot run here."""
    url, size = dialect_url(dialect, settings.workdir / f"{file or name}.db"), settings.pool_size
    try:
        if name == "FileStore":
            from litestar.stores.file import FileStore

            path = settings.workdir / f"filestore_{dialect}_{uuid.uuid4().hex[:8]}"
            note = "litestar.stores.file.FileStore, a folder in a temporary directory"
            store = FileStore(path, create_directories=True)
            return Contender(name, store, store.delete_all, note)
        if name == "RedisStore":
            from litestar.stores.redis import RedisStore

            if reason := reachable(settings.redis_url, 6379):
                raise Unavailable(f"Redis at {settings.redis_url}: {reason}")
            redis = RedisStore.with_client(url=settings.redis_url, namespace=f"BENCH{uuid.uuid4().hex[:10]}")
            note = "litestar.stores.redis.RedisStore, a namespace of its own"
            return Contender(name, redis, lambda: _close_redis(redis), note)
        table = _table(name.replace("-", "_"), url)
        if name == "sqlspec":
            return await _open_sqlspec(dialect, url, table, size)
        if name == "advanced-alchemy":
            return await _open_advanced_alchemy(url, table, size)
        metadata, engine = MetaData(), create_async_engine(url)
        try:  # the store's table, as the migrations create it
            async with engine.begin() as conn:
                await conn.run_sync(store_table(metadata, table).metadata.create_all)
        finally:
            await engine.dispose()
        if name == "raw":
            probe = SQLStore.with_url(url, table_name=table)  # the namespace bytes the store writes
            probe.engine.sync_engine.dispose(close=False)  # it never connected
            raw = await open_raw(dialect, url, table, probe._ns, size)
            note = f"{url.drivername.split('+')[1]} alone, the store's SQL, autocommit"
            return Contender(name, raw, raw.close, note)
        if name == "sqlsession":  # the owned-engine fast path
            engine_options = {"pool_size": size, "max_overflow": 0}
            store = SQLStore.with_url(url, table_name=table, engine_options=engine_options, **options)
            return Contender(name, store, store.close, "SQLStore.with_url(url)")
        # an engine the application made as it usually does: SQLAlchemy's defaults, no autocommit
        engine, note = _engine(url), "SQLStore(create_async_engine(url))"
        return Contender(name, SQLStore(engine, table_name=table), engine.dispose, note)
    except ImportError as error:
        raise Unavailable(f"not installed: {error}") from None


async def _close_redis(store: Any) -> None:
    try:
        await store.delete_all()  # only the keys of this run's namespace
    finally:
        await store._redis.aclose()


async def _open_sqlspec(dialect: str, url: URL, table: str, size: int) -> Contender:
    prefixes = {"asyncpg": "Asyncpg", "psycopg": "PsycopgAsync", "asyncmy": "Asyncmy", "sqlite": "Aiosqlite"}
    adapter, prefix = url.drivername.split("+")[1], prefixes[dialect]
    configs = importlib.import_module(f"sqlspec.adapters.{adapter}")
    stores = importlib.import_module(f"sqlspec.adapters.{adapter}.litestar")
    server = {"host": url.host or "127.0.0.1", "user": url.username, "database": url.database}
    pool = {"min_size": size, "max_size": size}
    if dialect == "asyncpg":
        connection = server | {"port": url.port or 5432} | pool
        connection |= {"password": url.password} if url.password else {}
    elif dialect == "psycopg":
        info = f"host={url.host} port={url.port or 5432} user={url.username} dbname={url.database}"
        connection = {"conninfo": info + (f" password={url.password}" if url.password else "")} | pool
    elif dialect == "asyncmy":
        server |= {"port": url.port or 3306, "password": url.password or "", "database": url.database or ""}
        connection = server | {"minsize": size, "maxsize": size}
    else:  # sqlspec's pool sets WAL and synchronous=NORMAL on a file database by default
        connection = {"database": url.database or "", "pool_size": size}
    extension = {"litestar": {"session_table": table}}
    config = getattr(configs, f"{prefix}Config")(connection_config=connection, extension_config=extension)
    store = getattr(stores, f"{prefix}Store")(config)
    try:
        await store.create_table()  # the documented way: the store creates its table
    except BaseException:
        await config.close_pool()
        raise
    return Contender("sqlspec", store, config.close_pool, f"{prefix}Store (sqlspec {version_of('sqlspec')})")


async def _open_advanced_alchemy(url: URL, table: str, size: int) -> Contender:
    from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
    from advanced_alchemy.extensions.litestar.store import SQLAlchemyStore, StoreModelMixin

    # the documented way: a model of one's own on StoreModelMixin, its table created from it
    model = type(f"BenchStore_{table}", (StoreModelMixin,), {"__tablename__": table})
    sa_table: Any = model.__table__
    engine = _engine(url, pool_size=size, max_overflow=0)

    async def close() -> None:
        sa_table.metadata.remove(sa_table)
        await engine.dispose()

    try:
        async with engine.begin() as conn:
            await conn.run_sync(sa_table.create)
    except BaseException:
        await close()
        raise
    store = SQLAlchemyStore(SQLAlchemyAsyncConfig(engine_instance=engine), model=model)
    note = f"SQLAlchemyStore (advanced-alchemy {version_of('advanced-alchemy')})"
    return Contender("advanced-alchemy", store, close, note)
