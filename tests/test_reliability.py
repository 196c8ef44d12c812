"""Reliability: concurrency, several processes, a restarted or disconnecting server, a missing table.

Every test bounds its own run time (``within``); none measures time, and none sleeps where the
injected clock can move time instead.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore, StoreError, TableMissingError
from sqlsession._execution import ROLLED_BACK_ATTEMPTS
from sqlsession._keys import encode_namespace, key_digest

from ._servers import PrivatePostgres
from ._support import borrowed_or_owned, close_store, within
from .conftest import Clock, create_table, dialect_url, drop_table, owned_only, unique_table

# -- concurrency ----------------------------------------------------------------------------------


@owned_only
@within(60)
async def test_200_concurrent_sets_on_one_key_leave_one_whole_write(store: SQLStore, clock: Clock) -> None:
    # each write has its own value and its own expiry: what is read afterwards must be one write,
    # whole (never the value of one and the expiry of another)
    writes = {f"value-{i}".encode(): 1000 + i for i in range(200)}
    await asyncio.gather(*(store.set("contended", value, expires_in=ttl) for value, ttl in writes.items()))
    value = await store.get("contended")
    assert value in writes
    assert await store.expires_in("contended") == writes[value]
    # and the key is still one key: a delete removes it
    await store.delete("contended")
    assert await store.get("contended") is None


async def _eventually(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Wait (yielding to the load tasks) until ``condition`` holds."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class _RenewDeleteRace:
    """Renewers hammering one key while it is deleted; records what each renewal saw."""

    def __init__(self, store: SQLStore, key: str) -> None:
        self.store, self.key = store, key
        self.deleted = self.stopped = False
        self.seen: list[bytes | None] = []
        self.after_delete: list[bytes | None] = []  # renewals that started once the delete returned

    async def renewer(self, renew_for: float) -> None:
        while not self.stopped:
            started_after_delete = self.deleted
            value = await self.store.get(self.key, renew_for=renew_for)
            (self.after_delete if started_after_delete else self.seen).append(value)

    async def run(self, renewals_before_delete: int) -> None:
        renewers = [asyncio.ensure_future(self.renewer(30 + 30 * i)) for i in range(4)]
        try:
            # the delete goes out while the renewers are at work: some renewals are in flight
            await _eventually(lambda: len(self.seen) >= renewals_before_delete, "renewals before the delete")
            await self.store.delete(self.key)
            self.deleted = True
            assert await self.store.get(self.key) is None
            # each renewer has started and finished at least one renewal since the delete returned
            await _eventually(lambda: len(self.after_delete) >= 8, "renewals after the delete")
            assert await self.store.get(self.key) is None
        finally:
            self.stopped = True
            await asyncio.gather(*renewers)


@owned_only
@within(60)
async def test_renew_never_resurrects_deleted_key(store: SQLStore) -> None:
    # any renewal that started after the delete returned sees nothing, and the key stays deleted
    for round_ in range(15):
        key = f"session-{round_}"
        await store.set(key, b"v", expires_in=60)
        race = _RenewDeleteRace(store, key)
        await race.run(renewals_before_delete=round_ % 5 + 1)
        assert b"v" in race.seen  # renewed before the delete: there was something to resurrect
        assert set(race.seen) <= {b"v", None}
        assert race.after_delete and set(race.after_delete) == {None}
        assert await store.get(key, renew_for=10) is None
        assert await store.exists(key) is False
        assert await store.expires_in(key) is None


@dataclass
class _Model:
    """What one key holds, by the sequence of confirmed operations, with the clock standing still."""

    now_us: int
    value: bytes | None = None
    expires_at: int | None = None  # microseconds; None = never
    log: list[str] = field(default_factory=list)

    def set(self, value: bytes, expires_in: object) -> None:
        delta = expires_in // timedelta(microseconds=1) if isinstance(expires_in, timedelta) else None
        if delta is None:
            delta = 0 if expires_in is None else round(float(expires_in) * 1_000_000)  # type: ignore[arg-type]
        if delta < 0:
            self.value, self.expires_at = None, None  # stored already expired: invisible
        else:
            self.value, self.expires_at = value, (self.now_us + delta if delta else None)

    def renew(self, renew_for: float) -> None:
        if self.value is not None and self.expires_at is not None:
            self.expires_at = self.now_us + round(renew_for * 1_000_000)

    def seconds_left(self) -> int | None:
        if self.value is None:
            return None
        if self.expires_at is None:
            return -1
        return math.ceil((self.expires_at - self.now_us) / 1_000_000)


_EXPIRIES: list[object] = [None, 0, 100, 250.5, -1, timedelta(seconds=30), 0.25]


@within(90)
async def test_500_mixed_operations_over_a_2_connection_pool_match_a_sequential_model(
    url: str, engine_mode: str, clock: Clock
) -> None:
    store = borrowed_or_owned(
        url, engine_mode, {"pool_size": 2, "max_overflow": 0}, table_name=unique_table(), clock=clock
    )
    await create_table(store)
    try:
        # siblings that share a prefix, a child, and a scratch namespace cleared all the time
        homes = [
            store.with_namespace("sessions"),
            store.with_namespace("sess"),
            store.with_namespace("sessions").with_namespace("x"),
        ]
        scratch = store.with_namespace("scratch")
        now_us = round(clock() * 1_000_000)
        models: dict[tuple[int, str], _Model] = {}

        async def owner(task: int) -> None:
            rng = random.Random(task)
            home = homes[task % len(homes)]
            key = f"key-{task}"
            model = models[task, key] = _Model(now_us)
            for step in range(5):
                op = rng.choice(["set", "set", "get", "renew", "exists", "expires_in", "delete"])
                model.log.append(op)
                if op == "set":
                    value = f"{task}-{step}-{rng.random()}".encode()
                    expires_in = rng.choice(_EXPIRIES)
                    await home.set(key, value, expires_in=expires_in)  # type: ignore[arg-type]
                    model.set(value, expires_in)
                elif op == "get":
                    assert await home.get(key) == model.value, (task, model.log)
                elif op == "renew":
                    assert await home.get(key, renew_for=77) == model.value, (task, model.log)
                    model.renew(77)
                elif op == "exists":
                    assert await home.exists(key) is (model.value is not None), (task, model.log)
                elif op == "expires_in":
                    assert await home.expires_in(key) == model.seconds_left(), (task, model.log)
                else:
                    await home.delete(key)
                    model.value, model.expires_at = None, None

        async def disturber() -> None:
            # writes and range deletes elsewhere in the same table must not touch the owners' keys
            for i in range(15):
                await scratch.set(f"s{i}", b"x", expires_in=-1 if i % 2 else None)
                await scratch.delete_all()
                await store.delete_expired()  # only removes rows that are already invisible

        await asyncio.gather(*(owner(task) for task in range(100)), disturber())

        for (task, key), model in models.items():
            home = homes[task % len(homes)]
            assert await home.get(key) == model.value, (task, model.log)
            assert await home.expires_in(key) == model.seconds_left(), (task, model.log)
        assert await scratch.get("s0") is None
    finally:
        # an owned store keeps its pool's 2 connections leased between calls: give them back first
        await store.__aexit__(None, None, None)
        await drop_table(store)
        await close_store(store, engine_mode)


def _sqlite_writer(path: str, table: str, worker: int, count: int, barrier: Any, errors: Any) -> None:
    """One process: ``count`` writes of its own keys, plus writes to keys all processes share."""

    async def write() -> None:
        store = SQLStore.with_url(f"sqlite+aiosqlite:///{path}", table_name=table)
        try:
            barrier.wait(timeout=60)
            for start in range(0, count, 10):
                batch = range(start, min(start + 10, count))
                await asyncio.gather(
                    *(store.set(f"w{worker}-{n}", f"{worker}:{n}".encode()) for n in batch),
                    store.set("shared", f"{worker}:{start}".encode(), expires_in=600),
                    store.get("shared", renew_for=900),
                    store.delete(f"scratch-{worker}"),
                )
                if start % 100 == 0:
                    await store.delete_expired()
            for n in range(count):
                if await store.get(f"w{worker}-{n}") != f"{worker}:{n}".encode():
                    raise AssertionError(f"worker {worker} lost its own write {n}")
        finally:
            await store.__aexit__(None, None, None)

    try:
        asyncio.run(write())
    except BaseException:
        errors.put(f"worker {worker}: {traceback.format_exc()}")
        raise


@within(150)
async def test_four_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    table = unique_table()
    store = SQLStore.with_url(f"sqlite+aiosqlite:///{path}", table_name=table)  # WAL, busy_timeout
    await create_table(store)
    await store.__aexit__(None, None, None)

    workers, count = 4, 300
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    errors = context.Queue()
    processes = [
        context.Process(target=_sqlite_writer, args=(path, table, worker, count, barrier, errors))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            await asyncio.to_thread(process.join, 120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    assert [process.exitcode for process in processes] == [0] * workers

    try:
        for worker in range(workers):
            for n in range(count):
                assert await store.get(f"w{worker}-{n}") == f"{worker}:{n}".encode()
        assert (await store.get("shared") or b"").split(b":")[0] in {b"0", b"1", b"2", b"3"}
    finally:
        await store.__aexit__(None, None, None)


# -- faults -----------------------------------------------------------------------------------------


class _LoadThroughOutage:
    """Stores writing keys in a loop, and what they saw: confirmed writes, clear failures, wrong reads."""

    def __init__(self, stores: dict[str, SQLStore]) -> None:
        self.stores = stores
        self.confirmed: dict[str, dict[str, bytes]] = {name: {} for name in stores}
        self.failures: dict[str, list[StoreError]] = {name: [] for name in stores}
        self.wrong: list[str] = []
        self.stopped = False
        self.tasks: list[asyncio.Future[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self.loop(name)) for name in self.stores]

    async def stop(self) -> list[BaseException]:
        """Stop the loops; any exception other than a ``StoreError`` that ended one."""
        self.stopped = True
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        return [result for result in results if isinstance(result, BaseException)]

    def writes(self, name: str) -> int:
        return len(self.confirmed[name])

    async def loop(self, name: str) -> None:
        store, confirmed, n = self.stores[name], self.confirmed[name], 0
        while not self.stopped:
            n += 1
            key, value = f"{name}-{n}", f"{name}:{n}".encode()
            try:
                await store.set(key, value, expires_in=3600)
                confirmed[key] = value
                earlier = f"{name}-{n // 2}"
                if earlier in confirmed:
                    got = await store.get(earlier, renew_for=3600)
                    if got != confirmed[earlier]:
                        self.wrong.append(f"{name}: {earlier} read as {got!r}")
            except StoreError as error:
                self.failures[name].append(error)
                await asyncio.sleep(0.01)  # the server is down: do not spin


@within(120)
async def test_postgres_restart_fails_clearly_then_recovers_without_losing_confirmed_writes(
    private_postgres: PrivatePostgres,
) -> None:
    # one restart covers asyncpg and psycopg, owned and borrowed engines: "busy" stores run a load
    # loop through it, "idle" stores sit on pooled connections that the restart kills. The server
    # is a private one (tests/_servers.py), never the machine's own that everything else uses
    table = unique_table()
    stores: dict[str, SQLStore] = {}
    for driver in ("asyncpg", "psycopg"):
        url = private_postgres.url(driver)
        for role in ("busy", "idle"):
            stores[f"{driver}-owned-{role}"] = SQLStore.with_url(url, table_name=table)
            stores[f"{driver}-borrowed-{role}"] = SQLStore(create_async_engine(url), table_name=table)
    busy = {name: store for name, store in stores.items() if name.endswith("busy")}
    idle = {name: store for name, store in stores.items() if name.endswith("idle")}
    idle_writes: dict[str, bytes] = {}
    load = _LoadThroughOutage(busy)
    await create_table(stores["asyncpg-owned-busy"])
    try:
        for name, store in idle.items():  # several pooled connections each, all killed by the restart
            await asyncio.gather(*(store.set(f"{name}-warm-{i}", b"w") for i in range(4)))
            idle_writes.update({f"{name}-warm-{i}": b"w" for i in range(4)})
        load.start()
        try:
            await _eventually(lambda: all(load.writes(name) >= 20 for name in busy), "writes before")
            before = {name: dict(load.confirmed[name]) for name in busy}
            try:
                await asyncio.to_thread(private_postgres.stop)  # fast shutdown: sessions killed
                assert not private_postgres.ready()
                # during the outage: clear errors, from every store and operation
                for name, store in busy.items():
                    calls: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = [
                        (store.set, ("k", b"v")),
                        (store.get, ("k",)),
                        (store.delete_expired, ()),
                    ]
                    for call, args in calls:
                        with pytest.raises(StoreError) as caught:
                            await asyncio.wait_for(call(*args), 15)
                        assert not isinstance(caught.value, TableMissingError), name
                await _eventually(lambda: all(load.failures[name] for name in busy), "the loops to fail")
            finally:
                # whatever happened, the server runs again before anything else
                await asyncio.to_thread(private_postgres.start)  # same port, same data
            failures_during = {name: len(load.failures[name]) for name in busy}

            # after: the idle stores' first calls succeed on fresh connections, transparently
            for name, store in idle.items():
                assert await store.get(f"{name}-warm-0") == b"w", name
                await store.set(f"{name}-after", b"a")
                idle_writes[f"{name}-after"] = b"a"
            # and the busy stores go on writing without being recreated
            counts = {name: load.writes(name) for name in busy}
            await _eventually(lambda: all(load.writes(name) >= counts[name] + 20 for name in busy), "writes")
        finally:
            crashed = await load.stop()
        assert crashed == []
        assert load.wrong == []
        for name in busy:
            # after the restart a loop saw at most the failure of the call in flight at that moment
            assert len(load.failures[name]) <= failures_during[name] + 1, name
            assert set(before[name]) <= set(load.confirmed[name])
        check = stores["psycopg-borrowed-idle"]
        for key, value in [*idle_writes.items(), *(i for c in load.confirmed.values() for i in c.items())]:
            assert await check.get(key) == value, key
    finally:
        await drop_table(stores["asyncpg-owned-busy"])
        for name, store in stores.items():
            await close_store(store, "borrowed" if "borrowed" in name else "owned")


def _mysql_connection_ids(store: SQLStore) -> list[int]:
    """Record the server id of every connection the store's engine opens from now on."""
    ids: list[int] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        ids.append(int(cursor.fetchone()[0]))
        cursor.close()

    event.listen(store.engine.sync_engine, "connect", on_connect)
    return ids


def _processlist_query(ids: list[int]) -> Any:
    return text("SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN :ids").bindparams(
        bindparam("ids", value=list(ids), expanding=True)
    )


async def _kill_connections(url: str, ids: list[int]) -> int:
    """``KILL`` from a session of its own those of ``ids`` that are alive; wait until they are gone."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            alive = [row[0] for row in (await conn.execute(_processlist_query(ids))).all()]
            for connection_id in alive:
                try:
                    await conn.execute(text(f"KILL {int(connection_id)}"))
                except DBAPIError as error:  # closed in between by its pool: fine
                    if "Unknown thread id" not in str(error):
                        raise
            for _ in range(500):
                if not alive or not (await conn.execute(_processlist_query(alive))).all():
                    return len(alive)
                await asyncio.sleep(0.01)
        raise AssertionError(f"connections {alive} were not killed")
    finally:
        await engine.dispose()


async def _check_every_operation(store: SQLStore) -> dict[str, Callable[[], Awaitable[None]]]:
    """Each operation with the result it must have, on a key set up for it."""
    await store.set("k", b"v", expires_in=100)

    async def set_() -> None:
        await store.set("k", b"v2", expires_in=100)
        assert await store.get("k") == b"v2"

    async def get() -> None:
        assert await store.get("k") in (b"v", b"v2")

    async def renew() -> None:
        assert await store.get("k", renew_for=500) in (b"v", b"v2")
        assert await store.expires_in("k") == 500

    async def exists() -> None:
        assert await store.exists("k") is True

    async def expires_in() -> None:
        assert await store.expires_in("k") in (100, 500)

    async def delete() -> None:
        await store.delete("k")
        assert await store.get("k") is None
        await store.set("k", b"v", expires_in=100)

    async def delete_all() -> None:
        await store.with_namespace("child").set("c", b"c")
        await store.with_namespace("child").delete_all()
        assert await store.with_namespace("child").get("c") is None

    async def delete_expired() -> None:
        await store.set("gone", b"g", expires_in=-1)
        assert await store.delete_expired() == 1

    return {
        "set": set_,
        "get": get,
        "renew": renew,
        "exists": exists,
        "expires_in": expires_in,
        "delete": delete,
        "delete_all": delete_all,
        "delete_expired": delete_expired,
    }


@pytest.mark.parametrize("dialect", ["asyncmy"], indirect=True)
@within(90)
async def test_killed_mariadb_connections_are_replaced_transparently(
    make_store: Callable[..., SQLStore], url: str
) -> None:
    store = make_store()
    ids = _mysql_connection_ids(store)
    await create_table(store)
    try:
        operations = await _check_every_operation(store)
        for name, operation in operations.items():
            # several pooled connections, then all of them killed: the very next call must work
            await asyncio.gather(*(store.exists(f"warm-{i}") for i in range(4)))
            assert await _kill_connections(url, ids) >= 1, name
            await operation()
            await operation()

        # killed in the middle of a concurrent load: not one call fails
        stop = False
        calls = 0

        async def worker(worker_id: int) -> None:
            nonlocal calls
            n = 0
            while not stop:
                n += 1
                await store.set(f"load-{worker_id}", str(n), expires_in=100)
                assert await store.get(f"load-{worker_id}", renew_for=200) == str(n).encode()
                calls += 2

        workers = [asyncio.ensure_future(worker(i)) for i in range(8)]
        try:
            for _ in range(5):
                target = calls + 40
                await _eventually(
                    lambda target=target: calls >= target or any(w.done() for w in workers), "load calls"
                )
                await _kill_connections(url, ids)
        finally:
            stop = True
            await asyncio.gather(*workers)  # re-raises the first failure of a worker
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


@within(60)
async def test_table_dropped_under_a_running_store_says_to_migrate_then_works_when_recreated(
    store: SQLStore,
) -> None:
    await store.set("k", b"v", expires_in=100)
    assert await store.get("k", renew_for=100) == b"v"
    await drop_table(store)
    for call in (
        lambda: store.get("k"),
        lambda: store.get("k", renew_for=10),
        lambda: store.set("k", b"v"),
        lambda: store.exists("k"),
        lambda: store.delete("k"),
        store.delete_all,
        store.delete_expired,
    ):
        with pytest.raises(TableMissingError, match="python -m sqlsession upgrade"):
            await call()
    await create_table(store)  # the migrations run again: the same store works
    assert await store.get("k") is None
    await store.set("k", b"v2", expires_in=100)
    assert await store.get("k", renew_for=200) == b"v2"
    assert await store.expires_in("k") == 200


# -- which failures are run again -------------------------------------------------------------------

# statements that make the server itself raise an error of the given kind, on the store's connection
_SERVER_ERRORS = {
    "deadlock": {
        "postgresql": "DO $$ BEGIN RAISE EXCEPTION 'deadlock (test)' USING ERRCODE = '40P01'; END $$",
        "mysql": "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found (test)'",
    },
    "other": {
        "postgresql": "DO $$ BEGIN RAISE EXCEPTION 'check violation (test)' USING ERRCODE = '23514'; END $$",
        "mysql": "SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 1644, MESSAGE_TEXT = 'failure (test)'",
    },
}


class _FailFirst:
    """Makes the store's next ``times`` statements fail with a real server error, raised on the
    connection the statement was about to run on, from SQLAlchemy's ``before_cursor_execute`` (with
    the listener, the store runs its statements through Core). The driver fast path's retries:
    ``test_retries.py``."""

    def __init__(self, store: SQLStore, failing_sql: str, times: int) -> None:
        self.failing_sql, self.left, self.raised = failing_sql, times, 0
        self.engine = store.engine.sync_engine
        event.listen(self.engine, "before_cursor_execute", self._before_cursor_execute)

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before_cursor_execute)

    def _due(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.raised += 1
        return True

    def _before_cursor_execute(self, _conn: Any, cursor: Any, *_: Any) -> None:
        if self._due():
            cursor.execute(self.failing_sql)


def _server_error_sql(store: SQLStore, kind: str) -> str:
    dialect = store.engine.dialect.name
    return _SERVER_ERRORS[kind]["mysql" if dialect in ("mysql", "mariadb") else "postgresql"]


# SQLite has no deadlock victims: a busy database waits for busy_timeout
_SERVERS = pytest.mark.parametrize("dialect", ["asyncpg", "psycopg", "asyncmy"], indirect=True)


@_SERVERS
@within(30)
async def test_deadlock_victim_statement_is_run_again_up_to_the_bound(store: SQLStore) -> None:
    # every operation on every driver and both paths: test_retries.py (PostgreSQL); here MySQL too (Core)
    failing = _server_error_sql(store, "deadlock")
    times = ROLLED_BACK_ATTEMPTS - 1
    await store.set("k", b"v", expires_in=100)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "set": lambda: store.set("k", b"v2", expires_in=100),
        "get": lambda: store.get("k"),
        "renew": lambda: store.get("k", renew_for=300),
        "delete_expired": store.delete_expired,
    }
    for name, call in calls.items():
        injected = _FailFirst(store, failing, times=times)
        try:
            await call()  # the deadlock victim is run again, and succeeds
        finally:
            injected.remove()
        assert injected.raised == times, name
    assert await store.get("k") == b"v2"
    assert await store.expires_in("k") == 300

    # as often as the bound: the last failure is the caller's, as a StoreError
    injected = _FailFirst(store, failing, times=ROLLED_BACK_ATTEMPTS + 1)
    try:
        with pytest.raises(StoreError, match=r"(?i)deadlock"):
            await store.set("k", b"v3")
    finally:
        injected.remove()
    assert injected.raised == ROLLED_BACK_ATTEMPTS
    assert await store.get("k") == b"v2"


@_SERVERS
@within(30)
async def test_other_server_errors_are_not_run_again(store: SQLStore) -> None:
    injected = _FailFirst(store, _server_error_sql(store, "other"), times=1)
    try:
        with pytest.raises(StoreError, match=r"\(test\)"):
            await store.set("k", b"v")
    finally:
        injected.remove()
    assert injected.raised == 1
    assert await store.get("k") is None  # the statement never ran
    await store.set("k", b"v")  # and the store goes on
    assert await store.get("k") == b"v"


@_SERVERS
@pytest.mark.parametrize("pre_ping", [False, True])
@within(30)
async def test_pooled_connections_closed_behind_the_stores_back_are_replaced(
    url: str, engine_mode: str, pre_ping: bool
) -> None:
    # without pre-ping the failed statement runs again on a new connection; with it, the pool
    # replaces the dead connection at checkout
    store = borrowed_or_owned(url, engine_mode, {"pool_pre_ping": pre_ping}, table_name=unique_table())
    driver_connections: list[Any] = []
    event.listen(store.engine.sync_engine, "connect", lambda dbapi, _record: driver_connections.append(dbapi))
    await create_table(store)
    try:
        await store.set("k", b"v", expires_in=100)
        for round_ in range(3):
            await asyncio.gather(*(store.exists(f"warm-{i}") for i in range(4)))  # several in the pool
            for connection in driver_connections:
                closing = connection.driver_connection.close()
                if asyncio.iscoroutine(closing):
                    await closing
            # each operation is the first on a dead connection somewhere: all of them succeed
            assert await store.get("k") == b"v", round_
            assert await store.get("k", renew_for=200 + round_) == b"v"
            await store.set("k2", b"w")
            assert await store.exists("k2") is True
            assert await store.expires_in("k") == 200 + round_
            await store.delete("k2")
            assert await store.delete_expired() == 0
    finally:
        await drop_table(store)
        await close_store(store, engine_mode)


# -- cleanup beside a renewal in flight -------------------------------------------------------------

_LOCK_WAITS = {
    "postgresql": (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE%'"
    ),
    "mysql": "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
}


@pytest.mark.parametrize("dialect", ["asyncpg", "psycopg", "asyncmy"])
@within(60)
async def test_cleanup_never_deletes_a_row_renewed_while_it_waits(
    dialect: str, tmp_path: Path, clock: Clock
) -> None:
    # an expired session is renewed by a transaction that has not committed yet when the cleanup
    # reads its batch; the cleanup waits for that row, and must then see it live and keep it
    url = dialect_url(dialect, tmp_path)
    store = SQLStore.with_url(url, table_name=unique_table(), clock=clock)
    await create_table(store)
    other = create_async_engine(url)
    try:
        await store.set("renewed", b"session", expires_in=10)
        await store.set("gone", b"old", expires_in=10)
        clock.advance(20)  # both expired by the store's clock
        renewed_until = round((clock.now + 3600) * 1_000_000)
        async with other.connect() as renewal:
            await renewal.execute(
                text(f"UPDATE {store.table.name} SET expires_at = :until WHERE key_hash = :kh"),
                {"until": renewed_until, "kh": key_digest("renewed")},
            )  # uncommitted: the row is locked, the cleanup's snapshot sees it expired
            cleanup = asyncio.create_task(store.delete_expired())
            async with other.connect() as watcher:
                waits = text(_LOCK_WAITS[store.engine.dialect.name])
                while not (await watcher.execute(waits)).scalar_one():
                    assert not cleanup.done(), "the cleanup did not wait for the locked row"
                    await asyncio.sleep(0.01)
            await renewal.commit()
        deleted = await cleanup
        assert await store.get("renewed") == b"session"
        assert await store.get("gone") is None
        assert deleted == 1
    finally:
        await other.dispose()
        await drop_table(store)
        await store.close()


@pytest.mark.parametrize("dialect", ["sqlite", "asyncmy"], indirect=True)
async def test_cleanup_reads_its_batches_through_the_expiry_index(url: str, dialect: str) -> None:
    """``delete_expired`` finds its batch through the ``expires_at`` index, not by walking the
    namespace's primary key range past its live rows (again for every batch), which is what
    SQLite's planner and MariaDB's optimizer chose once their statistics showed many rows expired."""
    engine = create_async_engine(url)
    store = SQLStore(engine, table_name=unique_table(), namespace="sessions")
    index = f"ix_{store.table.name}_expires_at"
    plans: list[list[dict[str, Any]]] = []

    def explain_first_delete(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE") and not plans:
            explain = "EXPLAIN QUERY PLAN" if dialect == "sqlite" else "EXPLAIN"
            cursor.execute(f"{explain} {statement}", parameters)  # the plan it is about to run
            names = [column[0] for column in cursor.description]
            plans.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])

    try:
        await create_table(store)
        # half of 20,000 rows expired (a table too small lets MariaDB read it all, rightly)
        namespace, now = encode_namespace(store.namespace_path), round(time.time() * 1e6)
        rows = [
            {"namespace": namespace, "key_hash": key_digest(f"k{i}"), "value": b"v", "expires_at": now}
            for i in range(20_000)
        ]
        for i, row in enumerate(rows):
            row["expires_at"] += -1_000_000 if i % 2 else 3_600_000_000
        async with engine.begin() as conn:
            await conn.execute(insert(store.table), rows)
        analyze = "ANALYZE" if dialect == "sqlite" else f"ANALYZE TABLE {store.table.name}"
        async with engine.begin() as conn:
            await conn.execute(text(analyze))
        event.listen(engine.sync_engine, "before_cursor_execute", explain_first_delete)
        assert await store.delete_expired() == 10_000
        if dialect == "sqlite":
            details = " | ".join(str(row["detail"]) for row in plans[0])
            assert f"INDEX {index}" in details, details
            assert "namespace>?" not in details, details
        else:  # one table read through one index: the expiry index
            assert [row["key"] for row in plans[0]] == [index], plans[0]
    finally:
        await drop_table(store)
        await engine.dispose()
