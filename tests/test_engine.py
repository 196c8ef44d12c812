"""Engine ownership, life cycle across event loops, the missing table, concurrency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore, TableMissingError

from ._support import raw_rows, within
from .conftest import Clock, create_table, drop_table, sqlite_only, unique_table


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_owned_store_can_be_entered_and_left_repeatedly(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    await create_table(store)
    try:
        for round_ in range(3):
            async with store as entered:
                assert entered is store
                await store.set("k", str(round_))
                assert await store.get("k") == str(round_).encode()
            # left: the engine was disposed, and the store still works afterwards
            assert await store.get("k") == str(round_).encode()
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_owned_store_works_from_another_event_loop(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    await create_table(store)
    try:
        await store.set("k", b"from the test loop")

        async def elsewhere() -> bytes | None:
            value = await store.get("k")
            await store.set("k2", b"from another loop")
            await store.__aexit__(None, None, None)  # close this loop's connections before it ends
            return value

        assert await asyncio.to_thread(asyncio.run, elsewhere()) == b"from the test loop"
        assert await store.get("k2") == b"from another loop"

        async def enter_and_leave_elsewhere() -> bytes | None:
            async with store:
                return await store.get("k2")

        assert await asyncio.to_thread(asyncio.run, enter_and_leave_elsewhere()) == b"from another loop"
        assert await store.get("k") == b"from the test loop"
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


async def test_borrowed_engine_is_never_disposed_nor_changed(url: str, clock: Clock) -> None:
    engine = create_async_engine(url)
    store = SQLStore(engine, table_name=unique_table(), clock=clock)
    try:
        await create_table(store)
        await store.set("k", b"v", expires_in=10)
        assert await store.get("k", renew_for=20) == b"v"
        assert await store.expires_in("k") == 20
        await store.delete("k")
        assert await store.exists("k") is False
        pool = engine.pool
        async with store:
            pass
        assert engine.pool is pool
        assert store.engine is engine
        # the store's autocommit does not leak into the caller's connections: a rollback still undoes
        async with engine.connect() as conn:
            await conn.execute(text(f"DELETE FROM {store.table.name}"))
        await store.set("k", b"kept")
        async with engine.connect() as conn:
            await conn.execute(text(f"DELETE FROM {store.table.name}"))
            await conn.rollback()
        assert await store.get("k") == b"kept"
        await drop_table(store)
    finally:
        await engine.dispose()


@within(60)
async def test_every_call_on_a_borrowed_engine_commits_what_it_writes(url: str, clock: Clock) -> None:
    # an engine of the application's is not in autocommit: the drivers open transactions by themselves
    engine = create_async_engine(url)
    store = SQLStore(engine, table_name=unique_table(), clock=clock)
    lazy = SQLStore(engine, table_name=store.table.name, clock=clock, renew_threshold=0.5)
    await create_table(store)

    async def committed() -> dict[bytes, int | None]:
        """Value -> expiry of every row, as another connection sees them."""
        return {value: expires_at for _ns, _kh, value, expires_at in await raw_rows(store)}

    try:
        now_us = round(clock.now * 1_000_000)
        await store.set("k", b"v", expires_in=100)
        await store.set("gone", b"g", expires_in=-1)
        await store.with_namespace("child").set("c", b"c")
        assert await committed() == {b"v": now_us + 100_000_000, b"g": now_us - 1_000_000, b"c": None}
        assert await store.get("k", renew_for=200) == b"v"  # the renewal statement (RETURNING, or CAS)
        assert (await committed())[b"v"] == now_us + 200_000_000
        assert await lazy.get("k", renew_for=1000) == b"v"  # a read, then a compare-and-set
        assert (await committed())[b"v"] == now_us + 1000_000_000
        assert await store.delete_expired() == 1
        await store.with_namespace("child").delete_all()
        assert await committed() == {b"v": now_us + 1000_000_000}
        await store.delete("k")
        assert await committed() == {}
        # and reads leave nothing open that would keep the table from being dropped
        assert await store.get("k") is None
        assert await store.exists("k") is False
        assert await store.expires_in("k") is None
        assert (await store.stats()).rows == 0
    finally:
        await drop_table(store)
        await engine.dispose()


@sqlite_only
async def test_children_share_the_engine_and_do_not_dispose_it(store: SQLStore) -> None:
    child = store.with_namespace("child")
    assert child.engine is store.engine
    assert child.table is store.table
    pool = store.engine.pool
    async with child:
        await child.set("k", b"v")
    assert store.engine.pool is pool
    assert await child.get("k") == b"v"


async def test_missing_table_says_to_run_the_migrations(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    calls = {
        "set": lambda: store.set("k", b"v"),
        "get": lambda: store.get("k"),
        "renew": lambda: store.get("k", renew_for=10),
        "exists": lambda: store.exists("k"),
        "expires_in": lambda: store.expires_in("k"),
        "delete": lambda: store.delete("k"),
        "delete_all": store.delete_all,
        "delete_expired": store.delete_expired,
    }
    try:
        for operation, call in calls.items():
            with pytest.raises(TableMissingError, match="python -m sqlsession upgrade") as caught:
                await call()
            assert store.table.name in str(caught.value), operation
    finally:
        await store.__aexit__(None, None, None)


def test_repr_hides_the_password() -> None:
    store = SQLStore.with_url("postgresql+asyncpg://user:s3cret@db.example/app", table_name="t")
    assert "s3cret" not in repr(store)
    assert "db.example" in repr(store)
    assert "s3cret" not in repr(store.with_namespace("x"))


def test_url_without_driver_gets_the_async_default(tmp_path: Path) -> None:
    assert SQLStore.with_url(f"sqlite:///{tmp_path}/x.db").engine.url.drivername == "sqlite+aiosqlite"
    assert SQLStore.with_url("postgresql://u@h/d").engine.url.drivername == "postgresql+asyncpg"
    assert SQLStore.with_url("mysql://u@h/d").engine.url.drivername == "mysql+asyncmy"


async def test_owned_sqlite_engine_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = SQLStore.with_url(f"sqlite:///{tmp_path}/x.db")
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
    finally:
        await store.__aexit__(None, None, None)


@sqlite_only
async def test_engine_options_reach_the_engine(url: str) -> None:
    store = SQLStore.with_url(url, engine_options={"echo": True})
    try:
        assert store.engine.echo is True
    finally:
        await store.__aexit__(None, None, None)


async def test_errors_never_carry_the_values_into_tracebacks(make_store: Callable[..., SQLStore]) -> None:
    import traceback

    store = make_store()  # its table does not exist
    try:
        with pytest.raises(TableMissingError) as caught:
            await store.set("k", ("SECRET-" + "SESSION-DATA").encode())  # not in this source line
        printed = "".join(traceback.format_exception(caught.value))
        assert "python -m sqlsession upgrade" in printed
        assert "SECRET-SESSION-DATA" not in printed
    finally:
        await store.__aexit__(None, None, None)


async def test_owned_engine_on_the_core_path_is_disposed_too(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # echo: SQLAlchemy must see every statement, so the store runs them through Core, not the driver
    store = SQLStore.with_url(url, table_name=unique_table(), engine_options={"echo": True})
    await create_table(store)
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
            await store.set("k", b"v")
        assert any(store.table.name in record.getMessage() for record in caplog.records)  # through Core
        pool = store.engine.pool
        async with store:
            pass
        assert store.engine.pool is not pool  # disposed: the engine made a new pool
        assert await store.get("k") == b"v"
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)
