"""The stores under test, each opened on a table (or namespace, or folder) of its own.

Every contender exposes Litestar's ``Store`` calls ``set(key, value, expires_in)``,
``get(key, renew_for)``, ``exists(key)`` and ``delete(key)``, and is closed by ``close()``, which
drops what it created. A contender that cannot run here (package not installed, server down)
raises :class:`Unavailable` with the reason; the run reports it and goes on.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import MetaData, event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sqlsession import SQLStore, store_table

from .raw import open_raw
from .settings import Settings, dialect_url, reachable

__all__ = (
    "Contender",
    "KVStore",
    "Unavailable",
    "drop_leftovers",
    "open_contender",
    "open_sqlsession",
    "store_namespace",
)


class KVStore(Protocol):
    """The four calls of Litestar's ``Store`` that the benchmark makes."""

    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> None: ...

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...


class Unavailable(Exception):
    """This contender cannot run here; the message says why."""


@dataclass
class Contender:
    name: str
    store: KVStore
    close: Callable[[], Awaitable[None]]
    note: str = ""


# every table this process made, with its server: swept at the end of a run (``drop_leftovers``) in
# case a server restart broke a contender's own clean-up
_CREATED: list[tuple[URL, str]] = []


def _table(prefix: str, url: URL) -> str:
    name = f"bench_{prefix}_{uuid.uuid4().hex[:10]}"
    if url.get_backend_name() != "sqlite":  # SQLite files go with the working directory
        _CREATED.append((url, name))
    return name


async def drop_leftovers() -> list[str]:
    """Drop the tables of this run that still exist; return their names."""
    dropped = []
    while _CREATED:
        url, name = _CREATED.pop()
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                exists = await conn.run_sync(
                    lambda sync_conn, n=name: sync_conn.dialect.has_table(sync_conn, n)
                )
                if exists:
                    await conn.exec_driver_sql("DROP TABLE " + name)
                    dropped.append(name)
        except Exception:  # the server is down: nothing more can be done from here
            pass
        finally:
            await engine.dispose()
    return dropped


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL and synchronous=NORMAL, as ``SQLStore.with_url`` and sqlspec set them: same durability."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 15000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)


async def _create_store_table(url: URL, name: str) -> MetaData:
    """``sqlsession``'s table (the one the migrations create) called ``name``."""
    metadata = MetaData()
    store_table(metadata, name)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()
    return metadata


async def _drop_metadata(url: URL, metadata: MetaData) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
    finally:
        await engine.dispose()


def _sqlite_file(settings: Settings, dialect: str, name: str) -> Path | None:
    # one SQLite file per contender: no contender waits on another's write lock
    return settings.workdir / f"{name}.db" if dialect == "sqlite" else None


async def open_sqlsession(
    dialect: str,
    settings: Settings,
    *,
    file_name: str = "sqlsession",
    clock: Callable[[], float] | None = None,
) -> tuple[SQLStore, Callable[[], Awaitable[None]]]:
    """``SQLStore.with_url`` (the owned-engine fast path) on a fresh table; and its closer."""
    url = dialect_url(dialect, _sqlite_file(settings, dialect, file_name))
    table = _table("sqlsession", url)
    metadata = await _create_store_table(url, table)
    options: dict[str, Any] = {"pool_size": settings.pool_size, "max_overflow": 0}
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    try:
        store = SQLStore.with_url(url, table_name=table, engine_options=options, **extra)
    except BaseException:
        await _drop_metadata(url, metadata)
        raise

    async def close() -> None:
        try:
            await store.close()
        finally:
            await _drop_metadata(url, metadata)

    return store, close


async def _open_sqlsession_engine(dialect: str, settings: Settings) -> Contender:
    """``SQLStore(engine)`` on an engine the application made as it usually does: SQLAlchemy's
    defaults (``pool_size=5, max_overflow=10``, no autocommit)."""
    url = dialect_url(dialect, _sqlite_file(settings, dialect, "sqlsession-engine"))
    table = _table("sqlsession_engine", url)
    metadata = await _create_store_table(url, table)
    engine = create_async_engine(url)
    if dialect == "sqlite":
        _sqlite_pragmas(engine)
    store = SQLStore(engine, table_name=table)

    async def close() -> None:
        try:
            await engine.dispose()
        finally:
            await _drop_metadata(url, metadata)

    return Contender("sqlsession-engine", store, close, "SQLStore(create_async_engine(url))")


def store_namespace(url: URL, table: str) -> bytes:
    """The namespace bytes ``SQLStore`` writes for its default namespace (``store._ns``)."""
    probe = SQLStore.with_url(url, table_name=table)
    try:
        return probe._ns
    finally:
        probe.engine.sync_engine.dispose(close=False)  # it never connected


async def _open_raw(dialect: str, settings: Settings) -> Contender:
    url = dialect_url(dialect, _sqlite_file(settings, dialect, "raw"))
    table = _table("raw", url)
    metadata = await _create_store_table(url, table)
    namespace = store_namespace(url, table)
    try:
        raw = await open_raw(dialect, url, table, namespace, settings.pool_size)
    except BaseException:
        await _drop_metadata(url, metadata)
        raise

    async def close() -> None:
        try:
            await raw.close()
        finally:
            await _drop_metadata(url, metadata)

    driver = "aiosqlite" if dialect == "sqlite" else dialect
    return Contender("raw", raw, close, f"{driver} alone, the store's SQL, autocommit")


async def _open_sqlsession(dialect: str, settings: Settings) -> Contender:
    store, close = await open_sqlsession(dialect, settings)
    return Contender("sqlsession", store, close, "SQLStore.with_url(url)")


async def _open_sqlspec(dialect: str, settings: Settings) -> Contender:
    try:
        import sqlspec  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"sqlspec is not installed ({error})") from None
    url = dialect_url(dialect, _sqlite_file(settings, dialect, "sqlspec"))
    table = _table("sqlspec", url)
    extension = {"litestar": {"session_table": table}}
    size = settings.pool_size
    config: Any
    store: Any
    if dialect == "asyncpg":
        from sqlspec.adapters.asyncpg import AsyncpgConfig
        from sqlspec.adapters.asyncpg.litestar import AsyncpgStore

        params = {"host": url.host, "port": url.port or 5432, "user": url.username, "database": url.database}
        if url.password:
            params["password"] = url.password
        config = AsyncpgConfig(
            connection_config={**params, "min_size": size, "max_size": size}, extension_config=extension
        )
        store = AsyncpgStore(config)
    elif dialect == "psycopg":
        from sqlspec.adapters.psycopg import PsycopgAsyncConfig
        from sqlspec.adapters.psycopg.litestar import PsycopgAsyncStore

        conninfo = f"host={url.host} port={url.port or 5432} user={url.username} dbname={url.database}"
        if url.password:
            conninfo += f" password={url.password}"
        config = PsycopgAsyncConfig(
            connection_config={"conninfo": conninfo, "min_size": size, "max_size": size},
            extension_config=extension,
        )
        store = PsycopgAsyncStore(config)
    elif dialect == "asyncmy":
        from sqlspec.adapters.asyncmy import AsyncmyConfig
        from sqlspec.adapters.asyncmy.litestar import AsyncmyStore

        config = AsyncmyConfig(
            connection_config={
                "host": url.host or "127.0.0.1",
                "port": url.port or 3306,
                "user": url.username or "root",
                "password": url.password or "",
                "database": url.database or "",
                "minsize": size,
                "maxsize": size,
            },
            extension_config=extension,
        )
        store = AsyncmyStore(config)
    elif dialect == "sqlite":
        from sqlspec.adapters.aiosqlite import AiosqliteConfig
        from sqlspec.adapters.aiosqlite.litestar import AiosqliteStore

        # sqlspec's pool sets WAL and synchronous=NORMAL on a file database by default
        config = AiosqliteConfig(
            connection_config={"database": url.database or "", "pool_size": size}, extension_config=extension
        )
        store = AiosqliteStore(config)
    else:  # pragma: no cover
        raise Unavailable(f"no sqlspec store for {dialect}")
    # the documented way: the store creates its table
    try:
        await store.create_table()
    except BaseException:
        await config.close_pool()
        raise

    async def close() -> None:
        try:
            async with config.provide_connection() as conn:
                await _drop_with_driver(dialect, conn, table)
        finally:
            await config.close_pool()

    return Contender("sqlspec", store, close, f"{type(store).__name__} (sqlspec {_version('sqlspec')})")


async def _drop_with_driver(dialect: str, conn: Any, table: str) -> None:
    sql = "DROP TABLE IF EXISTS " + table
    if dialect == "asyncpg":
        await conn.execute(sql)
    elif dialect == "psycopg":
        await conn.execute(sql)
        await conn.commit()
    elif dialect == "asyncmy":
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
        await conn.commit()
    else:
        await conn.execute(sql)
        await conn.commit()


_AA_MODELS: dict[str, Any] = {}


async def _open_advanced_alchemy(dialect: str, settings: Settings) -> Contender:
    try:
        from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
        from advanced_alchemy.extensions.litestar.store import SQLAlchemyStore, StoreModelMixin
    except ImportError as error:
        raise Unavailable(f"advanced-alchemy is not installed ({error})") from None
    url = dialect_url(dialect, _sqlite_file(settings, dialect, "advanced_alchemy"))
    table = _table("aa", url)
    # the documented way: a model of one's own on StoreModelMixin, its table created from it
    model = type(f"BenchStore_{table}", (StoreModelMixin,), {"__tablename__": table})
    _AA_MODELS[table] = model
    engine = create_async_engine(url, pool_size=settings.pool_size, max_overflow=0)
    if dialect == "sqlite":
        _sqlite_pragmas(engine)
    sa_table: Any = model.__table__
    try:
        async with engine.begin() as conn:
            await conn.run_sync(sa_table.create)
    except BaseException:
        sa_table.metadata.remove(sa_table)
        await engine.dispose()
        raise
    config = SQLAlchemyAsyncConfig(engine_instance=engine)
    store = SQLAlchemyStore(config, model=model)

    async def close() -> None:
        try:
            async with engine.begin() as conn:
                await conn.run_sync(sa_table.drop)
        finally:
            sa_table.metadata.remove(sa_table)
            _AA_MODELS.pop(table, None)
            await engine.dispose()

    version = _version("advanced-alchemy")
    return Contender("advanced-alchemy", store, close, f"SQLAlchemyStore (advanced-alchemy {version})")


async def _open_file_store(dialect: str, settings: Settings) -> Contender:
    from litestar.stores.file import FileStore

    path = settings.workdir / f"filestore_{dialect}_{uuid.uuid4().hex[:8]}"
    store = FileStore(path, create_directories=True)

    async def close() -> None:
        shutil.rmtree(path, ignore_errors=True)

    return Contender(
        "FileStore", store, close, "litestar.stores.file.FileStore, a folder in a temporary directory"
    )


async def _open_redis_store(dialect: str, settings: Settings) -> Contender:
    try:
        from litestar.stores.redis import RedisStore
    except ImportError as error:
        raise Unavailable(f"redis is not installed ({error})") from None
    reason = reachable(settings.redis_url, 6379)
    if reason is not None:
        raise Unavailable(f"Redis at {settings.redis_url}: {reason}")
    namespace = f"BENCH{uuid.uuid4().hex[:10]}"
    store = RedisStore.with_client(url=settings.redis_url, namespace=namespace)

    async def close() -> None:
        try:
            await store.delete_all()  # only the keys of this run's namespace
        finally:
            await store._redis.aclose()

    return Contender("RedisStore", store, close, "litestar.stores.redis.RedisStore, a namespace of its own")


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


_OPENERS: dict[str, Callable[[str, Settings], Awaitable[Contender]]] = {
    "raw": _open_raw,
    "sqlsession": _open_sqlsession,
    "sqlsession-engine": _open_sqlsession_engine,
    "sqlspec": _open_sqlspec,
    "advanced-alchemy": _open_advanced_alchemy,
    "FileStore": _open_file_store,
    "RedisStore": _open_redis_store,
}


async def open_contender(name: str, dialect: str, settings: Settings) -> Contender:
    """Open contender ``name`` for ``dialect``; :class:`Unavailable` if it cannot run here."""
    try:
        return await _OPENERS[name](dialect, settings)
    except Unavailable:
        raise
    except ImportError as error:
        raise Unavailable(f"not installed: {error}") from None
