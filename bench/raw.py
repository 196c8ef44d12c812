"""The floor: each driver running by hand, in autocommit, the statements ``SQLStore`` compiles for it, with
the same parameters, and nothing else; one store for every driver, driven by a table of how each runs a
statement and returns rows and of its parameter marks. A lone caller always gets the same connection."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

from sqlalchemy.engine import URL

from sqlsession._keys import key_digest as _digest

_US = 1_000_000
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


async def _psycopg_fetch(conn: Any, sql: str, args: tuple[Any, ...]) -> Any:
    return await (await conn.execute(sql, args)).fetchall()


async def _asyncmy_fetch(conn: Any, sql: str, args: tuple[Any, ...]) -> Any:
    cursor = conn.cursor()
    await cursor.execute(sql, args)
    return await cursor.fetchall()


DRIVERS: dict[str, tuple[Any, Any]] = {  # how a statement runs; how it returns its rows
    "asyncpg": (lambda c, sql, args: c.execute(sql, *args), lambda c, sql, args: c.fetch(sql, *args)),
    "psycopg": (lambda c, sql, args: c.execute(sql, args), _psycopg_fetch),
    "asyncmy": (lambda c, sql, args: c.cursor().execute(sql, args), _asyncmy_fetch),
    "sqlite": (lambda c, sql, args: c.execute(sql, args), lambda c, sql, args: c.execute_fetchall(sql, args)),
}


async def connect(dialect: str, url: URL) -> Any:
    """One autocommit connection of the driver of ``dialect``."""
    server = {"host": url.host or "127.0.0.1", "user": url.username, "password": url.password or ""}
    if dialect == "asyncpg":
        import asyncpg

        server |= {"password": url.password, "port": url.port or 5432, "database": url.database}
        return await asyncpg.connect(**server)
    if dialect == "psycopg":
        from psycopg import AsyncConnection

        server |= {"port": url.port or 5432, "dbname": url.database}
        return await AsyncConnection.connect(**server, autocommit=True)
    if dialect == "asyncmy":
        import asyncmy

        return await asyncmy.connect(**server, port=url.port or 3306, database=url.database, autocommit=True)
    import aiosqlite

    # autocommit (isolation_level=None), WAL, synchronous=NORMAL: what SQLStore.with_url sets
    conn = await aiosqlite.connect(url.database or "", isolation_level=None)
    for pragma in PRAGMAS:
        await conn.execute(pragma)
    return conn


def _now() -> int:
    return round(time.time() * _US)


class RawStore:
    """Litestar's ``Store`` calls on ``connections`` of the driver of ``dialect``."""

    def __init__(self, dialect: str, table: str, namespace: bytes, connections: list[Any]) -> None:
        self.ns, self.all, (self.execute, self.fetch) = namespace, connections, DRIVERS[dialect]
        self.pool: asyncio.LifoQueue[Any] = asyncio.LifoQueue()
        for conn in connections:
            self.pool.put_nowait(conn)
        self.mysql, marks = dialect == "asyncmy", MARKS.get(dialect, ("?", "?"))  # MySQL: no RETURNING

        def sql(text: str) -> str:
            number, text = itertools.count(1), text.replace("{live}", _LIVE).replace("{where}", _WHERE)
            text = text.replace("{t}", table)
            return re.sub(r"\{([bi])\}", lambda m: marks[m[1] == "i"].format(next(number)), text)

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
        expires_at = _now() + expires_in * _US if expires_in else None
        await self._one(self.execute, self.upsert, (self.ns, _digest(key), value, expires_at))

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None:
        now, digest = _now(), _digest(key)
        if not renew_for:
            rows = await self._one(self.fetch, self.select_value, (self.ns, digest, now))
        elif not self.mysql:
            rows = await self._one(self.fetch, self.renew, (now + renew_for * _US, self.ns, digest, now))
        else:  # renew only the version that was read, on the same connection
            conn = self.pool.get_nowait() if self.pool.qsize() else await self.pool.get()
            try:
                rows = await self.fetch(conn, self.select_value_expiry, (self.ns, digest, now))
                if rows and rows[0][1] is not None:
                    args = (now + renew_for * _US, self.ns, digest, rows[0][1])
                    await self.execute(conn, self.renew_cas, args)
            finally:
                self.pool.put_nowait(conn)
        return bytes(rows[0][0]) if rows else None

    async def exists(self, key: str) -> bool:
        return bool(await self._one(self.fetch, self.select_expiry, (self.ns, _digest(key), _now())))

    async def delete(self, key: str) -> None:
        await self._one(self.execute, self.delete_sql, (self.ns, _digest(key)))

    async def close(self) -> None:
        for conn in self.all:
            await (conn.ensure_closed() if self.mysql else conn.close())
