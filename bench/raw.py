"""The floor: each driver running, by hand, the SQL that ``SQLStore`` runs, in autocommit.

One class per driver with Litestar's ``Store`` calls (``set``, ``get``, ``exists``, ``delete``), on
the same table (``sqlsession.store_table``), with the same statements as the store compiles for
that dialect (``ON CONFLICT``/``ON DUPLICATE KEY`` upsert, ``UPDATE ... RETURNING`` renewal, or on
MariaDB a ``SELECT`` and a compare-and-set ``UPDATE``), the same parameters (namespace bytes,
SHA-256 of the key, expiry in microseconds) and nothing else: no argument checks, no error
mapping. Sequential calls always get the same connection (a LIFO list); concurrent calls get up to
``size`` connections, like the other contenders' pools.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import URL

__all__ = ("RawAiosqlite", "RawAsyncmy", "RawAsyncpg", "RawPsycopg", "RawStore", "open_raw")

_US = 1_000_000
C = TypeVar("C")

# ``{t}`` is the table name, ``{p}`` the dialect's placeholder, numbered where needed
_UPSERT_ON_CONFLICT = (
    "INSERT INTO {t} (namespace, key_hash, value, expires_at) VALUES ({p1}, {p2}, {p3}, {p4}) "
    "ON CONFLICT (namespace, key_hash) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
_UPSERT_DUPLICATE_KEY = (
    "INSERT INTO {t} (namespace, key_hash, value, expires_at) VALUES ({p1}, {p2}, {p3}, {p4}) "
    "ON DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)"
)
_SELECT = (
    "SELECT {cols} FROM {t} WHERE namespace = {p1} AND key_hash = {p2} "
    "AND (expires_at IS NULL OR expires_at > {p3})"
)
_RENEW_RETURNING = (
    "UPDATE {t} SET expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE {p1} END "
    "WHERE namespace = {p2} AND key_hash = {p3} AND (expires_at IS NULL OR expires_at > {p4}) "
    "RETURNING value"
)
_RENEW_CAS = (
    "UPDATE {t} SET expires_at = {p1} WHERE namespace = {p2} AND key_hash = {p3} AND expires_at = {p4}"
)
_DELETE = "DELETE FROM {t} WHERE namespace = {p1} AND key_hash = {p2}"


def _sql(template: str, table: str, placeholders: tuple[str, ...], cols: str = "") -> str:
    text = template.replace("{t}", table).replace("{cols}", cols)
    for number, placeholder in enumerate(placeholders, start=1):
        text = text.replace(f"{{p{number}}}", placeholder)
    return text


class _Lifo(Generic[C]):
    """Connections handed out last-in first-out: a lone caller always gets the same one."""

    def __init__(self, connections: list[C]) -> None:
        self.all = list(connections)
        self.idle = list(connections)
        self.waiters: deque[asyncio.Future[C]] = deque()

    async def wait(self) -> C:
        waiter: asyncio.Future[C] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def release(self, conn: C) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)


class RawStore(Generic[C]):
    """What every raw store shares: the namespace bytes, the key digest, the clock."""

    # placeholders of the upsert (namespace, key_hash, value, expires_at), of the reads (namespace,
    # key_hash, now) and of the renewals (new expiry, namespace, key_hash, now / old expiry)
    upsert_args: tuple[str, ...] = ("?", "?", "?", "?")
    select_args: tuple[str, ...] = ("?", "?", "?")
    renew_args: tuple[str, ...] = ("?", "?", "?", "?")
    upsert_template = _UPSERT_ON_CONFLICT

    def __init__(self, table: str, namespace: bytes, connections: list[C]) -> None:
        self.ns = namespace
        self.pool = _Lifo(connections)
        self.upsert = _sql(self.upsert_template, table, self.upsert_args)
        self.select_value = _sql(_SELECT, table, self.select_args, "value")
        self.select_expiry = _sql(_SELECT, table, self.select_args, "expires_at")
        self.select_value_expiry = _sql(_SELECT, table, self.select_args, "value, expires_at")
        self.renew = _sql(_RENEW_RETURNING, table, self.renew_args)
        self.renew_cas = _sql(_RENEW_CAS, table, self.renew_args)
        self.delete_sql = _sql(_DELETE, table, self.select_args)

    async def close(self) -> None:
        for conn in self.pool.all:
            await self._close(conn)

    async def _close(self, conn: C) -> None:
        raise NotImplementedError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _now() -> int:
    return round(time.time() * _US)


class RawAsyncpg(RawStore[Any]):
    # the casts SQLAlchemy's asyncpg dialect renders, as the store runs them
    upsert_args = ("$1::BYTEA", "$2::BYTEA", "$3::BYTEA", "$4::BIGINT")
    select_args = ("$1::BYTEA", "$2::BYTEA", "$3::BIGINT")
    renew_args = ("$1::BIGINT", "$2::BYTEA", "$3::BYTEA", "$4::BIGINT")

    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> None:
        expires_at = _now() + expires_in * _US if expires_in else None
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.execute(self.upsert, self.ns, _digest(key), value, expires_at)
        finally:
            pool.release(conn)

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None:
        now = _now()
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            if renew_for:
                rows = await conn.fetch(self.renew, now + renew_for * _US, self.ns, _digest(key), now)
            else:
                rows = await conn.fetch(self.select_value, self.ns, _digest(key), now)
        finally:
            pool.release(conn)
        return bytes(rows[0][0]) if rows else None

    async def exists(self, key: str) -> bool:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            rows = await conn.fetch(self.select_expiry, self.ns, _digest(key), _now())
        finally:
            pool.release(conn)
        return bool(rows)

    async def delete(self, key: str) -> None:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.execute(self.delete_sql, self.ns, _digest(key))
        finally:
            pool.release(conn)

    async def _close(self, conn: Any) -> None:
        await conn.close()


class RawPsycopg(RawStore[Any]):
    # the casts SQLAlchemy's psycopg dialect renders, as the store runs them
    upsert_args = ("%s", "%s", "%s", "%s::BIGINT")
    select_args = ("%s", "%s", "%s::BIGINT")
    renew_args = ("%s::BIGINT", "%s", "%s", "%s::BIGINT")

    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> None:
        expires_at = _now() + expires_in * _US if expires_in else None
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.execute(self.upsert, (self.ns, _digest(key), value, expires_at))
        finally:
            pool.release(conn)

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None:
        now = _now()
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            if renew_for:
                cursor = await conn.execute(self.renew, (now + renew_for * _US, self.ns, _digest(key), now))
            else:
                cursor = await conn.execute(self.select_value, (self.ns, _digest(key), now))
            rows = await cursor.fetchall()
        finally:
            pool.release(conn)
        return bytes(rows[0][0]) if rows else None

    async def exists(self, key: str) -> bool:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            cursor = await conn.execute(self.select_expiry, (self.ns, _digest(key), _now()))
            rows = await cursor.fetchall()
        finally:
            pool.release(conn)
        return bool(rows)

    async def delete(self, key: str) -> None:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.execute(self.delete_sql, (self.ns, _digest(key)))
        finally:
            pool.release(conn)

    async def _close(self, conn: Any) -> None:
        await conn.close()


class RawAsyncmy(RawStore[Any]):
    upsert_args = ("%s", "%s", "%s", "%s")
    select_args = ("%s", "%s", "%s")
    renew_args = ("%s", "%s", "%s", "%s")
    upsert_template = _UPSERT_DUPLICATE_KEY

    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> None:
        expires_at = _now() + expires_in * _US if expires_in else None
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.cursor().execute(self.upsert, (self.ns, _digest(key), value, expires_at))
        finally:
            pool.release(conn)

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None:
        now = _now()
        kh = _digest(key)
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            cursor = conn.cursor()
            if not renew_for:
                await cursor.execute(self.select_value, (self.ns, kh, now))
                rows = await cursor.fetchall()
                return bytes(rows[0][0]) if rows else None
            # no UPDATE ... RETURNING: read, then renew only the version that was read
            await cursor.execute(self.select_value_expiry, (self.ns, kh, now))
            rows = await cursor.fetchall()
            if not rows:
                return None
            value, old_expiry = rows[0]
            if old_expiry is not None:
                await conn.cursor().execute(self.renew_cas, (now + renew_for * _US, self.ns, kh, old_expiry))
            return bytes(value)
        finally:
            pool.release(conn)

    async def exists(self, key: str) -> bool:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            cursor = conn.cursor()
            await cursor.execute(self.select_expiry, (self.ns, _digest(key), _now()))
            rows = await cursor.fetchall()
        finally:
            pool.release(conn)
        return bool(rows)

    async def delete(self, key: str) -> None:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.cursor().execute(self.delete_sql, (self.ns, _digest(key)))
        finally:
            pool.release(conn)

    async def _close(self, conn: Any) -> None:
        await conn.ensure_closed()


class RawAiosqlite(RawStore[Any]):
    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> None:
        expires_at = _now() + expires_in * _US if expires_in else None
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.execute(self.upsert, (self.ns, _digest(key), value, expires_at))
        finally:
            pool.release(conn)

    async def get(self, key: str, renew_for: int | None = None) -> bytes | None:
        now = _now()
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            if renew_for:
                args = (now + renew_for * _US, self.ns, _digest(key), now)
                rows = await conn.execute_fetchall(self.renew, args)
            else:
                rows = await conn.execute_fetchall(self.select_value, (self.ns, _digest(key), now))
        finally:
            pool.release(conn)
        return bytes(rows[0][0]) if rows else None

    async def exists(self, key: str) -> bool:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            rows = await conn.execute_fetchall(self.select_expiry, (self.ns, _digest(key), _now()))
        finally:
            pool.release(conn)
        return bool(rows)

    async def delete(self, key: str) -> None:
        pool = self.pool
        conn = pool.idle.pop() if pool.idle else await pool.wait()
        try:
            await conn.execute(self.delete_sql, (self.ns, _digest(key)))
        finally:
            pool.release(conn)

    async def _close(self, conn: Any) -> None:
        await conn.close()


async def _connect(dialect: str, url: URL) -> Any:
    if dialect == "asyncpg":
        import asyncpg

        return await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
        )
    if dialect == "psycopg":
        import psycopg

        return await psycopg.AsyncConnection.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password or "",
            dbname=url.database,
            autocommit=True,
        )
    if dialect == "asyncmy":
        import asyncmy

        return await asyncmy.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            autocommit=True,
        )
    if dialect == "sqlite":
        import aiosqlite

        # autocommit (isolation_level=None), WAL, synchronous=NORMAL: what SQLStore.with_url sets
        conn = await aiosqlite.connect(url.database or "", isolation_level=None)
        await conn.execute("PRAGMA busy_timeout = 15000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        return conn
    raise ValueError(dialect)


_CLASSES: dict[str, type[RawStore[Any]]] = {
    "asyncpg": RawAsyncpg,
    "psycopg": RawPsycopg,
    "asyncmy": RawAsyncmy,
    "sqlite": RawAiosqlite,
}


async def open_raw(dialect: str, url: URL, table: str, namespace: bytes, size: int) -> RawStore[Any]:
    """A raw store on ``size`` connections of the driver of ``dialect`` (the table must exist)."""
    connections = [await _connect(dialect, url) for _ in range(size)]
    return _CLASSES[dialect](table, namespace, connections)
