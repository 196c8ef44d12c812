"""The shapes of a run, each interleaved over the contenders so that machine drift hits them alike:
:func:`sequential` (one task, each call timed alone), :func:`concurrent` (a session mix from several tasks)
and :func:`run_scale` (``SQLStore.with_url`` alone on large tables, and ``delete_expired()`` on them)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import random
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from .contenders import OPS, Contender, Settings, open_contender

Cells = dict[str, dict[str, dict[str, Any]]]  # contender -> operation or size -> size or tasks -> figure
_DAY, _US = 86_400, 1_000_000


def session_keys(count: int, tag: str = "") -> list[str]:
    """Keys shaped like Litestar's session IDs (64 hex characters)."""
    return [(tag + secrets.token_hex(32))[:64] for _ in range(count)]


def latency_summary(samples: Sequence[int]) -> dict[str, float]:
    """Median and p99 in microseconds, and the sample count."""
    ordered, nan = sorted(samples), float("nan")
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000 if ordered else nan
    median = statistics.median(ordered) / 1000 if ordered else nan
    return {"median_us": median, "p99_us": p99, "n": float(len(ordered))}


def op_call(store: Any, op: str, value: bytes, expires_in: int) -> Any:
    """One call of operation ``op`` (of :data:`OPS`) on a key."""
    if op == "set":
        return lambda key: store.set(key, value, expires_in)
    return (lambda key: store.get(key, expires_in)) if op == "get_renew" else getattr(store, op)


def why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _rotated(items: Sequence[Contender], shift: int) -> list[Contender]:
    return [*items[shift % max(len(items), 1) :], *items[: shift % max(len(items), 1)]]


async def _write(
    contenders: Sequence[Contender], keys: Any, value: bytes, expires_in: int, errors: Any, mix: Any = None
) -> list[Contender]:
    """Write ``keys`` to the contenders that have not failed (then run the mix ``mix``, a warm-up); return
    those that still have not; adds the others to ``errors``."""
    for contender in [c for c in contenders if c.name not in errors]:
        try:
            for key in keys:
                await contender.store.set(key, value, expires_in)
            if mix:
                await _mix(contender.store, *mix)
        except Exception as error:
            errors[contender.name] = why(error)
    return [c for c in contenders if c.name not in errors]


async def sequential(
    contenders: Sequence[Contender], sizes: Any, batch: int, rounds: int, expires_in: int, keys: Any = ()
) -> tuple[Cells, dict[str, int], dict[str, str]]:
    """Median/p99 of every (contender, op, size), interleaved in ``rounds`` rounds; per contender the
    reads that missed a key that must be there (must be 0: else the figures lie); errors."""
    samples: dict[tuple[str, str, str], list[int]] = {}
    misses, errors, clock = {c.name: 0 for c in contenders}, {}, time.perf_counter_ns
    values = {size: os.urandom(size) for size in sizes}
    # the keys read, renewed and overwritten: present in every contender, one set per size
    live = {size: [f"{key}{size}" for key in (keys[:batch] or session_keys(batch))] for size in sizes}
    for size in sizes:
        active = await _write(contenders, live[size], values[size], expires_in, errors)
    gc.collect()  # long-lived objects out of the collector's way: the collections below stay cheap
    gc.freeze()
    try:
        for round_no, (op_no, op), size in itertools.product(range(rounds + 1), enumerate(OPS), sizes):
            for contender in [c for c in _rotated(active, round_no + op_no) if c.name not in errors]:
                store, value, batch_keys = contender.store, values[size], live[size]
                try:
                    if op == "delete":  # rows that exist (a miss would skip the write): set, untimed
                        batch_keys = session_keys(batch, "d")
                        for key in batch_keys:
                            await store.set(key, value, expires_in)
                    gc.collect()
                    call, timed = op_call(store, op, value, expires_in), []
                    for key in batch_keys:
                        start = clock()
                        await call(key)
                        timed.append(clock() - start)
                    if round_no:
                        samples.setdefault((contender.name, op, str(size)), []).extend(timed)
                    if op in ("get", "get_renew", "exists") and round_no in (0, rounds):
                        got = [await store.get(key) for key in live[size][:3]]
                        misses[contender.name] += len(got) - got.count(value)
                except Exception as error:
                    errors[contender.name] = why(error)
    finally:
        gc.unfreeze()
    cells: Cells = {}
    for (name, op, size), latencies in samples.items():
        cells.setdefault(name, {}).setdefault(op, {})[size] = latency_summary(latencies)
    return cells, misses, errors


async def _mix(store: Any, tasks: int, seconds: float, keys: Any, value: bytes, expires_in: int) -> Any:
    """Run the mix; return (operations done, seconds, client CPU seconds)."""
    calls = [op_call(store, op, value, expires_in) for op in ("get_renew", "set", "delete")]
    rng = random.Random(4)  # the mix as (operation, key): 0 = get with renewal, 1 = set, 2 = delete
    mix = rng.choices((0, 1, 2), weights=(70, 25, 5), k=20_000)
    schedule = [(op, rng.randrange(len(keys))) for op in mix]
    cpu, started = time.process_time(), time.perf_counter()
    deadline = started + seconds

    async def worker(position: int) -> int:
        done, clock, length = 0, time.perf_counter, len(schedule)
        while clock() < deadline:
            op, index = schedule[position]
            position = position + 1 if position + 1 < length else 0
            await calls[op](keys[index])
            done += 1
        return done

    counts = await asyncio.gather(*(worker(i * (len(schedule) // tasks)) for i in range(tasks)))
    return sum(counts), time.perf_counter() - started, time.process_time() - cpu


async def concurrent(
    contenders: Sequence[Contender], s: Settings, errors: dict[str, str]
) -> tuple[Cells, Cells]:
    """Operations per second of the session mix per contender, size and number of tasks; and the CPU
    time of this process (all threads) per second of it: near 1.0, the client is the bottleneck (one
    core of Python); well below, it waits on the server. Adds the contenders that fail to ``errors``."""
    keys, ops, cpu, totals = session_keys(s.keys, "c"), {}, {}, {}
    for size, value in [(size, os.urandom(size)) for size in s.sizes]:
        warm_up = (max(s.tasks), min(s.seconds, 0.3), keys, value, s.expires_in)
        active = await _write(contenders, keys, value, s.expires_in, errors, warm_up)
        gc.collect()
        gc.freeze()
        try:
            for round_no, tasks in itertools.product(range(s.conc_rounds), s.tasks):
                for c in [c for c in _rotated(active, round_no) if c.name not in errors]:
                    gc.collect()
                    try:
                        done = await _mix(c.store, tasks, s.seconds, keys, value, s.expires_in)
                    except Exception as error:
                        errors[c.name] = why(error)
                        continue
                    total = totals.setdefault((c.name, str(size), str(tasks)), [0, 0.0, 0.0])
                    total[:] = [a + b for a, b in zip(total, done, strict=True)]
        finally:
            gc.unfreeze()
    for (name, size, tasks), (done, elapsed, used) in totals.items():
        if name not in errors:
            ops.setdefault(name, {}).setdefault(size, {})[tasks] = done / elapsed
            cpu.setdefault(name, {}).setdefault(size, {})[tasks] = used / elapsed
    return ops, cpu


# per backend: a fill of ``{rows}`` rows; at most this many rows per statement; the statistics statement
_FILL = {
    "postgresql": "INSERT INTO {table} (namespace, key_hash, value, expires_at) "
    "SELECT decode('{ns}', 'hex'), uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), "
    "decode('{value}', 'hex'), {expires} FROM generate_series(1, {rows})",
    "mysql": "INSERT INTO {table} (namespace, key_hash, value, expires_at) "
    "SELECT X'{ns}', RANDOM_BYTES(32), X'{value}', {expires} FROM seq_1_to_{rows}",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) "
    "INSERT INTO {table} (namespace, key_hash, value, expires_at) "
    "SELECT X'{ns}', randomblob(32), X'{value}', {expires} FROM c",
}
_CHUNK = {"mysql": 100_000, "sqlite": 250_000}
_ANALYZE = {"postgresql": "VACUUM (ANALYZE) ", "mysql": "ANALYZE TABLE "}


async def bulk_load(store: Any, n: int, value_bytes: int, expires_at: int) -> tuple[float, int]:
    """Add ``n`` rows to the store's table fast; return (seconds, rows in the table)."""
    table, url, started = store.table.name, store.engine.url, time.perf_counter()
    backend, engine = url.get_backend_name(), create_async_engine(url, isolation_level="AUTOCOMMIT")
    value = os.urandom(value_bytes).hex()  # only literals we made: hex and integers
    fields = {"table": table, "ns": store._ns.hex(), "value": value, "expires": expires_at}
    try:
        async with engine.connect() as conn:
            for first in range(0, n, chunk := _CHUNK.get(backend, 10**9)):
                await conn.exec_driver_sql(_FILL[backend].format(rows=min(n - first, chunk), **fields))
            await conn.exec_driver_sql(_ANALYZE.get(backend, "ANALYZE ") + table)  # fresh statistics
            loaded = time.perf_counter() - started
            count = (await conn.exec_driver_sql("SELECT count(*) FROM " + table)).scalar_one()  # noqa: S608
    finally:
        await engine.dispose()
    return loaded, int(count)


async def _gets_while(store: Any, keys: Sequence[str], settings: Settings, work: Callable[[], Any]) -> Any:
    """Run ``work`` while tasks ``get`` keys at a steady pace, like requests arriving; return its
    result, its seconds and the latencies of the gets."""
    stop, latencies, tasks = asyncio.Event(), [], settings.delete_get_tasks
    interval = tasks / settings.delete_get_rate

    async def getter(index: int) -> None:
        due = time.perf_counter()
        while not stop.is_set():
            start = time.perf_counter_ns()
            await store.get(keys[index % len(keys)])
            latencies.append(time.perf_counter_ns() - start)
            index, due = index + 7, due + interval
            if (pause := due - time.perf_counter()) <= 0:
                due = time.perf_counter()  # fell behind: no burst to catch up
            await asyncio.sleep(max(pause, 0))

    getters = [asyncio.create_task(getter(i)) for i in range(tasks)]
    await asyncio.sleep(0.05)  # the getters are running before the work starts
    started = time.perf_counter()
    try:
        result = await work()
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*getters)
    return result, elapsed, latencies


async def run_scale(dialect: str, s: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """The scale part for one dialect: see the module docstring."""
    shift, sizes, keys, stores = [0.0], sorted(set(s.rows)), session_keys(s.scale_keys, "w"), []
    out: dict[str, Any] = {"rows": {}, "value_bytes": 512, "fill_value_bytes": s.fill_value_bytes}
    clock = lambda: time.time() + shift[0]  # noqa: E731
    try:
        for n in sizes:
            stores.append(await open_contender("sqlsession", dialect, s, f"scale_{n}", clock=clock))
            stores[-1].name, fill = f"{n:,} rows", max(n - s.scale_keys, 0)
            # the largest table: half its rows expire before delete_expired() runs, half stay live
            live, seconds = fill // 2 if n == sizes[-1] and len(sizes) > 1 else 0, 0.0
            for rows, days in ((fill - live, 1), (live, 30)):
                expires_at = round((time.time() + days * _DAY) * _US)
                took, count = await bulk_load(stores[-1].store, rows, s.fill_value_bytes, expires_at)
                seconds += took
            log(f"  {dialect}: loaded {fill:,} rows ({live:,} of them live at cleanup) in {seconds:.1f} s")
            out["rows"][str(n)] = {"filled": fill, "expiring": fill - live, "live": live, "load_s": seconds}
            out["rows"][str(n)]["table_rows_after_load"] = count
        cells, misses, errors = await sequential(stores, (512,), s.scale_keys, s.scale_rounds, 7 * _DAY, keys)
        for n, name in [(n, c.name) for n, c in zip(sizes, stores, strict=True)]:
            ops = {op: cell["512"] for op, cell in cells.get(name, {}).items()}
            out["rows"][str(n)] |= {"ops": ops, "misses": misses[name]}
            out["rows"][str(n)] |= {"error": errors[name]} if name in errors else {}
        big, read_keys = stores[-1].store, [f"{key}512" for key in keys]
        _, _, baseline = await _gets_while(big, read_keys, s, lambda: asyncio.sleep(2.0))
        shift[0] = 2 * _DAY
        log(f"  {dialect}: delete_expired() on {sizes[-1]:,} rows ...")
        deleted, seconds, during = await _gets_while(big, read_keys, s, big.delete_expired)
        out["delete_expired"] = {"rows": sizes[-1], "deleted": deleted, "seconds": seconds}
        out["delete_expired"] |= {"get_tasks": s.delete_get_tasks, "get_rate": s.delete_get_rate}
        out["delete_expired"] |= {"baseline": latency_summary(baseline), "during": latency_summary(during)}
        out["delete_expired"]["working_keys_still_readable"] = await big.exists(read_keys[0])
        log(f"  {dialect}: deleted {deleted:,} rows in {seconds:.1f} s")
    finally:
        for contender in stores:
            await contender.close()
    return out
