"""``python -m bench``: run the benchmark and print its page; a full run (no ``--quick``) also rewrites
``docs/benchmarks.md`` and ``docs/benchmarks.png``. The exit status is 0 whatever the figures say.

The shapes of a run, each interleaved over the contenders so that machine drift hits them alike:
:func:`sequential` (one call at a time), :func:`concurrent` (a session mix) and :func:`run_scale`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession._keys import encode_namespace

from . import contenders as c
from . import report
from .contenders import DAY, MICROSECONDS, OPS, Contender, Settings

Cells = dict[str, dict[str, dict[str, Any]]]  # contender -> operation or size -> size or tasks -> figure


def session_keys(count: int, tag: str = "") -> list[str]:
    """Keys shaped like Litestar's session IDs (64 hex characters)."""
    return [(tag + os.urandom(32).hex())[:64] for _ in range(count)]


def latency_summary(samples: Sequence[int]) -> dict[str, float]:
    """Median and p99 in microseconds, and the sample count."""
    ordered, nan = sorted(samples), float("nan")
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000 if ordered else nan
    median = statistics.median(ordered) / 1000 if ordered else nan
    return {"median_us": median, "p99_us": p99, "n": float(len(ordered))}


def op_call(store: Any, op: str, value: bytes, expires_in: int) -> Callable[[str], Awaitable[Any]]:
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
    """Write ``keys`` (then the warm-up mix ``mix``) to the contenders not failed; return those still not."""
    for contender in [x for x in contenders if x.name not in errors]:
        try:
            for key in keys:
                await contender.store.set(key, value, expires_in)
            if mix:
                await _mix(contender.store, *mix)
        except Exception as error:
            errors[contender.name] = why(error)
    return [x for x in contenders if x.name not in errors]


async def sequential(
    contenders: Sequence[Contender], sizes: Any, batch: int, rounds: int, expires_in: int, keys: Any = ()
) -> tuple[Cells, dict[str, int], dict[str, str]]:
    """Median/p99 of every (contender, op, size), interleaved in ``rounds`` rounds; per contender the
    reads that missed a key that must be there (must be 0: else the figures lie); errors."""
    samples, misses, errors, clock = {}, {x.name: 0 for x in contenders}, {}, time.perf_counter_ns
    values = {size: os.urandom(size) for size in sizes}
    # the keys read, renewed and overwritten: present in every contender, one set per size
    live = {size: [f"{key}{size}" for key in (keys[:batch] or session_keys(batch))] for size in sizes}
    for size in sizes:
        active = await _write(contenders, live[size], values[size], expires_in, errors)
    gc.collect()  # long-lived objects out of the collector's way: the collections below stay cheap
    gc.freeze()
    try:
        for round_no, (op_no, op), size in itertools.product(range(rounds + 1), enumerate(OPS), sizes):
            for contender in [x for x in _rotated(active, round_no + op_no) if x.name not in errors]:
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
    rng = random.Random(4)  # (operation, key): 0 = get with renewal, 1 = set, 2 = delete (70, 25, 5%)
    schedule = [(op, rng.randrange(len(keys))) for op in rng.choices((0, 1, 2), (70, 25, 5), k=20_000)]
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


async def concurrent(contenders: list[Contender], s: Settings, errors: dict[str, str]) -> tuple[Cells, Cells]:
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
                for x in [x for x in _rotated(active, round_no) if x.name not in errors]:
                    gc.collect()
                    try:
                        done = await _mix(x.store, tasks, s.seconds, keys, value, s.expires_in)
                        total = totals.setdefault((x.name, str(size), str(tasks)), [0, 0.0, 0.0])
                        total[:] = [a + b for a, b in zip(total, done, strict=True)]
                    except Exception as error:
                        errors[x.name] = why(error)
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
    fields = {"table": table, "ns": encode_namespace(store.namespace_path).hex(), "expires": expires_at}
    fields["value"] = os.urandom(value_bytes).hex()  # only literals we made: hex and integers
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


async def run_scale(dialect: str, s: Settings) -> dict[str, Any]:
    """``SQLStore.with_url`` alone on large tables of a dialect, then ``delete_expired()`` on the largest."""
    shift, sizes, keys = [0.0], sorted(set(s.rows)), session_keys(s.scale_keys, "w")
    out: dict[str, Any] = {"rows": {}, "value_bytes": 512, "fill_value_bytes": s.fill_value_bytes}
    clock = lambda: time.time() + shift[0]  # noqa: E731
    async with c.dropping() as stores:
        for n in sizes:
            stores.append(await c.open_contender("sqlsession", dialect, s, f"scale_{n}", clock=clock))
            stores[-1].name, fill = f"{n:,} rows", max(n - s.scale_keys, 0)
            # the largest table: half its rows expire before delete_expired() runs, half stay live
            live, seconds = fill // 2 if n == sizes[-1] and len(sizes) > 1 else 0, 0.0
            for rows, days in ((fill - live, 1), (live, 30)):
                expires_at = round((time.time() + days * DAY) * MICROSECONDS)
                took, count = await bulk_load(stores[-1].store, rows, s.fill_value_bytes, expires_at)
                seconds += took
            _log(f"  {dialect}: loaded {fill:,} rows ({live:,} of them live at cleanup) in {seconds:.1f} s")
            out["rows"][str(n)] = {"filled": fill, "expiring": fill - live, "live": live, "load_s": seconds}
            out["rows"][str(n)]["table_rows_after_load"] = count
        cells, misses, errors = await sequential(stores, (512,), s.scale_keys, s.scale_rounds, 7 * DAY, keys)
        for n, name in [(n, x.name) for n, x in zip(sizes, stores, strict=True)]:
            ops = {op: cell["512"] for op, cell in cells.get(name, {}).items()}
            out["rows"][str(n)] |= {"ops": ops, "misses": misses[name]}
            out["rows"][str(n)] |= {"error": errors[name]} if name in errors else {}
        big, read_keys = stores[-1].store, [f"{key}512" for key in keys]
        _, _, baseline = await _gets_while(big, read_keys, s, lambda: asyncio.sleep(2.0))
        shift[0] = 2 * DAY
        _log(f"  {dialect}: delete_expired() on {sizes[-1]:,} rows ...")
        deleted, seconds, during = await _gets_while(big, read_keys, s, big.delete_expired)
        out["delete_expired"] = {"rows": sizes[-1], "deleted": deleted, "seconds": seconds}
        out["delete_expired"] |= {"get_tasks": s.delete_get_tasks, "get_rate": s.delete_get_rate}
        out["delete_expired"] |= {"baseline": latency_summary(baseline), "during": latency_summary(during)}
        out["delete_expired"]["working_keys_still_readable"] = await big.exists(read_keys[0])
        _log(f"  {dialect}: deleted {deleted:,} rows in {seconds:.1f} s")
    return out


REPO = Path(__file__).resolve().parent.parent
FOREIGN_LIMIT = 0.1  # cores used by other processes on average, above which the page says so
QUICK = {"batch": 20, "rounds": 3, "seconds": 0.4, "conc_rounds": 1, "keys": 200, "rows": (1_000, 20_000)}
QUICK |= {"scale_keys": 32, "scale_rounds": 3}
PACKAGES = "sqlsession SQLAlchemy litestar aiosqlite asyncpg psycopg psycopg-binary asyncmy sqlspec "
PACKAGES += "advanced-alchemy redis matplotlib"
COUNTS = ("sizes", "batch", "rounds", "tasks", "seconds", "conc_rounds", "keys", "rows")  # of Settings
OUTPUTS = ("--json", "--note", "--docs-dir")  # where the results go: not in the command the page shows
SERVER_PROCESSES = ("postgres", "mariadbd", "mysqld", "redis-server")
# the server settings the page shows: the query, then the settings
SHOW = {"PostgreSQL": "SHOW {}|shared_buffers synchronous_commit max_connections"}
SHOW["MariaDB/MySQL"] = "SHOW VARIABLES LIKE '{}'|innodb_buffer_pool_size innodb_flush_log_at_trx_commit"


def _log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _list(cast: Any) -> Any:
    return lambda text: tuple(cast(part.strip().replace("_", "")) for part in text.split(",") if part.strip())


def _sh(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    return ""


def machine() -> dict[str, Any]:
    lscpu = dict(map(str.strip, line.split(":", 1)) for line in _sh("lscpu").splitlines() if ":" in line)
    out = {"cpu": lscpu.get("Model name", platform.processor()), "nproc": _sh("nproc") or str(os.cpu_count())}
    out |= {"cores_per_socket": lscpu.get("Core(s) per socket", "?"), "kernel": platform.release()}
    out |= {"threads_per_core": lscpu.get("Thread(s) per core", "?"), "sqlite": sqlite3.sqlite_version}
    out |= {"hypervisor": lscpu.get("Hypervisor vendor", ""), "python": sys.version.split()[0]}
    out["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    return out | {"os": _sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME")}


def machine_load() -> tuple[dict[str, Any], dict[str, float]]:
    """Was the machine quiet: the load average and other busy processes; and the CPU seconds so far of the
    whole machine (busy), of this process and of the database servers."""
    ps = _sh("ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers").splitlines()[:12]
    rows = [line.split(None, 2) for line in ps]
    busy = [f"{comm} ({cpu}% CPU)" for pid, cpu, comm in rows if int(pid) != os.getpid() and float(cpu) >= 5]
    tick, servers = os.sysconf("SC_CLK_TCK"), 0.0
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and (entry / "comm").read_text().startswith(SERVER_PROCESSES):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                servers += (int(fields[11]) + int(fields[12])) / tick
    total, own = (user + nice + system + irq + softirq) / tick, os.times()
    cpu = {"busy": total, "own": own.user + own.system, "servers": servers, "wall": time.monotonic()}
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "busy": busy}, cpu


async def servers(settings: Settings) -> dict[str, str]:
    """Server versions and settings, asked over the drivers (only those of the selected dialects)."""
    out: dict[str, str] = {}
    for dialect in settings.dialects:
        label = {"asyncpg": "PostgreSQL", "psycopg": "PostgreSQL", "asyncmy": "MariaDB/MySQL"}.get(dialect)
        if label is None or label in out or c.server_reason(dialect) is not None:
            continue
        engine, (query, names) = create_async_engine(c.dialect_url(dialect)), SHOW[label].split("|")
        try:
            async with engine.connect() as conn:
                out[label] = str((await conn.exec_driver_sql("SELECT version()")).scalar_one())
                for name in names.split():
                    out[label] += f"; {name}={(await conn.exec_driver_sql(query.format(name))).all()[0][-1]}"
        except Exception as error:
            out[label] = f"? ({why(error)})"
        await engine.dispose()
    try:
        import redis

        with redis.Redis.from_url(settings.redis_url) as client:
            out["Redis"] = str(client.info("server").get("redis_version", "?"))
    except Exception as error:
        out["Redis"] = f"unavailable ({why(error)})"
    return out


async def _group(dialect: str, s: Settings) -> dict[str, Any]:
    """Every contender of one dialect, interleaved: the sequential shape, then the concurrent one."""
    if (reason := c.server_reason(dialect)) is not None:
        _log(f"{dialect}: server unreachable: {reason}")
        return {"available": False, "reason": f"server unreachable: {reason}"}
    infos: dict[str, dict[str, str]] = {}
    group = {"available": True, "contenders": infos}
    async with c.dropping() as opened:
        for name in s.contenders:
            try:
                opened.append(await c.open_contender(name, dialect, s))
                infos[name] = {"status": "ok", "detail": opened[-1].note}
            except c.Unavailable as error:
                infos[name] = {"status": "unavailable", "detail": str(error)}
            except Exception as error:
                infos[name] = {"status": "error", "detail": why(error)}
        if opened:
            _log(f"{dialect}: sequential shape, {', '.join(contender.name for contender in opened)}")
            seq = await sequential(opened, s.sizes, s.batch, s.rounds, s.expires_in)
            group["sequential"], group["misses"], errors = seq
            _log(f"{dialect}: concurrent shape")
            group["concurrent"], group["client_cpu"] = await concurrent(opened, s, errors)
            infos |= {name: {"status": "error", "detail": message} for name, message in errors.items()}
    for name, info in [(name, info) for name, info in infos.items() if info["status"] != "ok"]:
        _log(f"{dialect}: {name} {info['status']}: {info['detail']}")
    return group


async def run(s: Settings, command: str, note: str) -> dict[str, Any]:
    """Everything one run measures, as a JSON-ready dict."""
    started, (load_before, cpu_before), scale = time.perf_counter(), machine_load(), {}
    revision = _sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD") or "?"
    if _sh("git", "-C", str(REPO), "status", "--porcelain", "--", "sqlsession"):
        revision += " + uncommitted changes in sqlsession/"
    meta = {"command": command, "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    meta |= {"machine": machine(), "packages": {name: c.version_of(name) for name in PACKAGES.split()}}
    meta |= {"revision": revision, "load_before": load_before, "servers": await servers(s)}
    groups = {dialect: await _group(dialect, s) for dialect in s.dialects}
    results = {"meta": meta, "settings": dataclasses.asdict(s), "groups": groups}
    results |= {"scale": scale} if s.rows else {}
    for dialect in [d for d in s.dialects if groups[d]["available"]] if s.rows else ():
        _log(f"{dialect}: scale part, rows {', '.join(f'{n:,}' for n in s.rows)}")
        try:
            scale[dialect] = await run_scale(dialect, s)
        except Exception as error:
            _log(f"{dialect}: scale part failed: {why(error)}")
            scale[dialect] = {"error": why(error)}
    meta["load_after"], cpu_after = machine_load()
    used = {key: cpu_after[key] - cpu_before[key] for key in cpu_before}  # others: not this, not the servers
    meta["foreign_cores"] = max(used["busy"] - used["own"] - used["servers"], 0.0) / max(used["wall"], 1e-9)
    meta |= {"duration_s": time.perf_counter() - started, "note": note, "foreign_limit": FOREIGN_LIMIT}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    add, dialects, ints = parser.add_argument, c.ALL_DIALECTS, _list(int)
    add("--quick", action="store_true", help="tiny counts, for a check that it runs")
    add("--dialects", type=_list(str), default=dialects, help=f"of {','.join(dialects)}")
    for name, default in [(name, getattr(Settings, name)) for name in COUNTS]:  # --rows 0: no scale part
        kind = ints if isinstance(default, tuple) else type(default)
        add("--" + name.replace("_", "-"), type=kind, help=f"default {str(default).strip('()')}")
    add("--docs-dir", type=Path, help="write benchmarks.md and .png here (default of a full run: docs/)")
    add("--json", type=Path, help="also write the raw results as JSON here")
    add("--note", default="", help="a note for the page (e.g. what else ran on the machine)")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.dialects if name not in dialects]:
        parser.error(f"unknown: {', '.join(unknown)} (known: {', '.join(dialects)})")
    given = list(sys.argv[1:] if argv is None else argv)  # the page shows what changes the figures
    shown = [arg for before, arg in zip([None, *given], given, strict=False) if before not in OUTPUTS]
    shown = ["python -m bench", *(arg for arg in shown if not arg.startswith(OUTPUTS))]
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    values |= {name: getattr(args, name) for name in COUNTS if getattr(args, name) is not None}
    values["rows"] = tuple(n for n in values.get("rows", Settings.rows) if n)
    with tempfile.TemporaryDirectory(prefix="sqlsession-bench-", ignore_cleanup_errors=True) as workdir:
        settings = Settings(dialects=args.dialects, workdir=Path(workdir), **values)
        _log(f"benchmark: dialects {', '.join(settings.dialects)}; working files in {workdir}")
        results = asyncio.run(run(settings, " ".join(shown), args.note))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    docs_dir, problem = args.docs_dir or (None if args.quick else REPO / "docs"), "no docs directory"
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        problem = report.chart(results, docs_dir / "benchmarks.png")  # None: drawn
        _log(f"no chart: {problem}" if problem else f"wrote {docs_dir / 'benchmarks.png'}")
    print(page := report.markdown(results, None if problem else "benchmarks.png"))
    if docs_dir is not None:
        (docs_dir / "benchmarks.md").write_text(page)
        _log(f"wrote {docs_dir / 'benchmarks.md'}")
    _log(f"done in {results['meta']['duration_s'] / 60:.1f} min")
    return 0
