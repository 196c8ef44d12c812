"""What one run measures: dialects, counts, servers. Built by ``bench.run`` from the command line."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url

__all__ = (
    "ALL_CONTENDERS",
    "ALL_DIALECTS",
    "OPS",
    "Settings",
    "dialect_url",
    "reachable",
)

# dialect id -> (server URL env variable or None for the embedded SQLite, default URL, async driver)
_SERVERS: dict[str, tuple[str | None, str, str]] = {
    "sqlite": (None, "", "sqlite+aiosqlite"),
    "asyncpg": ("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg"),
    "psycopg": ("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg"),
    "asyncmy": ("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test", "mysql+asyncmy"),
}
ALL_DIALECTS: tuple[str, ...] = tuple(_SERVERS)

# column order of every table: the floor first, the main contender second
ALL_CONTENDERS: tuple[str, ...] = (
    "raw",
    "sqlsession",
    "sqlsession-engine",
    "sqlspec",
    "advanced-alchemy",
    "FileStore",
    "RedisStore",
)

# the five operations of the sequential shape
OPS: tuple[str, ...] = ("set", "get", "get_renew", "exists", "delete")

REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Settings:
    """Counts and switches of one run (``--quick`` shrinks them all)."""

    dialects: tuple[str, ...] = ALL_DIALECTS
    contenders: tuple[str, ...] = ALL_CONTENDERS
    sizes: tuple[int, ...] = (512, 16 * 1024)
    # sequential shape: per (contender, operation, size) each round runs ``batch`` calls; round 0 is a
    # warm-up and is discarded, so a cell has ``batch * rounds`` samples. Small batches and many rounds:
    # the contenders alternate every few milliseconds, so a burst of noise hits them all alike
    batch: int = 60
    rounds: int = 20
    # concurrent shape: a session mix (70% get with renew, 25% set, 5% delete) on ``keys`` keys
    tasks: tuple[int, ...] = (1, 32)
    seconds: float = 1.5
    conc_rounds: int = 3
    keys: int = 2000
    expires_in: int = 3600
    # every SQL contender gets at most this many connections (sqlsession: pool_size, max_overflow=0)
    pool_size: int = 10
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
    env, default, driver = _SERVERS[dialect]
    if env is None:
        assert sqlite_path is not None
        return make_url(f"{driver}:///{sqlite_path}")
    return make_url(os.environ.get(env, default)).set(drivername=driver)


def reachable(url: URL | str, default_port: int) -> str | None:
    """``None`` when something answers on the URL's TCP port, else why not."""
    parsed = make_url(url) if isinstance(url, str) else url
    host, port = parsed.host or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as error:
        return f"{host}:{port} does not answer ({error})"


def server_reason(dialect: str) -> str | None:
    """Why ``dialect`` cannot run here, or ``None``."""
    if dialect == "sqlite":
        return None
    url = dialect_url(dialect)
    return reachable(url, 5432 if url.get_backend_name() == "postgresql" else 3306)
