"""The machine, the packages and the servers a run measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .settings import Settings, dialect_url, server_reason

__all__ = ("PACKAGES", "busy_processes", "cpu_snapshot", "foreign_load", "machine", "packages", "servers")

PACKAGES: tuple[str, ...] = (
    "sqlsession",
    "SQLAlchemy",
    "litestar",
    "aiosqlite",
    "asyncpg",
    "psycopg",
    "psycopg-binary",
    "asyncmy",
    "sqlspec",
    "advanced-alchemy",
    "redis",
    "matplotlib",
)


def _run(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    lscpu = _run("lscpu")
    fields = {}
    for line in lscpu.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu": fields.get("Model name", platform.processor()),
        "nproc": _run("nproc") or str(os.cpu_count()),
        "cores_per_socket": fields.get("Core(s) per socket", "?"),
        "threads_per_core": fields.get("Thread(s) per core", "?"),
        "hypervisor": fields.get("Hypervisor vendor", ""),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _run("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }


def busy_processes() -> dict[str, Any]:
    """Load average and other busy processes: was the machine quiet?"""
    load = os.getloadavg()
    me = os.getpid()
    busy = []
    for line in _run("ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers").splitlines()[:12]:
        parts = line.split(None, 2)
        if len(parts) == 3 and int(parts[0]) != me and float(parts[1]) >= 5.0:
            busy.append(f"{parts[2]} ({parts[1]}% CPU)")
    return {"loadavg": [round(x, 2) for x in load], "busy": busy}


_SERVERS = ("postgres", "mariadbd", "mysqld", "redis-server")


def cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far: the whole machine (busy), this process, and the database servers."""
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0.0
    stat = Path("/proc/stat")
    if stat.exists():
        fields = [int(x) for x in stat.read_text().splitlines()[0].split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / tick
    servers = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if not comm.startswith(_SERVERS):
                continue
            parts = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            servers += (int(parts[11]) + int(parts[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    own = os.times()
    return {"busy": busy, "own": own.user + own.system, "servers": servers, "wall": time.monotonic()}


def foreign_load(before: dict[str, float], after: dict[str, float]) -> float:
    """Cores used on average by processes other than this one and the database servers."""
    wall = after["wall"] - before["wall"]
    if wall <= 0 or not before["busy"]:
        return 0.0
    other = (after["busy"] - before["busy"]) - (after["own"] - before["own"])
    other -= after["servers"] - before["servers"]
    return max(other, 0.0) / wall


def packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_revision(repo: Path) -> str:
    rev = _run("git", "-C", str(repo), "rev-parse", "--short", "HEAD")
    dirty = _run("git", "-C", str(repo), "status", "--porcelain", "--", "sqlsession")
    return f"{rev}{' + uncommitted changes in sqlsession/' if dirty else ''}" if rev else "?"


async def servers(settings: Settings) -> dict[str, str]:
    """Server versions, asked over the drivers (only those of the selected dialects)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    out: dict[str, str] = {}
    wanted = {"asyncpg": "PostgreSQL", "psycopg": "PostgreSQL", "asyncmy": "MariaDB/MySQL"}
    for dialect in settings.dialects:
        label = wanted.get(dialect)
        if label is None or label in out or server_reason(dialect) is not None:
            continue
        engine = create_async_engine(dialect_url(dialect))
        try:
            async with engine.connect() as conn:
                row = (await conn.exec_driver_sql("SELECT version()")).scalar_one()
                out[label] = str(row)
                if label == "PostgreSQL":
                    for setting in ("shared_buffers", "synchronous_commit", "max_connections"):
                        value = (await conn.exec_driver_sql("SHOW " + setting)).scalar_one()
                        out[label] += f"; {setting}={value}"
                else:
                    for setting in ("innodb_buffer_pool_size", "innodb_flush_log_at_trx_commit"):
                        result = await conn.exec_driver_sql("SHOW VARIABLES LIKE '" + setting + "'")
                        for _name, value in result.all():
                            out[label] += f"; {setting}={value}"
        except Exception as error:
            out[label] = f"? ({type(error).__name__}: {error})"
        finally:
            await engine.dispose()
    if "RedisStore" in settings.contenders:
        try:
            import redis.asyncio as aioredis

            client = aioredis.from_url(settings.redis_url)
            try:
                info = await client.info("server")
                out["Redis"] = str(info.get("redis_version", "?"))
            finally:
                await client.aclose()
        except Exception as error:
            out["Redis"] = f"unavailable ({type(error).__name__}: {error})"
    return out
