"""``python -m bench``: run the benchmark and print its page; a full run (no ``--quick``) also rewrites
``docs/benchmarks.md`` and ``docs/benchmarks.png``. The exit status is 0 whatever the figures say."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from . import contenders as c
from . import report
from .workload import concurrent, run_scale, sequential, why

REPO = Path(__file__).resolve().parent.parent
FOREIGN_LIMIT = 0.1  # cores used by other processes on average, above which the page says so
QUICK = {"batch": 20, "rounds": 3, "seconds": 0.4, "conc_rounds": 1, "keys": 200, "rows": (1_000, 20_000)}
QUICK |= {"scale_keys": 32, "scale_rounds": 3}
PACKAGES = "sqlsession SQLAlchemy litestar aiosqlite asyncpg psycopg psycopg-binary asyncmy sqlspec "
PACKAGES += "advanced-alchemy redis matplotlib"
OUTPUTS = ("--json", "--note", "--docs-dir")  # where the results go: not in the command the page shows
SERVER_PROCESSES = ("postgres", "mariadbd", "mysqld", "redis-server")
SHOW = {  # the server settings the page shows
    "PostgreSQL": "SHOW {}|shared_buffers synchronous_commit max_connections",
    "MariaDB/MySQL": "SHOW VARIABLES LIKE '{}'|innodb_buffer_pool_size innodb_flush_log_at_trx_commit",
}


def _log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _list(cast: Any) -> Any:
    return lambda text: tuple(cast(part.strip().replace("_", "")) for part in text.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    add, dialects, ints = parser.add_argument, c.ALL_DIALECTS, _list(int)
    add("--quick", action="store_true", help="tiny counts, for a check that it runs")
    add("--dialects", type=_list(str), default=dialects, help=f"of {','.join(dialects)}")
    add("--sizes", type=ints, help="value sizes in bytes (default 512,16384)")
    add("--batch", type=int, help="calls per contender, operation and round")
    add("--rounds", type=int, help="measured rounds of the sequential shape")
    add("--tasks", type=ints, help="tasks of the concurrent shape (default 1,32)")
    add("--seconds", type=float, help="seconds per contender per concurrent round")
    add("--conc-rounds", type=int, help="rounds of the concurrent shape")
    add("--keys", type=int, help="keys of the concurrent mix")
    add("--rows", type=ints, help="table sizes of the scale part (default 1000,2000000); 0 skips it")
    add("--docs-dir", type=Path, help="write benchmarks.md and .png here (default of a full run: docs/)")
    add("--json", type=Path, help="also write the raw results as JSON here")
    add("--note", default="", help="a note for the page (e.g. what else ran on the machine)")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.dialects if name not in dialects]:
        parser.error(f"unknown: {', '.join(unknown)} (known: {', '.join(dialects)})")
    return args


def _sh(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    lines = [line.split(":", 1) for line in _sh("lscpu").splitlines() if ":" in line]
    lscpu = {name.strip(): value.strip() for name, value in lines}
    memory = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) / 1024 / 1024
    out = {"cpu": lscpu.get("Model name", platform.processor()), "nproc": _sh("nproc") or str(os.cpu_count())}
    out |= {"cores_per_socket": lscpu.get("Core(s) per socket", "?"), "memory_gib": round(memory, 1)}
    out |= {"threads_per_core": lscpu.get("Thread(s) per core", "?"), "kernel": platform.release()}
    out |= {"hypervisor": lscpu.get("Hypervisor vendor", ""), "sqlite": sqlite3.sqlite_version}
    out["os"] = _sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME")
    return out | {"python": sys.version.split()[0]}


def busy_processes() -> dict[str, Any]:
    """Load average and other busy processes: was the machine quiet?"""
    ps = _sh("ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers").splitlines()[:12]
    rows = [line.split(None, 2) for line in ps]
    busy = [f"{comm} ({cpu}% CPU)" for pid, cpu, comm in rows if int(pid) != os.getpid() and float(cpu) >= 5]
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "busy": busy}


def cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far: the whole machine (busy), this process, and the database servers."""
    tick, servers = os.sysconf("SC_CLK_TCK"), 0.0
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().startswith(SERVER_PROCESSES):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                servers += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    busy, own = (user + nice + system + irq + softirq) / tick, os.times()
    return {"busy": busy, "own": own.user + own.system, "servers": servers, "wall": time.monotonic()}


async def servers(settings: c.Settings) -> dict[str, str]:
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


async def _group(dialect: str, s: c.Settings) -> dict[str, Any]:
    """Every contender of one dialect, interleaved: the sequential shape, then the concurrent one."""
    if (reason := c.server_reason(dialect)) is not None:
        _log(f"{dialect}: server unreachable: {reason}")
        return {"available": False, "reason": f"server unreachable: {reason}"}
    infos: dict[str, dict[str, str]] = {}
    group, opened = {"available": True, "contenders": infos}, []
    try:
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
    finally:
        for contender in opened:
            with contextlib.suppress(Exception):  # a failed close() changes no figure
                await contender.close()
        await c.drop_tables()
    for name, info in infos.items():
        if info["status"] != "ok":
            _log(f"{dialect}: {name} {info['status']}: {info['detail']}")
    return group


async def run(s: c.Settings, command: str) -> dict[str, Any]:
    """Everything one run measures, as a JSON-ready dict."""
    started, cpu_before, scale = time.perf_counter(), cpu_snapshot(), {}
    revision = _sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD") or "?"
    if _sh("git", "-C", str(REPO), "status", "--porcelain", "--", "sqlsession"):
        revision += " + uncommitted changes in sqlsession/"
    meta = {"command": command, "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    meta |= {"machine": machine(), "packages": {name: c.version_of(name) for name in PACKAGES.split()}}
    meta |= {"revision": revision, "load_before": busy_processes(), "servers": await servers(s)}
    groups = {dialect: await _group(dialect, s) for dialect in s.dialects}
    results = {"meta": meta, "settings": dataclasses.asdict(s), "groups": groups}
    if s.rows and "sqlsession" in s.contenders:
        results["scale"] = scale
    for dialect in [d for d in s.dialects if groups[d]["available"]] if "scale" in results else ():
        _log(f"{dialect}: scale part, rows {', '.join(f'{n:,}' for n in s.rows)}")
        try:
            scale[dialect] = await run_scale(dialect, s, _log)
        except Exception as error:
            _log(f"{dialect}: scale part failed: {why(error)}")
            scale[dialect] = {"error": why(error)}
        finally:
            await c.drop_tables()
    before, after = cpu_before, cpu_snapshot()
    used = {key: after[key] - before[key] for key in before}  # cores used by others than this and the servers
    meta["foreign_cores"] = max(used["busy"] - used["own"] - used["servers"], 0.0) / max(used["wall"], 1e-9)
    meta |= {"load_after": busy_processes(), "duration_s": time.perf_counter() - started}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given, shown = list(sys.argv[1:] if argv is None else argv), ["python -m bench"]
    for before, arg in zip([None, *given], given, strict=False):  # what changes the figures
        if before not in OUTPUTS and not arg.startswith(OUTPUTS):
            shown.append(arg)
    counts = ("sizes", "batch", "rounds", "tasks", "seconds", "conc_rounds", "keys", "rows")
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    values |= {name: getattr(args, name) for name in counts if getattr(args, name) is not None}
    values["rows"] = tuple(n for n in values.get("rows", c.Settings.rows) if n)
    workdir = Path(tempfile.mkdtemp(prefix="sqlsession-bench-"))
    try:
        settings = c.Settings(dialects=args.dialects, workdir=workdir, **values)
        _log(f"benchmark: dialects {', '.join(settings.dialects)}; working files in {workdir}")
        results = asyncio.run(run(settings, " ".join(shown)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["meta"] |= {"note": args.note, "foreign_limit": FOREIGN_LIMIT}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    docs_dir, chart = args.docs_dir or (None if args.quick else REPO / "docs"), None
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        problem = report.chart(results, docs_dir / "benchmarks.png")
        chart = None if problem else "benchmarks.png"
        _log(f"no chart: {problem}" if problem else f"wrote {docs_dir / 'benchmarks.png'}")
    print(page := report.markdown(results, chart))
    if docs_dir is not None:
        (docs_dir / "benchmarks.md").write_text(page)
        _log(f"wrote {docs_dir / 'benchmarks.md'}")
    _log(f"done in {results['meta']['duration_s'] / 60:.1f} min")
    return 0
