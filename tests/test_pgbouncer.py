"""The store behind a real PgBouncer in transaction pooling mode (asyncpg and psycopg).

PgBouncer (``PrivatePgBouncer``: started by this module on a free port, stopped at its end) sits in
front of the test PostgreSQL with two server connections that it hands out in turn, while each store
has a pool of four client connections: two statements in a row of one client connection usually run
on two server connections, which is what breaks named prepared statements in production.

The whole behaviour contract of ``test_contract.py`` runs here again, through PgBouncer, on a store
made with ``SQLStore.with_url(..., transaction_pooling=True)`` (``owned``) and on an engine configured
the way the README says (``borrowed``); concurrent operations run on the driver fast path and on the
Core path; and without the option the same set-up fails, which shows that it tests something.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sqlsession import SQLStore, SQLStorePlugin, StoreError
from sqlsession._dialects import TRANSACTION_POOLING_CONNECT_ARGS
from sqlsession.schema import HEAD_REVISION

from . import test_contract
from ._servers import PrivatePgBouncer, private_pgbouncer_for
from ._support import Ran, sqlsession_command, within
from .conftest import POSTGRES_URL, REQUIRE_ALL, Clock, _reachable, create_table, drop_table, unique_table

# the whole contract, collected again in this module, where the fixtures below give it its stores (on
# both engine modes: test_contract.py's module mark that keeps it to one does not come along)
globals().update(
    {name: getattr(test_contract, name) for name in dir(test_contract) if name.startswith("test_")}
)

DRIVERS = ("asyncpg", "psycopg")
# what the README tells the owner of an engine behind a transaction-mode pooler to pass
README_CONNECT_ARGS: dict[str, dict[str, Any]] = {
    "asyncpg": {"statement_cache_size": 0},
    "psycopg": {"prepare_threshold": None},
}
CLIENT_POOL = {"pool_size": 4, "max_overflow": 0}


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[PrivatePgBouncer]:
    """PgBouncer in transaction pooling mode in front of the test PostgreSQL, for this module."""
    reason = _reachable(POSTGRES_URL)
    if reason is not None:
        if REQUIRE_ALL:
            pytest.fail(f"SQLSESSION_REQUIRE_ALL_DIALECTS=1 but {reason}")
        pytest.skip(reason)
    bouncer = private_pgbouncer_for(POSTGRES_URL, pool_mode="transaction", pool_size=2)
    try:
        yield bouncer
    finally:
        bouncer.close()


@pytest.fixture(params=DRIVERS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(dialect: str, pgbouncer: PrivatePgBouncer) -> str:
    return pgbouncer.url(dialect)


def _engine(url: str, dialect: str, *, traced: bool = False) -> AsyncEngine:
    """An application's engine configured for the pooler as the README says; ``traced``: with a
    cursor-execute listener, so that the store runs its statements through Core."""
    engine = create_async_engine(url, connect_args=README_CONNECT_ARGS[dialect], **CLIENT_POOL)
    if traced:
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *_: None)
    return engine


@pytest.fixture
async def make_store(
    url: str, dialect: str, clock: Clock, engine_mode: str
) -> AsyncIterator[Callable[..., SQLStore]]:
    """``test_contract``'s stores, through PgBouncer: ``owned`` with ``transaction_pooling=True``,
    ``borrowed`` on an engine configured as the README says."""
    table = unique_table()
    borrowed: list[AsyncEngine] = []

    def make(**options: Any) -> SQLStore:
        options.setdefault("table_name", table)
        options.setdefault("clock", clock)
        if engine_mode == "owned":
            return SQLStore.with_url(url, transaction_pooling=True, engine_options=CLIENT_POOL, **options)
        engine = _engine(url, dialect)
        borrowed.append(engine)
        return SQLStore(engine, **options)

    yield make
    for engine in borrowed:
        await engine.dispose()


def test_readme_connect_args_are_what_the_option_sets() -> None:
    assert TRANSACTION_POOLING_CONNECT_ARGS == README_CONNECT_ARGS


# -- concurrency: where named prepared statements break -------------------------------------------


async def _mixed_load(store: SQLStore, tasks: int = 8, rounds: int = 12) -> list[Exception]:
    """Every operation, from ``tasks`` tasks at once, each on keys of its own; the failures, errors
    and wrong results alike (a statement run under another's name returns another's columns)."""
    failures: list[Exception] = []

    async def worker(task: int) -> None:
        child = store.with_namespace(f"task-{task}")
        for turn in range(rounds):
            key = f"k{turn % 3}"
            try:
                await child.set(key, f"{task}/{turn}", expires_in=100)
                assert await child.get(key) == f"{task}/{turn}".encode()
                assert await child.get(key, renew_for=200) == f"{task}/{turn}".encode()
                assert await child.exists(key) is True
                assert await child.expires_in(key) == 200
                await child.set("gone", b"x", expires_in=-1)
                assert await child.delete_expired() == 1
                await child.delete(key)
                assert await child.get(key) is None
                await child.set("other", b"y")
                await child.delete_all()
                assert await child.exists("other") is False
            except Exception as error:
                failures.append(error)

    await asyncio.gather(*(worker(task) for task in range(tasks)))
    return failures


@pytest.mark.parametrize("path", ["owned", "borrowed", "borrowed-core"])
@within(120)
async def test_concurrent_operations_through_transaction_pooling_all_succeed(
    url: str, dialect: str, path: str
) -> None:
    # the store's driver fast path (owned, borrowed) and Core (a traced engine) alike
    table = unique_table()
    if path == "owned":
        store = SQLStore.with_url(url, transaction_pooling=True, engine_options=CLIENT_POOL, table_name=table)
    else:
        store = SQLStore(_engine(url, dialect, traced=path == "borrowed-core"), table_name=table)
    await create_table(store)
    try:
        assert await _mixed_load(store) == []
    finally:
        await drop_table(store)
        await store.close()
        if path != "owned":
            await store.engine.dispose()


@pytest.mark.parametrize(
    ("driver", "engine_options"),
    [
        pytest.param("asyncpg", {}, id="asyncpg"),
        pytest.param("psycopg", {}, id="psycopg"),
        # SQLAlchemy's documented work-around for PgBouncer, unique statement names, does not help an
        # autocommitted statement: it is prepared and run in two round trips, which the pooler may send
        # to two server connections
        pytest.param(
            "asyncpg",
            {"connect_args": {"prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__"}},
            id="asyncpg-unique-names",
        ),
    ],
)
@within(120)
async def test_without_the_option_named_prepared_statements_break(
    pgbouncer: PrivatePgBouncer, driver: str, engine_options: dict[str, Any]
) -> None:
    # the failure this module guards against, reproduced: without it these tests would prove nothing
    engine = create_async_engine(pgbouncer.url(driver), **CLIENT_POOL, **engine_options)
    if engine_options:  # through Core, where SQLAlchemy's prepared statements are used
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *_: None)
    store = SQLStore(engine, table_name=unique_table())
    await create_table(store)
    try:
        failures = await _mixed_load(store)
    finally:
        await drop_table(store)
        await engine.dispose()
    assert failures, "every operation succeeded: PgBouncer did not move statements between server connections"
    assert any(isinstance(f, StoreError) and "prepared statement" in str(f) for f in failures), failures


# -- the option itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("made_by", ["with_url", "plugin"])
@pytest.mark.parametrize("dialect", DRIVERS)
async def test_option_configures_each_new_connection_over_given_connect_args(
    dialect: str, made_by: str
) -> None:
    # on the machine's server directly: what each driver's connection ends up with
    reason = _reachable(POSTGRES_URL)
    if reason is not None:
        if REQUIRE_ALL:
            pytest.fail(f"SQLSESSION_REQUIRE_ALL_DIALECTS=1 but {reason}")
        pytest.skip(reason)
    url = make_url(POSTGRES_URL).set(drivername=f"postgresql+{dialect}")
    given = {"asyncpg": {"statement_cache_size": 500}, "psycopg": {"prepare_threshold": 2}}[dialect]
    for pooling, expected in ((False, given), (True, README_CONNECT_ARGS[dialect])):
        options: dict[str, Any] = {"engine_options": {"connect_args": given}, "transaction_pooling": pooling}
        if made_by == "plugin":
            store = SQLStorePlugin(url, cleanup_interval=None, **options).store
        else:
            store = SQLStore.with_url(url, **options)
        try:
            async with store.engine.connect() as conn:
                driver_connection = (await conn.get_raw_connection()).driver_connection
                if dialect == "asyncpg":
                    setting = {"statement_cache_size": await _asyncpg_caches_statements(driver_connection)}
                    expected = {"statement_cache_size": expected["statement_cache_size"] > 0}
                else:
                    setting = {"prepare_threshold": driver_connection.prepare_threshold}
            assert setting == expected, f"transaction_pooling={pooling}"
        finally:
            await store.close()


async def _asyncpg_caches_statements(connection: Any) -> bool:
    """Whether asyncpg's statement cache is on, as the server sees it: a cached query is prepared
    under a name (listed in ``pg_prepared_statements``), an uncached one as the unnamed statement."""
    query = f"SELECT {uuid.uuid4().int % 10**9} AS probe"
    await connection.fetchval(query)
    listed = "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1"
    return bool(await connection.fetchval(listed, query))


async def test_option_changes_nothing_on_drivers_without_server_side_prepared_statements(
    tmp_path: Path,
) -> None:
    store = SQLStore.with_url(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", transaction_pooling=True)
    await create_table(store)
    try:
        await store.set("k", b"v")
        assert await store.get("k") == b"v"
    finally:
        await store.close()


async def test_plugin_refuses_the_option_with_an_engine_of_yours() -> None:
    engine = create_async_engine("postgresql+psycopg://app@127.0.0.1/app")
    try:
        with pytest.raises(ValueError, match="transaction_pooling"):
            SQLStorePlugin(engine=engine, transaction_pooling=True)
    finally:
        await engine.dispose()


def test_commands_run_through_the_pooler_with_the_option(url: str) -> None:
    table = unique_table()
    where = ["--url", url, "--table", table, "--transaction-pooling"]

    def run(*args: str) -> Ran:
        return sqlsession_command(*args, *where)

    upgraded = run("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        for _ in range(3):  # several statements, each maybe on another server connection
            current = run("current")
            assert f"{table}: {HEAD_REVISION} (head)" in current.stdout, current.stderr
            stats = run("stats")
            assert f"table {table}: 0 rows, 0 expired" in stats.stdout, stats.stderr
    finally:
        dropped = run("downgrade", "--yes")
    assert dropped.returncode == 0, dropped.stderr
