"""The execution layer between the store and SQLAlchemy's pool: one path for every engine.

One regression test per finding of the issue "One execution path": cancellation never loses a
connection, an engine first used on another event loop works, two loops at once never hang,
``pool_timeout`` is honoured, closing leaves nothing open, pool options are read by value, and
SQLAlchemy's events and ``echo`` see every statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlsession import SQLStore, StoreError
from sqlsession._dialects import async_url
from sqlsession._keys import encode_namespace, key_digest

from .conftest import create_table, drop_table, sqlite_only, unique_table


def _store(url: str, engine_mode: str, table: str, **engine_options: Any) -> SQLStore:
    if engine_mode == "owned":
        return SQLStore.with_url(url, table_name=table, engine_options=engine_options)
    return SQLStore(create_async_engine(async_url(url), **engine_options), table_name=table)


async def _close(store: SQLStore, engine_mode: str) -> None:
    await store.close()
    if engine_mode == "borrowed":
        await store.engine.dispose()


@pytest.fixture
async def small_pool_store(url: str, engine_mode: str) -> AsyncIterator[SQLStore]:
    """A store on a pool of three connections and no overflow, with a table of its own."""
    store = _store(url, engine_mode, unique_table(), pool_size=3, max_overflow=0, pool_timeout=5)
    await create_table(store)
    try:
        yield store
    finally:
        await drop_table(store)
        await _close(store, engine_mode)


# -- 1. cancellation never loses a connection -------------------------------------------------------


async def test_timeouts_in_anyio_cancel_scopes_never_lose_a_pool_slot(small_pool_store: SQLStore) -> None:
    store = small_pool_store
    await store.set("k", b"v", expires_in=100)
    timed_out = 0
    for i in range(200):
        # cancel scopes cancel every await inside them again, cleanup included
        with anyio.move_on_after((i % 40) * 0.0001) as scope:
            await asyncio.gather(
                store.get("k", renew_for=100), store.set(f"k{i % 5}", b"x"), store.exists("k")
            )
        timed_out += scope.cancelled_caught
    assert timed_out > 0
    with anyio.fail_after(20):  # a lost slot makes these wait forever on a 3-connection pool
        assert await asyncio.gather(*(store.get("k") for _ in range(12))) == [b"v"] * 12
    pool = store.engine.sync_engine.pool
    await store.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_cancelling_a_call_twice_never_loses_a_pool_slot(small_pool_store: SQLStore) -> None:
    store = small_pool_store
    await store.set("k", b"v")
    for i in range(60):
        task = asyncio.ensure_future(store.get("k", renew_for=50))
        for _ in range(i % 6):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()  # asyncio's double cancel lands in the cleanup
        with contextlib.suppress(asyncio.CancelledError, StoreError):
            await task
    with anyio.fail_after(20):
        assert await asyncio.gather(*(store.get("k") for _ in range(12))) == [b"v"] * 12
    pool = store.engine.sync_engine.pool
    await store.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


# -- 2. and 3. event loops ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
@pytest.mark.parametrize("pool_pre_ping", [False, True])
@pytest.mark.parametrize("start_up_loop", ["closed", "left open"])
def test_engine_first_used_on_another_loop_works_on_the_apps_loop(
    url: str, engine_mode: str, pool_pre_ping: bool, start_up_loop: str
) -> None:
    store = _store(url, engine_mode, unique_table(), pool_pre_ping=pool_pre_ping)
    opened: set[int] = set()
    if "sqlite" not in url:
        event.listen(
            store.engine.sync_engine,
            "connect",
            lambda _dbapi, record: opened.add(_server_id(record.driver_connection)),
        )

    async def start_up() -> None:  # the usual pattern: create the table in a loop of its own
        await create_table(store)
        async with store.engine.begin() as conn:
            await conn.execute(store.table.insert(), [_raw_row(store, "before", b"b")])

    async def serve() -> list[bytes | None]:
        try:
            await store.set("k", b"v")
            got = [await store.get("before"), await store.get("k")]
            await drop_table(store)
            return got
        finally:
            await store.close()

    if start_up_loop == "closed":
        asyncio.run(start_up())
        assert asyncio.run(serve()) == [b"b", b"v"]
    else:  # run_until_complete() leaves the loop open (not running): its connections are as unusable
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(start_up())
            assert asyncio.run(serve()) == [b"b", b"v"]
        finally:
            loop.close()
    # close() ended every connection, the start-up loop's too
    assert asyncio.run(_still_open(url, opened)) == set() if opened else "sqlite" in url


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
@pytest.mark.parametrize("pool_pre_ping", [False, True])
def test_calls_that_wait_for_the_pool_work_on_each_new_event_loop(
    url: str, engine_mode: str, pool_pre_ping: bool
) -> None:
    # an asyncio pool's queue belongs to the first loop that waited in it (SQLAlchemy's own): a store
    # that owns its engine gives each new loop a new pool, so that its calls can wait there
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 10, "pool_pre_ping": pool_pre_ping}
    store = _store(url, engine_mode, unique_table(), **options)

    async def round_(number: int) -> list[bytes | None]:
        if number == 0:
            await create_table(store)
        try:
            await asyncio.gather(*(store.set(f"k{i}", f"{number}".encode()) for i in range(4)))
            return list(await asyncio.gather(*(store.get(f"k{i}") for i in range(4))))
        finally:
            if number == 2:
                await store.close()  # (a new pool for the engine's own use on this loop)
                await drop_table(store)
                await store.close()

    # not closed between loops: the usual test-suite pattern
    assert [asyncio.run(round_(number)) for number in range(3)] == [[f"{n}".encode()] * 4 for n in range(3)]


def _raw_row(store: SQLStore, key: str, value: bytes) -> dict[str, Any]:
    return {"namespace": encode_namespace(store.namespace_path), "key_hash": key_digest(key), "value": value}


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
@pytest.mark.parametrize("start_up", ["creates the table", "creates the table, uses and closes the store"])
def test_two_event_loops_at_once_never_hang(url: str, engine_mode: str, start_up: str) -> None:
    store = _store(url, engine_mode, unique_table(), pool_size=2, max_overflow=0, pool_timeout=5)

    async def starting() -> None:
        await create_table(store)
        if "closes" in start_up:  # close() gives the engine a new pool, used by both loops below
            await store.set("start", b"v")
            await store.close()

    asyncio.run(starting())
    outcomes: dict[str, list[str]] = {"a": [], "b": []}

    async def work(name: str) -> None:
        for i in range(40):
            try:
                with anyio.fail_after(15):
                    await store.set(f"{name}{i}", b"v")
                    assert await store.get(f"{name}{i}") == b"v"
                outcomes[name].append("ok")
            except StoreError as error:  # allowed: a clear error at once
                assert "event loop" in str(error)
                outcomes[name].append("error")
        await store.close()

    threads = [threading.Thread(target=asyncio.run, args=(work(name),)) for name in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a loop hung"
    assert len(outcomes["a"]) == len(outcomes["b"]) == 40
    assert "ok" in outcomes["a"] + outcomes["b"]

    async def finish() -> None:
        await drop_table(store)
        await store.close()

    asyncio.run(finish())


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
def test_a_call_of_a_second_running_loop_never_pings_the_first_loops_connections(
    url: str, engine_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # with pre-ping, a checkout does I/O on the connection it takes: one of another thread's running loop
    # must not be touched from this thread (asyncpg crashed; SQLAlchemy logged failed terminations)
    store = _store(url, engine_mode, unique_table(), pool_size=3, max_overflow=0, pool_pre_ping=True)
    loops = [asyncio.new_event_loop() for _ in range(2)]
    threads = [threading.Thread(target=loop.run_forever, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()

    def on(loop: asyncio.AbstractEventLoop, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, loop).result(30)

    async def calls(name: str, count: int) -> list[str]:
        async def one(i: int) -> str:
            try:
                await store.set(f"{name}{i}", b"v")
            except StoreError as error:  # allowed: a clear error at once
                assert "event loop" in str(error)
                return "refused"
            return "ok"

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    first, second = loops
    try:
        on(first, create_table(store))
        with caplog.at_level(logging.ERROR, logger="sqlalchemy.pool"):
            for _ in range(10):
                assert on(first, calls("a", 3)) == ["ok"] * 3
                on(second, calls("b", 1))
        assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")], caplog.text
        on(first, drop_table(store))
        for loop in loops:
            on(loop, store.close())
    finally:
        for loop, thread in zip(loops, threads, strict=True):
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_close_while_calls_start_on_a_pinging_pool_never_hangs(url: str, engine_mode: str) -> None:
    # close() gives the engine a new pool: calls whose checkouts had not run yet must not take the old
    # pool's connections that close() is closing (the ping waited forever on psycopg and SQLite)
    options = {"pool_size": 2, "max_overflow": 1, "pool_timeout": 5, "pool_pre_ping": True}
    store = _store(url, engine_mode, unique_table(), **options)
    await create_table(store)
    try:
        for round_ in range(5):
            await asyncio.gather(*(store.set(f"w{i}", b"v") for i in range(3)))  # back in the pool
            calls = [asyncio.ensure_future(store.set(f"{round_}-{i}", b"v")) for i in range(4)]
            await asyncio.sleep(0)  # the calls have started their checkouts, which have not run yet
            with anyio.fail_after(15):
                await store.close()
                assert await asyncio.gather(*calls) == [None] * 4
        assert [await store.get(f"4-{i}") for i in range(4)] == [b"v"] * 4
    finally:
        await drop_table(store)
        await store.close()


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
def test_two_event_loops_at_once_work_on_a_pool_without_a_queue(url: str, engine_mode: str) -> None:
    # NullPool opens and closes a connection for each call, on the loop that makes it
    store = _store(url, engine_mode, unique_table(), poolclass=NullPool)
    asyncio.run(create_table(store))
    done: dict[str, int] = {"a": 0, "b": 0}

    async def work(name: str) -> None:
        try:
            for i in range(20):
                with anyio.fail_after(15):
                    await store.set(f"{name}{i}", b"v")
                    assert await store.get(f"{name}{i}") == b"v"
                done[name] += 1
        finally:
            await store.close()

    threads = [threading.Thread(target=asyncio.run, args=(work(name),)) for name in done]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a loop hung"
    assert done == {"a": 20, "b": 20}

    async def finish() -> None:
        await drop_table(store)
        await store.close()

    asyncio.run(finish())


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
def test_a_call_left_on_a_stopped_event_loop_does_not_block_other_loops(url: str, engine_mode: str) -> None:
    table = unique_table()
    store = _store(url, engine_mode, table, pool_size=2, max_overflow=0, pool_timeout=5)
    asyncio.run(create_table(store))
    asyncio.run(store.set("other", b"o"))
    # a synchronous wrapper that gives up waiting: its loop stops (not closed) with the call pending
    abandoned = asyncio.new_event_loop()
    try:
        locked = _table_locked(url, table, readers_pass=True)
        abandoned.run_until_complete(locked.__aenter__())
        pending = abandoned.create_task(store.set("k", b"v"))  # waits for the lock
        abandoned.run_until_complete(asyncio.wait([pending], timeout=0.2))
        assert not pending.done()
        # another event loop, while that one is not running
        assert asyncio.run(store.get("other")) == b"o"
        abandoned.run_until_complete(locked.__aexit__(None, None, None))
        abandoned.run_until_complete(pending)
        abandoned.run_until_complete(store.close())
    finally:
        abandoned.close()

    async def finish() -> None:
        assert await store.get("k") == b"v"
        await drop_table(store)
        await store.close()

    asyncio.run(finish())


# -- 4. pool_timeout -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _table_locked(url: str, table: str, *, readers_pass: bool = False) -> AsyncIterator[None]:
    """Another connection holds a lock on ``table`` that stops writers (and readers, unless
    ``readers_pass``) until the block ends."""
    engine = create_async_engine(async_url(url))
    conn = await engine.connect()
    name = engine.dialect.name
    try:
        if name == "sqlite":  # (in WAL mode, readers pass a writer's lock)
            await conn.exec_driver_sql("BEGIN IMMEDIATE" if readers_pass else "BEGIN EXCLUSIVE")
        elif name == "postgresql":
            mode = "EXCLUSIVE" if readers_pass else "ACCESS EXCLUSIVE"
            await conn.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")
        else:
            await conn.exec_driver_sql(f"LOCK TABLES {table} {'READ' if readers_pass else 'WRITE'}")
        yield
    finally:
        if name in ("mysql", "mariadb"):
            await conn.exec_driver_sql("UNLOCK TABLES")
        await conn.rollback()
        await conn.close()
        await engine.dispose()


@sqlite_only  # the pool waits and gives up the same way whatever the database
@pytest.mark.parametrize("waits_in", ["the pool's queue", "the store's hand-on"])
async def test_pool_timeout_is_honoured(url: str, engine_mode: str, waits_in: str) -> None:
    table = unique_table()
    store = _store(url, engine_mode, table, pool_size=1, max_overflow=0, pool_timeout=1)
    await create_table(store)
    try:
        async with _table_locked(url, table):
            taken = asyncio.Event()
            event.listen(store.engine.sync_engine, "checkout", lambda *_: taken.set())
            blocked = asyncio.ensure_future(store.set("a", b"1"))  # takes the only connection, waits
            with anyio.fail_after(20):
                await taken.wait()
            if waits_in == "the store's hand-on":
                for _ in range(10):  # the first call holds the connection: the next waits for it
                    await asyncio.sleep(0)
            with anyio.fail_after(6):  # given up after pool_timeout=1 s
                with pytest.raises(StoreError, match="pool_timeout"):
                    await store.set("b", b"2")
        with anyio.fail_after(20):
            await blocked
        assert await store.get("a") == b"1"
    finally:
        await drop_table(store)
        await _close(store, engine_mode)


# -- calls waiting for each other's connections --------------------------------------------------------


async def test_a_connection_handed_to_a_call_cancelled_at_that_moment_is_not_lost(
    url: str, engine_mode: str
) -> None:
    table = unique_table()
    store = _store(url, engine_mode, table, pool_size=1, max_overflow=0, pool_timeout=5)
    await create_table(store)
    try:
        taken = asyncio.Event()
        event.listen(store.engine.sync_engine, "checkout", lambda *_: taken.set())
        waiting: list[asyncio.Future[Any]] = []

        async def set_then_cancel_the_waiting_call() -> None:
            await store.set("a", b"1")
            # the connection was just handed on to the waiting call, which has not run since
            waiting[0].cancel()

        async with _table_locked(url, table):
            first = asyncio.ensure_future(set_then_cancel_the_waiting_call())  # waits on the lock
            with anyio.fail_after(20):
                await taken.wait()
            for _ in range(10):  # the call takes the connection from its checkout
                await asyncio.sleep(0)
            waiting.append(asyncio.ensure_future(store.get("a")))  # waits for the only connection
            for _ in range(10):
                await asyncio.sleep(0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with anyio.fail_after(20):
                await first
                with pytest.raises(asyncio.CancelledError):
                    await waiting[0]
            gc.collect()
        # a connection the store lost is found by the garbage collector, which warns
        assert not [w for w in caught if "non-checked-in" in str(w.message)]
        with anyio.fail_after(10):
            assert await store.get("a") == b"1"
        pool = store.engine.sync_engine.pool
        await store.close()
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await drop_table(store)
        await _close(store, engine_mode)


@pytest.mark.parametrize("engine_mode", ["borrowed"], indirect=True)
async def test_the_applications_own_checkouts_are_served_while_the_store_is_busy(
    url: str, engine_mode: str
) -> None:
    store = _store(url, engine_mode, unique_table(), pool_size=2, max_overflow=0, pool_timeout=5)
    await create_table(store)
    stop = asyncio.Event()

    async def busy_store(worker: int) -> int:
        calls = 0
        while not stop.is_set():
            await store.set(f"k{worker}", b"v")
            calls += 1
        return calls

    try:
        # both connections open and in the pool: the workers' first calls take them, the others wait
        # for them to be handed on
        await asyncio.gather(store.set("a", b"1"), store.set("b", b"2"))
        workers = [asyncio.ensure_future(busy_store(i)) for i in range(12)]
        try:
            for _ in range(10):
                # the application's own session, on the engine the store shares: served in its turn,
                # not after the store's calls (which would hand the connections on among themselves)
                with anyio.fail_after(4):  # below pool_timeout: the pool's TimeoutError is a failure
                    async with store.engine.connect() as conn:
                        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            with anyio.fail_after(20):
                calls = await asyncio.gather(*workers)
        assert min(calls) > 0
    finally:
        await drop_table(store)
        await _close(store, engine_mode)


@pytest.mark.parametrize("engine_mode", ["borrowed"], indirect=True)
async def test_the_applications_transactions_on_a_shared_engine_still_roll_back(
    url: str, engine_mode: str
) -> None:
    # one connection: the application's sessions get the very connection the store's calls used
    store = _store(url, engine_mode, unique_table(), pool_size=1, max_overflow=0)
    await create_table(store)
    try:
        for round_ in range(2):
            await store.set("k", b"v")
            assert await store.get("k", renew_for=60) == b"v"
            async with store.engine.connect() as conn:
                await conn.execute(store.table.delete())
                await conn.execute(store.table.insert(), [_raw_row(store, f"app{round_}", b"a")])
                await conn.rollback()  # none of it happened
            assert await store.get("k") == b"v"
            assert await store.get(f"app{round_}") is None
    finally:
        await drop_table(store)
        await _close(store, engine_mode)


@pytest.mark.parametrize("dialect", ["asyncmy"], indirect=True)
@pytest.mark.parametrize("engine_mode", ["borrowed"], indirect=True)
async def test_a_connection_lost_after_the_store_used_it_is_replaced_for_the_application(
    url: str, dialect: str, engine_mode: str
) -> None:
    # MySQL: the store leaves its connections in autocommit, and they are switched back when the
    # application checks them out; if that fails (the connection was lost), the pool replaces it
    store = _store(url, engine_mode, unique_table(), pool_size=1, max_overflow=0)
    opened: list[int] = []
    event.listen(
        store.engine.sync_engine,
        "connect",
        lambda _dbapi_connection, record: opened.append(record.driver_connection.thread_id()),
    )
    await create_table(store)
    killer = create_async_engine(async_url(url))
    try:
        await store.set("k", b"v")
        async with killer.connect() as conn:
            await conn.exec_driver_sql(f"KILL CONNECTION {opened[-1]}")
        async with store.engine.connect() as conn:
            await conn.execute(store.table.delete())
            await conn.rollback()
        assert len(opened) == 2  # the lost connection was replaced
        assert await store.get("k") == b"v"
    finally:
        await killer.dispose()
        await drop_table(store)
        await _close(store, engine_mode)


# -- 5. closing leaves nothing open -------------------------------------------------------------------


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_close_leaves_no_connection_checked_out_nor_for_the_garbage_collector(
    url: str, engine_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = unique_table()
    store = _store(url, engine_mode, table, pool_size=4, max_overflow=4)
    await create_table(store)
    pool = store.engine.sync_engine.pool
    await asyncio.gather(*(store.set(f"k{i}", b"v") for i in range(24)))
    await asyncio.gather(*(store.get(f"k{i}", renew_for=10) for i in range(24)))
    await drop_table(store)
    await store.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "non-checked-in" in str(w.message)]
    assert "non-checked-in" not in caplog.text


@pytest.mark.parametrize("dialect", ["asyncpg", "psycopg"], indirect=True)
@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
@pytest.mark.parametrize("first_close", ["after the calls", "while calls run"])
async def test_close_leaves_no_server_connection_open(
    url: str, dialect: str, engine_mode: str, first_close: str
) -> None:
    name = f"sqlsession-{uuid.uuid4().hex[:12]}"
    connect_args = (
        {"server_settings": {"application_name": name}}
        if dialect == "asyncpg"
        else {"application_name": name}
    )
    table = unique_table()
    store = SQLStore.with_url(
        url, table_name=table, engine_options={"pool_size": 4, "connect_args": connect_args}
    )
    await create_table(store)
    await asyncio.gather(*(store.set(f"k{i}", b"v") for i in range(24)))
    await store.close()
    # the store stays usable after close(), and the next close() closes what it opened since
    if first_close == "after the calls":
        await asyncio.gather(*(store.get(f"k{i}") for i in range(24)))
        await store.close()
    else:  # calls that hold connections of the pool close() disposes of
        await asyncio.gather(*(store.get(f"k{i}") for i in range(24)), store.close())
    await asyncio.gather(*(store.get(f"k{i}") for i in range(24)))
    await drop_table(store)
    await store.close()
    # a server process ends a moment after its client closed the socket: wait for that, within a
    # deadline (a connection left open stays, and fails the test)
    observer = create_async_engine(async_url(url))
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n")
    try:
        async with observer.connect() as conn:
            for _ in range(100):
                count = (await conn.execute(query, {"n": name})).scalar_one()
                if count == 0:
                    break
                await asyncio.sleep(0.05)
            left = (
                await conn.execute(
                    text(
                        "SELECT state, backend_start, query FROM pg_stat_activity WHERE application_name = :n"
                    ),
                    {"n": name},
                )
            ).all()
    finally:
        await observer.dispose()
    assert count == 0, f"still open after close(): {left}"


@pytest.mark.parametrize("engine_mode", ["borrowed"], indirect=True)
def test_an_application_engine_whose_pool_belongs_to_another_loop_fails_at_once_with_advice(
    url: str, engine_mode: str
) -> None:
    # the application's engine is its own to dispose of: the store says so instead of failing cryptically
    engine = create_async_engine(async_url(url), pool_size=1, max_overflow=0, pool_timeout=10)
    store = SQLStore(engine, table_name=unique_table())

    async def bind_the_pool_to_this_loop() -> None:
        await create_table(store)
        async with engine.connect() as conn:  # a second checkout waits in the queue: bound to this loop
            waiting = asyncio.ensure_future(engine.connect().start())
            await asyncio.sleep(0.05)
            await conn.invalidate()  # closed on its own loop: the waiting checkout opens another
        waited = await waiting
        await waited.invalidate()  # the same: no connection of this loop is left in the pool
        await waited.close()

    async def on_the_next_loop() -> BaseException | None:
        try:
            async with engine.connect():  # the only connection: the store's call must wait in the queue
                try:
                    await asyncio.wait_for(store.get("k"), 5)
                except StoreError as error:
                    return error
            return None
        finally:
            await engine.dispose()  # the application's move to this loop, and its connection closed here

    async def finish() -> None:
        await drop_table(store)
        await store.close()
        await engine.dispose()

    try:
        asyncio.run(bind_the_pool_to_this_loop())
        error = asyncio.run(on_the_next_loop())
        assert error is not None and "await engine.dispose()" in str(error), error
    finally:
        asyncio.run(finish())


def _server_id(driver_connection: Any) -> int:
    """The server's id of a connection: its backend's pid (PostgreSQL), its thread id (MariaDB)."""
    if hasattr(driver_connection, "get_server_pid"):  # asyncpg
        return int(driver_connection.get_server_pid())
    if hasattr(driver_connection, "thread_id"):  # asyncmy
        return int(driver_connection.thread_id())
    return int(driver_connection.info.backend_pid)  # psycopg


async def _still_open(url: str, ids: set[int]) -> set[int]:
    """Which of the server connections ``ids`` are open, after waiting (within a deadline) for those a
    client has just closed to end."""
    if "postgresql" in url:
        query = text("SELECT pid FROM pg_stat_activity")
    else:
        query = text("SELECT id FROM information_schema.processlist")
    observer = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with observer.connect() as conn:
            for _ in range(100):
                open_ids = {int(row[0]) for row in (await conn.execute(query)).all()} & ids
                if not open_ids:
                    break
                await asyncio.sleep(0.05)
    finally:
        await observer.dispose()
    return open_ids


@pytest.mark.parametrize("dialect", ["asyncpg", "psycopg", "asyncmy"], indirect=True)
@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
def test_close_on_another_event_loop_then_on_the_loop_that_kept_connections_leaves_none_open(
    url: str, dialect: str, engine_mode: str
) -> None:
    store = _store(url, engine_mode, unique_table(), pool_size=4, max_overflow=0, pool_timeout=10)
    opened: set[int] = set()
    event.listen(
        store.engine.sync_engine,
        "connect",
        lambda _dbapi, record: opened.add(_server_id(record.driver_connection)),
    )
    kept, closed_elsewhere = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    async def keeps_connections() -> None:  # a loop of its own, in its own thread
        await create_table(store)
        await asyncio.gather(*(store.set(f"k{i}", b"v") for i in range(8)))  # keeps some between calls
        kept.set()
        await asyncio.to_thread(closed_elsewhere.wait, 30)
        await store.close()

    def in_thread() -> None:
        try:
            asyncio.run(keeps_connections())
        except BaseException as error:  # reported by the test's thread
            failures.append(error)
            kept.set()

    thread = threading.Thread(target=in_thread)
    thread.start()
    assert kept.wait(30)
    asyncio.run(store.close())  # another loop's close(): that loop's connections are not its own to close
    closed_elsewhere.set()
    thread.join(30)
    assert not thread.is_alive() and not failures, failures
    assert len(opened) >= 2
    assert asyncio.run(_still_open(url, opened)) == set()
    asyncio.run(_drop_and_close(store))


async def _drop_and_close(store: SQLStore) -> None:
    await drop_table(store)
    await store.close()


# -- 6. pool options are read by value ----------------------------------------------------------------


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_falsy_pool_options_behave_like_the_defaults(url: str, engine_mode: str) -> None:
    async def checkouts(**options: Any) -> int:
        store = _store(url, engine_mode, unique_table(), **options)
        count = 0

        def on_checkout(*_: Any) -> None:
            nonlocal count
            count += 1

        await create_table(store)
        event.listen(store.engine.sync_engine, "checkout", on_checkout)
        try:
            for i in range(20):
                await store.set(f"k{i}", b"v")
        finally:
            event.remove(store.engine.sync_engine, "checkout", on_checkout)
            await drop_table(store)
            await store.close()
        return count

    assert await checkouts(pool_pre_ping=False, pool_recycle=-1) == await checkouts()


# -- 7. SQLAlchemy sees every statement ----------------------------------------------------------------


async def test_cursor_execute_listeners_see_every_statement(url: str, engine_mode: str) -> None:
    store = _store(url, engine_mode, unique_table())
    await create_table(store)
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    try:
        await store.set("k", b"v", expires_in=100)
        assert await store.get("k", renew_for=100) == b"v"
        await store.delete("k")
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", before)
        await drop_table(store)
        await _close(store, engine_mode)
    assert [s.split()[0].upper() for s in seen if s.split()[0].upper() != "SELECT"][:1] == ["INSERT"]
    assert any(s.lstrip().upper().startswith("DELETE") for s in seen)
    assert len(seen) >= 3


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_echo_logs_every_statement(
    url: str, engine_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(url, engine_mode, unique_table(), echo=True)
    await create_table(store)
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            await store.set("k", b"v")
            await store.delete("k")
    finally:
        await drop_table(store)
        await _close(store, engine_mode)
    messages = [record.getMessage().lstrip().upper() for record in caplog.records]
    assert any(m.startswith("INSERT") for m in messages)
    assert any(m.startswith("DELETE") for m in messages)


# -- sanity: the public close() -------------------------------------------------------------------------


async def test_close_keeps_the_store_usable(url: str, engine_mode: str) -> None:
    store = _store(url, engine_mode, unique_table())
    await create_table(store)
    try:
        await store.set("k", b"v")
        await store.close()
        assert await store.get("k") == b"v"
    finally:
        await drop_table(store)
        await _close(store, engine_mode)
