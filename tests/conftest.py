"""Fixtures: one real server per dialect, a fresh table per test, an injectable clock.

Server URLs come from ``SQLSESSION_TEST_POSTGRES_URL`` and ``SQLSESSION_TEST_MYSQL_URL``
(defaults: the local servers). An unreachable server skips its tests with the reason, unless
``SQLSESSION_REQUIRE_ALL_DIALECTS=1``, which makes it a failure.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sqlsession import SQLStore
from sqlsession._dialects import async_url

from ._servers import _private_postgres_server, private_postgres  # noqa: F401  (registers the fixtures)

POSTGRES_URL = os.environ.get("SQLSESSION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("SQLSESSION_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REQUIRE_ALL = os.environ.get("SQLSESSION_REQUIRE_ALL_DIALECTS") == "1"

# dialect id -> (server URL or None for the embedded SQLite, async driver)
DIALECTS = {
    "sqlite": (None, "sqlite+aiosqlite"),
    "asyncpg": (POSTGRES_URL, "postgresql+asyncpg"),
    "psycopg": (POSTGRES_URL, "postgresql+psycopg"),
    "asyncmy": (MYSQL_URL, "mysql+asyncmy"),
}


def _reachable(url: str) -> str | None:
    """``None`` when the server answers on its TCP port, else why not."""
    parsed = make_url(url)
    host, port = parsed.host or "127.0.0.1", parsed.port or {"postgresql": 5432}.get(parsed.drivername, 3306)
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as error:
        return f"{parsed.drivername} server at {host}:{port} is unreachable: {error}"


def dialect_url(dialect: str, tmp_path: Path) -> str:
    """The async URL for ``dialect``; skips (or fails, in CI) when its server is down."""
    server, driver = DIALECTS[dialect]
    if server is None:
        return f"{driver}:///{tmp_path / 'store.db'}"
    reason = _reachable(server)
    if reason is not None:
        if REQUIRE_ALL:
            pytest.fail(f"SQLSESSION_REQUIRE_ALL_DIALECTS=1 but {reason}")
        pytest.skip(reason)
    return make_url(server).set(drivername=driver).render_as_string(hide_password=False)


def unique_table() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@dataclass
class Clock:
    """A clock the test moves by hand: expiry without sleeping."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture(params=list(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Behaviour that does not depend on the database (argument checks, what Python computes before or
# after the SQL) runs once: on SQLite, on an engine the store owns. Behaviour that depends on the
# SQL, the driver or the server runs on every dialect.
sqlite_only = pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
owned_only = pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)


@pytest.fixture
def url(dialect: str, tmp_path: Path) -> str:
    return dialect_url(dialect, tmp_path)


async def create_table(store: SQLStore) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(store.table.metadata.create_all)


async def drop_table(store: SQLStore) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(store.table.metadata.drop_all)


@pytest.fixture(params=["owned", "borrowed"])
def engine_mode(request: pytest.FixtureRequest) -> str:
    """``owned``: ``SQLStore.with_url`` (native driver fast path); ``borrowed``: the caller's engine."""
    return str(request.param)


@pytest.fixture
async def make_store(url: str, clock: Clock, engine_mode: str) -> AsyncIterator[Callable[..., SQLStore]]:
    """Build stores on this test's table (created by the ``store`` fixture), the fixture's way."""
    table = unique_table()
    borrowed: list[AsyncEngine] = []

    def make(**options: object) -> SQLStore:
        options.setdefault("table_name", table)
        options.setdefault("clock", clock)
        if engine_mode == "owned":
            return SQLStore.with_url(url, **options)  # type: ignore[arg-type]
        engine = create_async_engine(async_url(url))
        borrowed.append(engine)
        return SQLStore(engine, **options)  # type: ignore[arg-type]

    yield make
    for engine in borrowed:
        await engine.dispose()


@pytest.fixture
async def store(make_store: Callable[..., SQLStore]) -> AsyncIterator[SQLStore]:
    """A store (namespace ``LITESTAR``) on a fresh table of its own."""
    store = make_store()
    await create_table(store)
    try:
        yield store
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


# -- a run that leaks fails: connections left to the garbage collector, pending tasks destroyed ------

# a coroutine never awaited: a connect (or other I/O) that was started and dropped
_LEAK_SIGNS = ("non-checked-in connection", "Task was destroyed but it is pending", "was never awaited")
# and a connection the pool could not close because it belongs to another event loop, or one that has
# ended (its socket stays open); a killed connection that fails to close (older asyncmy) is no leak
_POOL_CLOSE_FAILED = ("Exception closing connection", "Exception terminating connection")
_leaks: list[str] = []
_current_test = ["outside a test"]


class _LeakLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if any(sign in message for sign in _LEAK_SIGNS) or (
            any(sign in message for sign in _POOL_CLOSE_FAILED) and "loop" in str(error)
        ):
            _leaks.append(f"{_current_test[0]}: {message[:400]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> object:
    _current_test[0] = item.nodeid
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("asyncio").addHandler(_LeakLog())
    logging.getLogger("sqlalchemy.pool").addHandler(_LeakLog())


def pytest_warning_recorded(warning_message: warnings.WarningMessage, nodeid: str) -> None:
    message = str(warning_message.message)
    if any(sign in message for sign in _LEAK_SIGNS):
        _leaks.append(f"{nodeid or 'outside a test'}: {message[:300]}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    _leaks.extend(str(w.message)[:300] for w in caught if any(s in str(w.message) for s in _LEAK_SIGNS))
    if _leaks:
        print(f"\n{len(_leaks)} leaked connection(s) or destroyed pending task(s):", *_leaks, sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
