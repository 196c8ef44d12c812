"""Serialization failures and deadlocks: retried with jittered back-off, a bounded number of times.

The server itself raises the error, on the store's own statements, on the machine's PostgreSQL: the
test's table has row-level security with a policy that calls a function, and that function raises
SQLSTATE 40001 while a sequence (which no rollback undoes) says to fail. The store connects as a
role of the test's own (``role`` set at connection start-up), because superusers and the table's
owner bypass row-level security. Each failed attempt of a statement takes exactly one number from
the sequence (the first evaluation raises), so the sequence also counts the attempts. Every
operation is covered: each one's statement reads, writes or deletes at least one row of the table.
The table, function, sequence and role are removed at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sqlsession import SQLStore, StoreError, _execution
from sqlsession._execution import ROLLED_BACK_ATTEMPTS

from ._support import within
from .conftest import dialect_url, unique_table

DRIVERS = ("asyncpg", "psycopg")


@dataclass
class Injector:
    """Makes the next ``n`` attempts of the store's statements fail with SQLSTATE 40001."""

    admin: AsyncEngine
    sequence: str

    async def fail_next(self, n: int) -> None:
        async with self.admin.connect() as conn:
            await conn.execute(text("SELECT setval(:seq, :value, true)"), {"seq": self.sequence, "value": -n})

    async def attempts_failed_and_left(self) -> int:
        """How far the sequence moved: ``<= 0`` is the failures still armed, ``> 0`` that all of
        them were consumed and the statement then ran."""
        async with self.admin.connect() as conn:
            return int((await conn.execute(text(f'SELECT last_value FROM "{self.sequence}"'))).scalar_one())


def _role_connect_args(driver: str, role: str) -> dict[str, Any]:
    if driver == "asyncpg":
        return {"server_settings": {"role": role}}
    return {"options": f"-c role={role}"}


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["native", "core"])
def path(request: pytest.FixtureRequest) -> str:
    """``native``: ``with_url``, statements on the driver's connection; ``core``: an engine with a
    cursor-execute listener, statements through SQLAlchemy Core."""
    return str(request.param)


@pytest.fixture
async def injected(driver: str, path: str, tmp_path: Path) -> AsyncIterator[tuple[SQLStore, Injector]]:
    """A store on a table whose statements fail with 40001 when ``Injector.fail_next`` says so."""
    url = dialect_url(driver, tmp_path)  # skips (fails in CI) when the server is down
    admin_url = make_url(url).set(drivername="postgresql+asyncpg")
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    table = unique_table()
    role, sequence, function = f"sqlsession_{table}", f"{table}_attempts", f"{table}_inject"
    connect_args = _role_connect_args(driver, role)
    if path == "native":
        store = SQLStore.with_url(url, table_name=table, engine_options={"connect_args": connect_args})
    else:
        engine = create_async_engine(url, connect_args=connect_args)
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *_: None)
        store = SQLStore(engine, table_name=table)
    try:
        async with admin.connect() as conn:
            await conn.run_sync(store.table.metadata.create_all)
            for statement in (
                f'CREATE ROLE "{role}" NOLOGIN',
                f'CREATE SEQUENCE "{sequence}" MINVALUE -1000000 START 1',
                f"""CREATE FUNCTION "{function}"() RETURNS boolean LANGUAGE plpgsql VOLATILE
                    SECURITY DEFINER SET search_path FROM CURRENT AS $$
                    BEGIN
                        IF nextval('"{sequence}"') <= 0 THEN
                            RAISE EXCEPTION 'could not serialize access (test)' USING ERRCODE = '40001';
                        END IF;
                        RETURN true;
                    END $$""",
                f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
                f'CREATE POLICY "{table}_inject" ON "{table}"'
                f' USING ("{function}"()) WITH CHECK ("{function}"())',
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO "{role}"',
            ):
                await conn.execute(text(statement))
        yield store, Injector(admin, sequence)
    finally:
        await store.close()
        if path == "core":
            await store.engine.dispose()
        async with admin.connect() as conn:
            for statement in (
                f'DROP TABLE IF EXISTS "{table}"',
                f'DROP FUNCTION IF EXISTS "{function}"()',
                f'DROP SEQUENCE IF EXISTS "{sequence}"',
                f'DROP ROLE IF EXISTS "{role}"',
            ):
                await conn.execute(text(statement))
        await admin.dispose()


def _operations(store: SQLStore) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every operation, each with what it returns when it succeeds (with ``_prepare`` done first)."""
    return {
        "set": lambda: store.set("k", b"v2", expires_in=100),
        "get": lambda: store.get("k"),
        "get+renew": lambda: store.get("k", renew_for=300),
        "exists": lambda: store.exists("k"),
        "expires_in": lambda: store.expires_in("k"),
        "delete_expired": store.delete_expired,
        "delete": lambda: store.delete("k"),
        "delete_all": store.delete_all,
    }


EXPECTED = {
    "set": None,
    "get": b"v",
    "get+renew": b"v",
    "exists": True,
    "expires_in": 100,
    "delete_expired": 1,
    "delete": None,
    "delete_all": None,
}


async def _prepare(store: SQLStore) -> None:
    """Rows for every operation to touch: the key, an expired key, a second key for delete_all."""
    await store.set("k", b"v", expires_in=100)
    await store.set("expired", b"x", expires_in=-1)
    await store.set("other", b"y")


@within(60)
async def test_every_operation_succeeds_after_two_serialization_failures(
    injected: tuple[SQLStore, Injector],
) -> None:
    store, injector = injected
    for name, call in _operations(store).items():
        await _prepare(store)
        await injector.fail_next(2)
        assert await call() == EXPECTED[name], name
        assert await injector.attempts_failed_and_left() > 0, f"{name}: the failures were not all raised"
    assert await store.exists("other") is False  # delete_all ran, after its two failures


@within(60)
async def test_every_operation_gives_up_with_store_error_after_the_bound(
    injected: tuple[SQLStore, Injector],
) -> None:
    store, injector = injected
    await _prepare(store)
    armed = ROLLED_BACK_ATTEMPTS + 5
    for name, call in _operations(store).items():
        await injector.fail_next(armed)
        with pytest.raises(StoreError, match=r"could not serialize access \(test\)"):
            await call()
        attempts = await injector.attempts_failed_and_left() + armed
        assert attempts == ROLLED_BACK_ATTEMPTS, name
    await injector.fail_next(0)
    assert await store.get("k") == b"v"  # nothing was half-done, and the store goes on


def _store_of_one_connection(store: SQLStore, path: str) -> SQLStore:
    """A store on ``store``'s table and role whose engine has one connection and keeps none checked
    out between calls: what its pool has checked out is what calls hold."""
    url = store.engine.url.render_as_string(hide_password=False)
    table = store.table.name
    options: dict[str, Any] = {
        "connect_args": _role_connect_args("asyncpg", f"sqlsession_{table}"),
        "pool_size": 1,
        "max_overflow": 0,
    }
    if path == "native":
        return SQLStore.with_url(url, table_name=table, engine_options=options)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *_: None)
    return SQLStore(engine, table_name=table)


@pytest.mark.parametrize("driver", ["asyncpg"], indirect=True)
@pytest.mark.parametrize("path", ["native", "core"], indirect=True)
@within(60)
async def test_a_call_cancelled_while_it_waits_to_retry_holds_no_connection(
    injected: tuple[SQLStore, Injector], path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, injector = injected
    await _prepare(store)
    store = _store_of_one_connection(store, path)
    try:
        await _cancelled_before_its_retry(store, injector, monkeypatch)
    finally:
        await store.close()
        await store.engine.dispose()


async def _cancelled_before_its_retry(
    store: SQLStore, injector: Injector, monkeypatch: pytest.MonkeyPatch
) -> None:
    await injector.fail_next(1)
    pool = store.engine.sync_engine.pool
    call = asyncio.ensure_future(store.get("k"))
    held: list[int] = []  # connections checked out when the call began to wait
    real_sleep = asyncio.sleep

    async def back_off(delay: float, *args: Any) -> Any:
        # the store waits before a retry with asyncio.sleep: there, the call is cancelled
        if asyncio.current_task() is call:
            held.append(pool.checkedout())  # type: ignore[attr-defined]
            call.cancel()
        return await real_sleep(delay, *args)

    monkeypatch.setattr(asyncio, "sleep", back_off)
    with pytest.raises(asyncio.CancelledError):
        await call
    monkeypatch.undo()
    assert held == [0]  # it waited holding no connection
    assert await injector.attempts_failed_and_left() == 0  # the failure was raised; no retry ran
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await store.get("k") == b"v"


def test_back_off_is_bounded_jittered_and_grows() -> None:
    # a disconnect is run again once, at once; a rollback up to ROLLED_BACK_ATTEMPTS - 1 times, each
    # after a random wait below a cap that doubles from BACKOFF_FIRST up to BACKOFF_MAX
    attempts = _execution.Attempts()
    assert attempts.next_delay(disconnect=True, rolled_back=False) == 0.0
    assert attempts.next_delay(disconnect=True, rolled_back=False) is None
    assert _execution.Attempts().next_delay(disconnect=False, rolled_back=False) is None
    delays: list[list[float]] = []
    for _ in range(200):
        attempts = _execution.Attempts()
        run = [attempts.next_delay(disconnect=False, rolled_back=True) for _ in range(ROLLED_BACK_ATTEMPTS)]
        assert run[-1] is None
        delays.append([d for d in run if d is not None])
    assert all(len(run) == ROLLED_BACK_ATTEMPTS - 1 for run in delays)
    for retry in range(ROLLED_BACK_ATTEMPTS - 1):
        cap = min(_execution.BACKOFF_MAX, _execution.BACKOFF_FIRST * 2**retry)
        waits = [run[retry] for run in delays]
        assert all(0 <= wait <= cap for wait in waits)
        assert max(waits) > cap / 2 and min(waits) < cap / 2  # spread over the range: jitter
