"""SQLStorePlugin in-process: registration, lifespan, background cleanup, batched delete_expired."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry
from litestar.testing import TestClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import DELETE_BATCH_SIZE, SQLStore, SQLStorePlugin

from ._support import raw_rows
from .conftest import Clock, create_table, drop_table, owned_only, unique_table


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


@get("/remember/{value:str}")
async def remember(request: Request[Any, Any, Any]) -> str:
    value = str(request.path_params["value"])
    await request.app.stores.get("sessions").set("k", value)
    return value


@pytest.fixture
async def plugin_table(url: str) -> AsyncIterator[str]:
    """A fresh table for the plugin's stores on this dialect."""
    table = unique_table()
    store = SQLStore.with_url(url, table_name=table)
    await create_table(store)
    await store.__aexit__(None, None, None)
    yield table
    await drop_table(store)
    await store.__aexit__(None, None, None)


def sqlite_plugin(tmp_path: Path, **options: object) -> SQLStorePlugin:
    return SQLStorePlugin(f"sqlite+aiosqlite:///{tmp_path / 'plugin.db'}", **options)  # type: ignore[arg-type]


def path_of(store: object) -> tuple[str, ...]:
    assert isinstance(store, SQLStore)
    return store.namespace_path


# -- registration -----------------------------------------------------------------------------------


def test_registers_default_stores_when_app_has_none(tmp_path: Path) -> None:
    app = Litestar(route_handlers=[ping], plugins=[sqlite_plugin(tmp_path)])
    for name in ("sessions", "response_cache", "rate_limit"):
        assert path_of(app.stores.get(name)) == ("LITESTAR", name)


def test_keeps_stores_from_a_dict_and_adds_its_own(tmp_path: Path) -> None:
    mine = MemoryStore()
    app = Litestar(route_handlers=[ping], stores={"sessions": mine}, plugins=[sqlite_plugin(tmp_path)])
    assert app.stores.get("sessions") is mine
    assert path_of(app.stores.get("response_cache")) == ("LITESTAR", "response_cache")


def test_keeps_stores_of_a_registry_and_adds_its_own(tmp_path: Path) -> None:
    mine = MemoryStore()
    registry = StoreRegistry({"rate_limit": mine})
    app = Litestar(route_handlers=[ping], stores=registry, plugins=[sqlite_plugin(tmp_path)])
    assert app.stores.get("rate_limit") is mine
    assert path_of(app.stores.get("sessions")) == ("LITESTAR", "sessions")
    assert path_of(app.stores.get("anything_else")) == ("LITESTAR", "anything_else")


def test_other_store_names_become_namespaces_of_the_same_table(tmp_path: Path) -> None:
    plugin = sqlite_plugin(tmp_path, table_name="shared_table")
    app = Litestar(route_handlers=[ping], plugins=[plugin])
    other = app.stores.get("my_feature")
    assert isinstance(other, SQLStore)
    assert other.namespace_path == ("LITESTAR", "my_feature")
    assert other.table.name == "shared_table"
    assert other.engine is plugin.store.engine


def test_keeps_a_registry_default_factory_of_the_app(tmp_path: Path) -> None:
    registry = StoreRegistry(default_factory=lambda name: MemoryStore())
    app = Litestar(route_handlers=[ping], stores=registry, plugins=[sqlite_plugin(tmp_path)])
    assert isinstance(app.stores.get("not_registered"), MemoryStore)
    assert isinstance(app.stores.get("sessions"), SQLStore)


def test_custom_store_names(tmp_path: Path) -> None:
    app = Litestar(route_handlers=[ping], plugins=[sqlite_plugin(tmp_path, store_names=["a", "b", "a"])])
    assert path_of(app.stores.get("a")) == ("LITESTAR", "a")
    assert sqlite_plugin(tmp_path, store_names=["a", "b", "a"]).store_names == ("a", "b")


def test_default_url_is_the_embedded_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plugin = SQLStorePlugin()
    assert plugin.store.engine.url.drivername == "sqlite+aiosqlite"
    assert plugin.store.engine.url.database == "sqlsession.db"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"cleanup_interval": 0}, ValueError),
        ({"cleanup_interval": -1}, ValueError),
        ({"cleanup_interval": float("nan")}, ValueError),
        ({"cleanup_interval": timedelta(0)}, ValueError),
        ({"cleanup_interval": "60"}, TypeError),
        ({"store_names": [1]}, TypeError),
        ({"table_name": "bad-name"}, ValueError),
    ],
)
def test_bad_options_are_clear_errors(
    tmp_path: Path, options: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        sqlite_plugin(tmp_path, **options)


def test_url_and_engine_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either url or engine"):
        SQLStorePlugin("sqlite+aiosqlite://", engine=create_async_engine("sqlite+aiosqlite://"))


# -- lifespan ---------------------------------------------------------------------------------------


async def test_works_across_repeated_lifespans_and_event_loops(url: str, plugin_table: str) -> None:
    plugin = SQLStorePlugin(url, table_name=plugin_table)
    app = Litestar(route_handlers=[ping, remember], plugins=[plugin])
    sessions = app.stores.get("sessions")
    for round_ in range(2):
        # TestClient runs the app and its lifespan on an event loop of its own
        with TestClient(app) as client:
            assert client.get(f"/remember/{round_}").text == str(round_)
        # and then the store works from this test's loop
        assert await sessions.get("k") == str(round_).encode()
    await plugin.store.__aexit__(None, None, None)


async def test_borrowed_engine_is_not_disposed(url: str, plugin_table: str) -> None:
    from sqlsession._dialects import async_url

    engine = create_async_engine(async_url(url))
    try:
        plugin = SQLStorePlugin(engine=engine, table_name=plugin_table, cleanup_interval=None)
        pool = engine.pool
        async with plugin.lifespan():
            await plugin.store_for("sessions").set("k", b"v")
        assert engine.pool is pool
        assert await plugin.store_for("sessions").get("k") == b"v"
    finally:
        await engine.dispose()


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll the database until ``condition`` holds (a bound against hanging, not a timing assertion)."""

    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - polling the database, there is no event
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_background_cleanup_deletes_expired_entries(url: str, plugin_table: str, clock: Clock) -> None:
    plugin = SQLStorePlugin(url, table_name=plugin_table, cleanup_interval=0.05, clock=clock)
    sessions = plugin.store_for("sessions")
    await sessions.set("old", b"v", expires_in=10)
    await sessions.set("live", b"v", expires_in=1000)
    clock.advance(10)

    async def cleaned() -> bool:
        return (await plugin.store.stats()).rows == 1

    async with plugin.lifespan():
        await _until(cleaned)
    try:
        assert await sessions.get("live") == b"v"
    finally:
        await plugin.store.close()  # before this test's event loop ends


async def test_cleanup_errors_are_logged_and_the_loop_carries_on(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = SQLStorePlugin(url, table_name=unique_table(), cleanup_interval=0.02, check_on_startup=False)

    async def failed_twice() -> bool:
        return sum("deleting expired entries failed" in r.getMessage() for r in caplog.records) >= 2

    with caplog.at_level(logging.ERROR, logger="sqlsession"):
        async with plugin.lifespan():
            await _until(failed_twice)  # a failed run did not end the loop: it ran again
    assert "python -m sqlsession upgrade" in caplog.text


async def test_cleanup_is_cancelled_at_shutdown(tmp_path: Path) -> None:
    plugin = sqlite_plugin(tmp_path, cleanup_interval=3600, check_on_startup=False)
    before = asyncio.all_tasks()
    async with plugin.lifespan():
        started = asyncio.all_tasks() - before
        assert len(started) == 1  # the cleanup loop
        (task,) = started
        assert not task.done()
    assert task.cancelled()
    assert asyncio.all_tasks() == before


async def test_no_cleanup_task_when_turned_off(tmp_path: Path) -> None:
    plugin = sqlite_plugin(tmp_path, cleanup_interval=None, check_on_startup=False)
    before = asyncio.all_tasks()
    async with plugin.lifespan():
        assert asyncio.all_tasks() == before


# -- batched delete_expired -------------------------------------------------------------------------


async def _fill(store: SQLStore, now_us: int, expired: int, live: int) -> None:
    """Bulk-insert rows into the store's namespace: ``expired`` already expired, ``live`` not."""
    await store.set("probe", b"v")  # the namespace as the store writes it
    (namespace,) = {row[0] for row in await raw_rows(store)}
    await store.delete("probe")
    rows = [
        {
            "namespace": namespace,
            "key_hash": os.urandom(32),
            "value": b"v",
            "expires_at": now_us - 1 if i < expired else now_us + 10**9,
        }
        for i in range(expired + live)
    ]
    async with store.engine.begin() as conn:
        await conn.execute(insert(store.table), rows)


@owned_only
async def test_delete_expired_works_in_batches_and_counts_them_all(store: SQLStore, clock: Clock) -> None:
    expired = DELETE_BATCH_SIZE * 2 + 7
    await _fill(store, round(clock.now * 1_000_000), expired=expired, live=5)
    assert (await store.stats()).expired == expired
    assert await store.delete_expired() == expired
    stats = await store.stats()
    assert (stats.rows, stats.expired) == (5, 0)


@owned_only
async def test_concurrent_cleanups_on_one_table_do_no_harm(
    store: SQLStore, make_store: Callable[..., SQLStore], clock: Clock
) -> None:
    expired = DELETE_BATCH_SIZE + 123
    await _fill(store, round(clock.now * 1_000_000), expired=expired, live=3)
    other_process = make_store(table_name=store.table.name)
    try:
        counts = await asyncio.gather(store.delete_expired(), other_process.delete_expired())
    finally:
        await other_process.__aexit__(None, None, None)
    assert sum(counts) == expired
    assert (await store.stats()).rows == 3


@owned_only
async def test_stats_count_rows_per_namespace(store: SQLStore, clock: Clock) -> None:
    child = store.with_namespace("child")
    await store.set("a", b"v")
    await store.set("b", b"v", expires_in=1)
    await child.set("a", b"v", expires_in=100)
    clock.advance(1)
    stats = await store.stats()
    assert (stats.rows, stats.expired) == (3, 1)
    assert {path: (n.rows, n.expired) for path, n in stats.namespaces.items()} == {
        ("LITESTAR",): (2, 1),
        ("LITESTAR", "child"): (1, 0),
    }
    child_stats = await child.stats()
    assert (child_stats.rows, child_stats.expired) == (1, 0)
