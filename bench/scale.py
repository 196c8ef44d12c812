"""Scale: sqlsession's sequential figures on tables of 1,000 and 1,000,000 rows, and
``delete_expired()`` on the large one, with concurrent ``get`` calls timed while it runs.

The filler rows are bulk-loaded with one server-side ``INSERT ... SELECT`` per chunk
(``generate_series`` on PostgreSQL, the ``seq_1_to_N`` sequence table on MariaDB, a recursive
CTE on SQLite), never through the store: ``namespace`` is the store's own (``store._ns``),
``key_hash`` 32 random bytes, ``value`` a fixed block of ``fill_value_bytes`` bytes, and
``expires_at`` one day ahead. Both tables are measured interleaved in the same rounds.

Expiry: every store here runs on one shifted clock (``SQLStore(clock=...)``). The filler rows
expire one day ahead (on the largest table, half of them thirty days ahead) and the working keys
seven days ahead, so while the clock is true every row is live; for ``delete_expired()`` the clock
moves two days on, and exactly the one-day filler rows are expired while the others stay readable.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore

from .contenders import Contender, open_sqlsession
from .settings import Settings
from .workload import check_stop, latency_summary, sequential, session_keys

__all__ = ("bulk_load", "run_scale")

_DAY = 86_400
_US = 1_000_000
_MARIADB_CHUNK = 100_000
_SQLITE_CHUNK = 250_000


_COUNT = "SELECT count(*) FROM {table}"
_FILL_TEMPLATES = {
    "postgresql": (
        "INSERT INTO {table} (namespace, key_hash, value, expires_at) "
        "SELECT decode('{ns}', 'hex'), uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), "
        "decode('{value}', 'hex'), {expires} FROM generate_series(1, {rows})"
    ),
    "mysql": (
        "INSERT INTO {table} (namespace, key_hash, value, expires_at) "
        "SELECT X'{ns}', RANDOM_BYTES(32), X'{value}', {expires} FROM seq_1_to_{rows}"
    ),
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) "
        "INSERT INTO {table} (namespace, key_hash, value, expires_at) "
        "SELECT X'{ns}', randomblob(32), X'{value}', {expires} FROM c"
    ),
}


def _literal_sql(dialect: str, table: str, namespace: bytes, value: bytes, expires_at: int, n: int) -> str:
    """One ``INSERT ... SELECT`` of ``n`` rows, with only literals we made (hex and integers)."""
    backend = {"asyncpg": "postgresql", "psycopg": "postgresql", "asyncmy": "mysql"}.get(dialect, "sqlite")
    fields = {"table": table, "ns": namespace.hex(), "value": value.hex(), "expires": str(int(expires_at))}
    text = _FILL_TEMPLATES[backend].replace("{rows}", str(int(n)))
    for name, literal in fields.items():
        text = text.replace("{" + name + "}", literal)
    return text


async def bulk_load(
    dialect: str, store: SQLStore, n: int, value_bytes: int, expires_at: int
) -> tuple[float, int]:
    """Add ``n`` rows to the store's table fast; return (seconds, rows in the table)."""
    table = store.table.name
    engine = create_async_engine(store.engine.url, isolation_level="AUTOCOMMIT")
    value = os.urandom(value_bytes)
    chunk = {"asyncmy": _MARIADB_CHUNK, "sqlite": _SQLITE_CHUNK}.get(dialect, n or 1)
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            left = n
            while left > 0:
                rows = min(left, chunk)
                await conn.exec_driver_sql(_literal_sql(dialect, table, store._ns, value, expires_at, rows))
                left -= rows
            # fresh statistics, as a maintained production table has
            if dialect in ("asyncpg", "psycopg"):
                await conn.exec_driver_sql("VACUUM (ANALYZE) " + table)
            elif dialect == "asyncmy":
                await conn.exec_driver_sql("ANALYZE TABLE " + table)
            else:
                await conn.exec_driver_sql("ANALYZE " + table)
            loaded = time.perf_counter() - started
            count = (await conn.exec_driver_sql(_COUNT.replace("{table}", table))).scalar_one()
    finally:
        await engine.dispose()
    return loaded, int(count)


async def _getter(
    store: SQLStore, keys: Sequence[str], stop: asyncio.Event, out: list[int], seed: int, interval: float
) -> None:
    """``get`` calls at a steady pace (one per ``interval`` seconds), like requests arriving."""
    clock = time.perf_counter_ns
    index = seed
    due = time.perf_counter()
    while not stop.is_set():
        key = keys[index % len(keys)]
        index += 7
        start = clock()
        await store.get(key)
        out.append(clock() - start)
        due += interval
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        else:
            due = time.perf_counter()  # fell behind: no burst to catch up
            await asyncio.sleep(0)


async def _gets_while(
    store: SQLStore, keys: Sequence[str], tasks: int, rate: float, work: Callable[[], Awaitable[Any]]
) -> tuple[Any, float, list[int]]:
    """Run ``work`` while ``tasks`` tasks ``get`` keys, ``rate`` calls per second in all;
    return its result, its seconds and the latencies of the gets."""
    stop = asyncio.Event()
    latencies: list[int] = []
    interval = tasks / rate
    getters = [asyncio.create_task(_getter(store, keys, stop, latencies, i, interval)) for i in range(tasks)]
    await asyncio.sleep(0.05)  # the getters are running before the work starts
    started = time.perf_counter()
    try:
        result = await work()
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*getters)
    return result, elapsed, latencies


async def run_scale(dialect: str, settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """The scale part for one dialect: see the module docstring."""
    shift = [0.0]

    def clock() -> float:
        return time.time() + shift[0]

    sizes = sorted(set(settings.rows))
    working = session_keys(settings.scale_keys, "w")
    stores: list[tuple[int, SQLStore, Callable[[], Awaitable[None]]]] = []
    out: dict[str, Any] = {"rows": {}, "value_bytes": 512, "fill_value_bytes": settings.fill_value_bytes}
    try:
        for n in sizes:
            check_stop()
            store, close = await open_sqlsession(dialect, settings, file_name=f"scale_{n}", clock=clock)
            stores.append((n, store, close))
            fill = max(n - settings.scale_keys, 0)
            # the largest table: half its rows expire before delete_expired() runs, half stay live
            live = fill // 2 if n == sizes[-1] and len(sizes) > 1 else 0
            expiring = fill - live
            seconds = 0.0
            for rows, days in ((expiring, 1), (live, 30)):
                expires_at = round((time.time() + days * _DAY) * _US)
                took, count = await bulk_load(dialect, store, rows, settings.fill_value_bytes, expires_at)
                seconds += took
            log(f"  {dialect}: loaded {fill:,} rows ({live:,} of them live at cleanup) in {seconds:.1f} s")
            out["rows"][str(n)] = {
                "filled": fill,
                "expiring": expiring,
                "live": live,
                "load_s": seconds,
                "table_rows_after_load": count,
            }
        contenders = [Contender(f"{n:,} rows", store, close) for n, store, close in stores]
        latencies = await sequential(
            contenders,
            sizes=(512,),
            batch=settings.scale_keys,
            rounds=settings.scale_rounds,
            expires_in=7 * _DAY,
            keys=working,
        )
        for n, _store, _close in stores:
            name = f"{n:,} rows"
            ops = {
                op: latency_summary(samples)
                for (who, op, _size), samples in latencies.samples.items()
                if who == name
            }
            out["rows"][str(n)]["ops"] = ops
            out["rows"][str(n)]["misses"] = latencies.misses.get(name, 0)
            if name in latencies.errors:
                out["rows"][str(n)]["error"] = latencies.errors[name]
        check_stop()
        # delete_expired() on the largest table, gets timed before and while it runs
        largest, big, _ = stores[-1]
        read_keys = [f"{key}512" for key in working]
        tasks, rate = settings.delete_get_tasks, settings.delete_get_rate
        _, _, baseline = await _gets_while(big, read_keys, tasks, rate, lambda: asyncio.sleep(2.0))
        shift[0] = 2 * _DAY
        log(f"  {dialect}: delete_expired() on {largest:,} rows ...")
        deleted, seconds, during = await _gets_while(big, read_keys, tasks, rate, big.delete_expired)
        remaining = await big.exists(read_keys[0])
        out["delete_expired"] = {
            "rows": largest,
            "deleted": deleted,
            "seconds": seconds,
            "get_tasks": tasks,
            "get_rate": rate,
            "baseline": latency_summary(baseline),
            "during": latency_summary(during),
            "working_keys_still_readable": remaining,
        }
        log(f"  {dialect}: deleted {deleted:,} rows in {seconds:.1f} s")
    finally:
        for _n, _store, close in stores:
            await close()
    return out
