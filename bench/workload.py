"""The two shapes, run interleaved over several contenders so that machine drift cancels out.

- :func:`sequential`: one task. Per round, per operation and value size, each contender in turn
  (the order rotates every round) makes ``batch`` calls, each timed alone; round 0 is a warm-up.
- :func:`concurrent`: ``tasks`` tasks run a session mix (70% ``get`` with renewal, 25% ``set``,
  5% ``delete``) on a shared set of keys for ``seconds``; each contender in turn, every round.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .contenders import Contender, KVStore
from .settings import OPS

__all__ = (
    "ConcurrentResult",
    "Interrupted",
    "Latencies",
    "check_stop",
    "concurrent",
    "latency_summary",
    "request_stop",
    "sequential",
    "session_keys",
)


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: every loop of the run stops at its next step, and cleans up."""


_stop = [False]


def request_stop() -> None:
    """Ask every loop to stop (from a signal handler)."""
    _stop[0] = True


def check_stop() -> None:
    """Raise :class:`Interrupted` if a stop was asked for."""
    if _stop[0]:
        raise Interrupted


# one key of the sequential shape: (contender, operation, value size)
CellKey = tuple[str, str, int]


@dataclass
class Latencies:
    """Nanosecond latencies per cell, and how many reads missed a key that must be there."""

    samples: dict[CellKey, list[int]] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def session_keys(count: int, tag: str = "") -> list[str]:
    """Keys shaped like Litestar's session IDs (64 hex characters)."""
    return [(tag + secrets.token_hex(32))[:64] for _ in range(count)]


def latency_summary(samples: Sequence[int]) -> dict[str, float]:
    """Median and p99 in microseconds, and the sample count."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")
    median = statistics.median(ordered) if ordered else float("nan")
    return {"median_us": median / 1000, "p99_us": p99 / 1000, "n": float(len(ordered))}


def _rotated(items: Sequence[Contender], shift: int) -> list[Contender]:
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


async def _timed(store: KVStore, op: str, keys: Sequence[str], value: bytes, expires_in: int) -> list[int]:
    """One batch of one operation; each call timed alone (``perf_counter_ns``)."""
    clock = time.perf_counter_ns
    out: list[int] = []
    append = out.append
    if op == "set":
        for key in keys:
            start = clock()
            await store.set(key, value, expires_in)
            append(clock() - start)
    elif op == "get":
        for key in keys:
            start = clock()
            await store.get(key)
            append(clock() - start)
    elif op == "get_renew":
        for key in keys:
            start = clock()
            await store.get(key, expires_in)
            append(clock() - start)
    elif op == "exists":
        for key in keys:
            start = clock()
            await store.exists(key)
            append(clock() - start)
    elif op == "delete":
        for key in keys:
            start = clock()
            await store.delete(key)
            append(clock() - start)
    else:  # pragma: no cover
        raise ValueError(op)
    return out


async def _check_present(store: KVStore, keys: Sequence[str], expected: bytes) -> int:
    """How many of ``keys`` do not read back as ``expected`` (must be 0: else the figures lie)."""
    missing = 0
    for key in keys[:3]:
        if await store.get(key) != expected:
            missing += 1
    return missing


async def sequential(
    contenders: Sequence[Contender],
    *,
    sizes: Sequence[int],
    batch: int,
    rounds: int,
    expires_in: int,
    ops: Sequence[str] = OPS,
    keys: Sequence[str] | None = None,
) -> Latencies:
    """Median/p99 material for every (contender, op, size), interleaved in ``rounds`` rounds."""
    result = Latencies()
    values = {size: os.urandom(size) for size in sizes}
    # the keys read, renewed and overwritten: present in every contender, one set per size
    live = {size: list(keys[:batch]) if keys else session_keys(batch) for size in sizes}
    active = list(contenders)
    for contender in contenders:
        result.misses[contender.name] = 0
        try:
            for size in sizes:
                for key in live[size]:
                    await contender.store.set(f"{key}{size}", values[size], expires_in)
        except Exception as error:
            result.errors[contender.name] = f"{type(error).__name__}: {error}"
            active.remove(contender)
    # long-lived objects out of the collector's way: the collection before each batch stays cheap
    gc.collect()
    gc.freeze()
    try:
        await _rounds(result, active, ops, sizes, values, live, batch, rounds, expires_in)
    finally:
        gc.unfreeze()
    return result


async def _rounds(
    result: Latencies,
    active: Sequence[Contender],
    ops: Sequence[str],
    sizes: Sequence[int],
    values: dict[int, bytes],
    live: dict[int, list[str]],
    batch: int,
    rounds: int,
    expires_in: int,
) -> None:
    for round_no in range(rounds + 1):
        for op in ops:
            for size in sizes:
                value = values[size]
                for contender in _rotated(active, round_no + ops.index(op)):
                    check_stop()
                    if contender.name in result.errors:
                        continue
                    try:
                        await _cell(
                            result, contender, op, size, value, live[size], batch, expires_in, round_no
                        )
                        if op in ("get", "get_renew", "exists") and round_no in (0, rounds):
                            keys_now = [f"{key}{size}" for key in live[size]]
                            result.misses[contender.name] += await _check_present(
                                contender.store, keys_now, value
                            )
                    except Exception as error:
                        result.errors[contender.name] = f"{type(error).__name__}: {error}"


async def _cell(
    result: Latencies,
    contender: Contender,
    op: str,
    size: int,
    value: bytes,
    live: Sequence[str],
    batch: int,
    expires_in: int,
    round_no: int,
) -> None:
    store = contender.store
    if op == "delete":
        # delete rows that exist (a miss would skip the write): set them first, untimed
        batch_keys = session_keys(batch, "d")
        for key in batch_keys:
            await store.set(key, value, expires_in)
    else:
        batch_keys = [f"{key}{size}" for key in live]
    gc.collect()
    latencies = await _timed(store, op, batch_keys, value, expires_in)
    if round_no:
        result.samples.setdefault((contender.name, op, size), []).extend(latencies)


@dataclass
class ConcurrentResult:
    """Operations per second per (contender, size, tasks), over all rounds; and errors seen."""

    ops_per_s: dict[tuple[str, int, int], float] = field(default_factory=dict)
    # CPU time of this process (all threads) per second of the run: near 1.0 = the client is the
    # bottleneck (one core of Python), well below = waiting on the server
    client_cpu: dict[tuple[str, int, int], float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _schedule(length: int, keys: int, seed: int) -> list[tuple[int, int]]:
    """The mix as (operation, key index): 0 = get with renewal (70%), 1 = set (25%), 2 = delete (5%)."""
    rng = random.Random(seed)
    ops = rng.choices((0, 1, 2), weights=(70, 25, 5), k=length)
    return [(op, rng.randrange(keys)) for op in ops]


async def _mix_worker(
    store: KVStore,
    schedule: Sequence[tuple[int, int]],
    start: int,
    keys: Sequence[str],
    value: bytes,
    expires_in: int,
    deadline: float,
) -> int:
    done = 0
    position = start
    length = len(schedule)
    clock = time.perf_counter
    stop = _stop
    while clock() < deadline and not stop[0]:
        op, index = schedule[position]
        position = position + 1 if position + 1 < length else 0
        if op == 0:
            await store.get(keys[index], expires_in)
        elif op == 1:
            await store.set(keys[index], value, expires_in)
        else:
            await store.delete(keys[index])
        done += 1
    return done


async def _mix(
    store: KVStore, tasks: int, seconds: float, keys: Sequence[str], value: bytes, expires_in: int
) -> tuple[int, float, float]:
    """Run the mix; return (operations done, seconds, client CPU seconds)."""
    schedule = _schedule(20_000, len(keys), seed=4)
    step = len(schedule) // max(tasks, 1)
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    counts = await asyncio.gather(
        *(_mix_worker(store, schedule, i * step, keys, value, expires_in, deadline) for i in range(tasks))
    )
    return sum(counts), time.perf_counter() - started, time.process_time() - cpu


async def concurrent(
    contenders: Sequence[Contender],
    *,
    sizes: Sequence[int],
    tasks: Sequence[int],
    seconds: float,
    rounds: int,
    keys: int,
    expires_in: int,
) -> ConcurrentResult:
    """Throughput of the session mix, per contender, size and number of tasks."""
    result = ConcurrentResult()
    key_list = session_keys(keys, "c")
    values = {size: os.urandom(size) for size in sizes}
    totals: dict[tuple[str, int, int], tuple[int, float, float]] = {}
    active = list(contenders)
    for size in sizes:
        value = values[size]
        for contender in list(active):
            check_stop()
            try:
                for key in key_list:
                    await contender.store.set(key, value, expires_in)
                await _mix(
                    contender.store, max(tasks), min(seconds, 0.3), key_list, value, expires_in
                )  # warm-up
            except Exception as error:
                result.errors[contender.name] = f"{type(error).__name__}: {error}"
                active.remove(contender)
        gc.collect()
        gc.freeze()
        try:
            await _mix_rounds(
                result, totals, active, size, value, tasks, seconds, rounds, key_list, expires_in
            )
        finally:
            gc.unfreeze()
    for cell, (done, elapsed, cpu) in totals.items():
        if cell[0] not in result.errors:
            result.ops_per_s[cell] = done / elapsed if elapsed else 0.0
            result.client_cpu[cell] = cpu / elapsed if elapsed else 0.0
    return result


async def _mix_rounds(
    result: ConcurrentResult,
    totals: dict[tuple[str, int, int], tuple[int, float, float]],
    active: Sequence[Contender],
    size: int,
    value: bytes,
    tasks: Sequence[int],
    seconds: float,
    rounds: int,
    key_list: Sequence[str],
    expires_in: int,
) -> None:
    for round_no in range(rounds):
        for n_tasks in tasks:
            for contender in _rotated(active, round_no):
                check_stop()
                if contender.name in result.errors:
                    continue
                gc.collect()
                try:
                    done, elapsed, cpu = await _mix(
                        contender.store, n_tasks, seconds, key_list, value, expires_in
                    )
                except Exception as error:
                    result.errors[contender.name] = f"{type(error).__name__}: {error}"
                    continue
                cell = (contender.name, size, n_tasks)
                previous = totals.get(cell, (0, 0.0, 0.0))
                totals[cell] = (previous[0] + done, previous[1] + elapsed, previous[2] + cpu)
