"""``renew_threshold``: a renewal that would move the expiry by little is a read, not a write.

When a renewal writes is decided in Python: those tests run once, on SQLite. The statements it
writes with (a read, then a compare-and-set on the expiry read) run on every dialect. Time moves by
the injected clock, never by sleeping.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore, SQLStorePlugin

from ._support import BeforeStatement, StatementLog, raw_rows, within
from .conftest import Clock, create_table, drop_table, owned_only, sqlite_only, unique_table

R = 100  # renew_for, seconds
T = 0.1  # renew_threshold


@pytest.fixture
async def lazy(make_store: Callable[..., SQLStore], clock: Clock) -> AsyncIterator[SQLStore]:
    """A store with ``renew_threshold=0.1`` on a fresh table of its own; the clock on a whole second."""
    clock.now = float(round(clock.now))
    store = make_store(renew_threshold=T)
    await create_table(store)
    try:
        yield store
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


def verbs(log: StatementLog) -> list[str]:
    return [sql.lstrip().split(None, 1)[0].upper() for sql, _ in log.statements]


async def stored_expiry(store: SQLStore) -> int | None:
    """The ``expires_at`` (microseconds) of the store's only row, as stored."""
    (row,) = await raw_rows(store)
    return row[3]


# -- the threshold --------------------------------------------------------------------------------


@sqlite_only
@owned_only
async def test_renewal_within_the_threshold_is_one_read_and_no_write(lazy: SQLStore, clock: Clock) -> None:
    await lazy.set("session", b"data", expires_in=R)
    before = await stored_expiry(lazy)
    clock.advance(R * T)  # renewing now would move the expiry by exactly R * t: not more
    with StatementLog(lazy) as log:
        assert await lazy.get("session", renew_for=R) == b"data"
    assert verbs(log) == ["SELECT"]
    assert await stored_expiry(lazy) == before
    assert await lazy.expires_in("session") == R * (1 - T)


@owned_only
async def test_renewal_beyond_the_threshold_writes_the_new_expiry(lazy: SQLStore, clock: Clock) -> None:
    await lazy.set("session", b"data", expires_in=R)
    clock.advance(R * T + 0.001)
    with StatementLog(lazy) as log:
        assert await lazy.get("session", renew_for=R) == b"data"
    assert verbs(log) == ["SELECT", "UPDATE"]
    assert await stored_expiry(lazy) == round(clock.now * 1_000_000) + R * 1_000_000
    assert await lazy.expires_in("session") == R


@sqlite_only
@owned_only
async def test_renewal_shortens_an_expiry_longer_than_renew_for(lazy: SQLStore, clock: Clock) -> None:
    # Litestar's renewal sets the expiry to now + renew_for, also when that is sooner
    await lazy.set("session", b"data", expires_in=R + 1)
    with StatementLog(lazy) as log:
        assert await lazy.get("session", renew_for=R) == b"data"
    assert verbs(log) == ["SELECT", "UPDATE"]
    assert await lazy.expires_in("session") == R


@sqlite_only
@owned_only
@within(60)
async def test_after_a_renewal_the_key_expires_in_between_r_times_1_minus_t_and_r(
    lazy: SQLStore, clock: Clock
) -> None:
    rng = random.Random(11)
    await lazy.set("session", b"data", expires_in=R)
    writes = 0
    for _ in range(40):
        clock.advance(rng.uniform(0, 2 * R * T))
        with StatementLog(lazy) as log:
            assert await lazy.get("session", renew_for=R) == b"data"
        writes += "UPDATE" in verbs(log)
        expires_at = await stored_expiry(lazy)
        assert expires_at is not None
        left = expires_at / 1_000_000 - clock.now
        assert R * (1 - T) - 1e-6 <= left <= R + 1e-6
    assert 0 < writes < 40  # both paths were taken


@sqlite_only
@owned_only
async def test_a_key_without_expiry_keeps_none_and_is_not_written(lazy: SQLStore) -> None:
    await lazy.set("forever", b"data")
    with StatementLog(lazy) as log:
        assert await lazy.get("forever", renew_for=R) == b"data"
    assert verbs(log) == ["SELECT"]
    assert await lazy.expires_in("forever") == -1


@sqlite_only
@owned_only
async def test_an_expired_or_missing_key_is_not_renewed(lazy: SQLStore, clock: Clock) -> None:
    await lazy.set("session", b"data", expires_in=R)
    clock.advance(R)
    with StatementLog(lazy) as log:
        assert await lazy.get("session", renew_for=R) is None
        assert await lazy.get("missing", renew_for=R) is None
    assert verbs(log) == ["SELECT", "SELECT"]
    assert await lazy.exists("session") is False


@sqlite_only
@owned_only
async def test_renew_for_in_any_unit_uses_the_threshold(lazy: SQLStore, clock: Clock) -> None:
    units: list[Any] = [R, float(R), timedelta(seconds=R)]
    for renew_for in units:
        await lazy.set(repr(renew_for), b"data", expires_in=R)
    clock.advance(1)
    for renew_for in units:
        with StatementLog(lazy) as log:
            assert await lazy.get(repr(renew_for), renew_for=renew_for) == b"data"
        assert verbs(log) == ["SELECT"], renew_for


@sqlite_only
@owned_only
async def test_namespaces_inherit_the_threshold(lazy: SQLStore, clock: Clock) -> None:
    child = lazy.with_namespace("sessions")
    assert child.renew_threshold == T
    await child.set("session", b"data", expires_in=R)
    clock.advance(1)
    with StatementLog(child) as log:
        assert await child.get("session", renew_for=R) == b"data"
    assert verbs(log) == ["SELECT"]


# -- the default: Litestar's semantics, today's statements -----------------------------------------


@owned_only
async def test_threshold_zero_writes_on_every_renewal_with_the_same_statements(
    store: SQLStore, make_store: Callable[..., SQLStore], clock: Clock, dialect: str
) -> None:
    explicit = make_store(renew_threshold=0.0)
    try:
        assert store.renew_threshold == 0.0
        logs = []
        for each in (store, explicit):
            await each.set("session", b"data", expires_in=R)
            clock.advance(0.5)
            with StatementLog(each) as log:
                assert await each.get("session", renew_for=R) == b"data"
            assert await stored_expiry(each) == round(clock.now * 1_000_000) + R * 1_000_000
            logs.append([sql for sql, _ in log.statements])
        assert logs[0] == logs[1]
        # one UPDATE ... RETURNING where the dialect has it; MySQL: SELECT, then compare-and-set
        assert [sql.split(None, 1)[0].upper() for sql in logs[0]] == (
            ["SELECT", "UPDATE"] if dialect == "asyncmy" else ["UPDATE"]
        )
    finally:
        await explicit.__aexit__(None, None, None)


# -- concurrency: the write is a compare-and-set on the version read --------------------------------


@owned_only
async def test_renewal_never_resurrects_a_key_deleted_after_its_read(
    lazy: SQLStore, make_store: Callable[..., SQLStore], clock: Clock
) -> None:
    other = make_store()
    try:
        await lazy.set("session", b"data", expires_in=R)
        clock.advance(R / 2)  # far beyond the threshold: the renewal writes
        with BeforeStatement(lazy, "UPDATE", lambda: other.delete("session")) as hook:
            assert await lazy.get("session", renew_for=R) == b"data"  # read before the delete
        assert hook.ran
        assert await raw_rows(lazy) == []
        assert await lazy.get("session") is None
    finally:
        await other.__aexit__(None, None, None)


@owned_only
async def test_renewal_leaves_a_key_replaced_after_its_read_as_written(
    lazy: SQLStore, make_store: Callable[..., SQLStore], clock: Clock
) -> None:
    other = make_store()
    try:
        await lazy.set("session", b"old", expires_in=R)
        clock.advance(R / 2)
        with BeforeStatement(lazy, "UPDATE", lambda: other.set("session", b"new", expires_in=7)) as hook:
            assert await lazy.get("session", renew_for=R) == b"old"
        assert hook.ran
        assert await lazy.get("session") == b"new"
        assert await lazy.expires_in("session") == 7  # not renewed: another version
    finally:
        await other.__aexit__(None, None, None)


# -- arguments ------------------------------------------------------------------------------------

BAD_THRESHOLDS = [
    (1, ValueError),
    (1.0, ValueError),
    (-0.01, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    ("0.1", TypeError),
    (True, TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize(("threshold", "error"), BAD_THRESHOLDS)
def test_bad_renew_threshold_is_refused_everywhere(threshold: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="renew_threshold"):
        SQLStore.with_url("sqlite+aiosqlite://", renew_threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(error, match="renew_threshold"):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), renew_threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(error, match="renew_threshold"):
        SQLStorePlugin("sqlite+aiosqlite:///:memory:", renew_threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [0, 0.0, 0.5, 0.999])
def test_good_renew_threshold_is_kept(threshold: float) -> None:
    assert SQLStore.with_url("sqlite+aiosqlite://", renew_threshold=threshold).renew_threshold == threshold
    engine = create_async_engine("sqlite+aiosqlite://")
    assert SQLStore(engine, renew_threshold=threshold).renew_threshold == threshold
    plugin = SQLStorePlugin("sqlite+aiosqlite:///:memory:", renew_threshold=threshold)
    assert plugin.store_for("sessions").renew_threshold == threshold


async def test_renewal_with_a_threshold_never_brings_back_a_key_that_expired_after_the_read(
    url: str,
) -> None:
    # the store's clock, call by call: the set, then the get's read (1 s before expiry), then the
    # get's write (1 s after it: the key expired between the two), then the last read
    times = iter([1000.0, 1009.0, 1011.0, 1011.0])
    store = SQLStore.with_url(url, table_name=unique_table(), clock=lambda: next(times), renew_threshold=0.5)
    await create_table(store)
    try:
        await store.set("k", b"v", expires_in=10)
        assert await store.get("k", renew_for=100) == b"v"  # live when it was read
        assert await store.get("k") is None  # and not brought back by the renewal
    finally:
        await drop_table(store)
        await store.close()


@sqlite_only  # checked before any SQL
async def test_renew_for_out_of_range_is_a_value_error_like_set(url: str) -> None:
    store = SQLStore.with_url(url, table_name=unique_table())
    await create_table(store)
    try:
        await store.set("k", b"v", expires_in=10)
        with pytest.raises(ValueError, match="renew_for is out of range"):
            await store.get("k", renew_for=timedelta.max)
        assert await store.get("k") == b"v"
    finally:
        await drop_table(store)
        await store.close()
