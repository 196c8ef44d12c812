"""Odd and hostile arguments: a clear ``TypeError``/``ValueError``, no statement sent, nothing written;
checked once, before any SQL.

Arguments are checked in Python before any SQL is built, whatever the dialect: those tests run once,
on SQLite (or on no database at all). "Nothing sent" is observed, not inferred: ``StatementLog``
records every statement the store sends, and each test also shows that the log does see the
statement of a valid call. That a value of exactly the size limit is stored on every server with its
default settings is part of the contract (``test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore

from ._support import StatementLog, raw_rows, value_of, within
from .conftest import owned_only, sqlite_only

BAD_KEYS: list[object] = [b"k", bytearray(b"k"), None, 1, 1.5, object(), ["k"], ("k",)]


def _key_calls(store: SQLStore, key: Any) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "set": lambda: store.set(key, b"v"),
        "get": lambda: store.get(key),
        "renew": lambda: store.get(key, renew_for=10),
        "exists": lambda: store.exists(key),
        "expires_in": lambda: store.expires_in(key),
        "delete": lambda: store.delete(key),
    }


@sqlite_only
@owned_only
@within(30)
async def test_non_str_keys_raise_type_error_for_every_operation_and_send_nothing(store: SQLStore) -> None:
    with StatementLog(store) as log:
        for key in BAD_KEYS:
            for name, call in _key_calls(store, key).items():
                with pytest.raises(TypeError, match="key must be a str"):
                    await call()
                assert log.statements == [], (key, name)
        await store.exists("k")
    assert len(log.statements) == 1  # the log sees a valid call
    assert await raw_rows(store) == []


BAD_VALUES: list[object] = [bytearray(b"v"), memoryview(b"v"), 1, None, 1.5, object(), [b"v"], {"v": 1}]


@sqlite_only
@owned_only
@within(30)
async def test_values_other_than_str_or_bytes_raise_type_error_and_change_nothing(store: SQLStore) -> None:
    await store.set("k", b"before", expires_in=50)
    with StatementLog(store) as log:
        for value in BAD_VALUES:
            with pytest.raises(TypeError, match="value must be str or bytes"):
                await store.set("k", value)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="value must be str or bytes"):
                await store.set("new", value)  # type: ignore[arg-type]
        assert log.statements == []
        await store.set("other", b"v")
    assert len(log.statements) == 1  # the log sees a valid call
    assert await store.get("k") == b"before"
    assert await store.expires_in("k") == 50
    assert await store.exists("new") is False


@sqlite_only
@owned_only
@within(30)
async def test_str_value_utf8_cannot_encode_raises_value_error_and_changes_nothing(store: SQLStore) -> None:
    await store.set("k", "before")
    with StatementLog(store) as log:
        with pytest.raises(ValueError):  # UnicodeEncodeError
            await store.set("k", "lone surrogate \ud800")
        assert log.statements == []
        await store.set("other", "encodable")
    assert len(log.statements) == 1
    assert await store.get("k") == b"before"


ODD_DURATIONS: list[tuple[object, type[Exception]]] = [
    ("10", TypeError),
    (b"10", TypeError),
    (Decimal("10"), TypeError),
    (Fraction(1, 2), TypeError),
    (1j, TypeError),
    (object(), TypeError),
    (True, TypeError),
    (False, TypeError),
    ([1], TypeError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (float("-inf"), ValueError),
]


@sqlite_only
@owned_only
@within(30)
async def test_odd_durations_raise_and_leave_an_existing_key_as_it_was(store: SQLStore) -> None:
    await store.set("k", b"before", expires_in=50)
    with StatementLog(store) as log:
        for duration, error in ODD_DURATIONS:
            with pytest.raises(error, match="expires_in"):
                await store.set("k", b"after", expires_in=duration)  # type: ignore[arg-type]
            with pytest.raises(error, match="expires_in"):
                await store.set("new", b"after", expires_in=duration)  # type: ignore[arg-type]
            with pytest.raises(error, match="renew_for"):
                await store.get("k", renew_for=duration)  # type: ignore[arg-type]
            assert log.statements == [], duration
        await store.exists("k")
    assert len(log.statements) == 1
    assert await store.get("k") == b"before"
    assert await store.expires_in("k") == 50
    assert await store.exists("new") is False


@sqlite_only
@owned_only
@within(30)
async def test_out_of_range_expires_in_raises_value_error_and_writes_nothing(store: SQLStore) -> None:
    await store.set("k", b"before", expires_in=50)
    with StatementLog(store) as log:
        for expires_in in (10**30, timedelta.max, 1e300):
            with pytest.raises(ValueError, match="expires_in"):
                await store.set("k", b"after", expires_in=expires_in)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="expires_in"):
                await store.set("new", b"after", expires_in=expires_in)  # type: ignore[arg-type]
            assert log.statements == [], expires_in
    assert await store.get("k") == b"before"
    assert await store.expires_in("k") == 50
    assert await store.exists("new") is False


@sqlite_only
@owned_only
async def test_negative_renew_for_raises_value_error_and_changes_nothing(store: SQLStore) -> None:
    await store.set("k", b"v", expires_in=50)
    with StatementLog(store) as log:
        for renew_for in (-1, -0.5, -0.001, timedelta(seconds=-1), timedelta(microseconds=-1)):
            with pytest.raises(ValueError, match="renew_for"):
                await store.get("k", renew_for=renew_for)
        assert log.statements == []
        await store.get("k", renew_for=60)
    assert len(log.statements) == 1  # the log sees a valid call
    assert await store.expires_in("k") == 60


# -- namespaces, table names and options: checked when the store is made, no database needed -------


@pytest.mark.parametrize(("namespace", "error"), [(None, TypeError), (1, TypeError), (b"ns", TypeError)])
def test_non_str_child_namespace_is_rejected(namespace: object, error: type[Exception]) -> None:
    store = SQLStore(create_async_engine("sqlite+aiosqlite://"))
    with pytest.raises(error, match="namespace"):
        store.with_namespace(namespace)  # type: ignore[arg-type]


@pytest.mark.parametrize("namespace", [1, b"ns", ("a",)])
def test_non_str_namespace_of_a_new_store_is_rejected(namespace: object) -> None:
    with pytest.raises(TypeError, match="namespace"):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), namespace=namespace)  # type: ignore[arg-type]


@sqlite_only
@owned_only
async def test_namespace_path_too_long_is_rejected_before_any_sql(store: SQLStore) -> None:
    with StatementLog(store) as log:
        with pytest.raises(ValueError, match="too long"):
            store.with_namespace("n" * 300)
        with pytest.raises(ValueError, match="too long"):
            store.with_namespace("\x00" * 130)  # 130 characters, 260 bytes escaped
        assert log.statements == []
        await store.with_namespace("n" * 100).set("k", b"v")  # a long path that fits
    assert len(log.statements) == 1


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1abc",
        "a-b",
        "a b",
        "a;DROP TABLE users",
        'x"; --',
        "tablé",
        "a" * 64,
        "t.name",
    ],
)
def test_invalid_table_name_is_rejected_before_any_sql(name: str) -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with pytest.raises(ValueError, match="invalid table name"):
        SQLStore(engine, table_name=name)
    with pytest.raises(ValueError, match="invalid table name"):
        SQLStore.with_url("sqlite+aiosqlite://", table_name=name)
    assert statements == []


def test_longest_valid_table_name_is_accepted() -> None:
    store = SQLStore(create_async_engine("sqlite+aiosqlite://"), table_name="a" * 63)
    assert store.table.name == "a" * 63
    assert all(len(index.name or "") <= 63 for index in store.table.indexes)


def test_non_str_table_name_raises_type_error() -> None:
    with pytest.raises(TypeError):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), table_name=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["clock", "breaker_clock"])
def test_a_clock_that_cannot_be_called_is_rejected(option: str) -> None:
    with pytest.raises(TypeError, match=f"^{option} must be a callable"):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), **{option: 0.0})  # type: ignore[arg-type]


def test_sync_engine_is_rejected() -> None:
    with pytest.raises(TypeError, match="AsyncEngine"):
        SQLStore(create_engine("sqlite://"))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1, 1.5, "10", True])
def test_bad_max_value_size_is_rejected(size: object) -> None:
    with pytest.raises(ValueError, match="max_value_size"):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), max_value_size=size)  # type: ignore[arg-type]


def test_unsupported_dialect_is_a_clear_error() -> None:
    from sqlalchemy.dialects import mssql

    from sqlsession import store_table
    from sqlsession._dialects import upsert_statement

    with pytest.raises(ValueError, match="supports SQLite, PostgreSQL and MySQL/MariaDB, not 'mssql'"):
        upsert_statement(mssql.dialect(), store_table())


# -- the value size limit ---------------------------------------------------------------------------

# a value of exactly the limit round trips on every dialect: test_contract.py


@sqlite_only
@owned_only
@within(60)
async def test_value_one_byte_over_max_value_size_raises_before_anything_is_sent(store: SQLStore) -> None:
    limit = store.max_value_size
    with StatementLog(store) as log:
        with pytest.raises(ValueError, match="max_value_size"):
            await store.set("big", value_of(limit + 1))
        with pytest.raises(ValueError, match="max_value_size"):
            await store.set("big", "é" * (limit // 2 + 1))  # fewer characters than the limit, more bytes
        assert log.statements == []
        await store.set("big", value_of(limit))
    assert len(log.statements) == 1
    assert await store.get("big") == value_of(limit)


@sqlite_only
@owned_only
@within(30)
async def test_a_small_max_value_size_is_enforced_exactly(
    store: SQLStore, make_store: Callable[..., SQLStore]
) -> None:
    small = make_store(max_value_size=10)  # same table as ``store``
    try:
        await small.set("k", b"0123456789")
        assert await small.get("k") == b"0123456789"
        with StatementLog(small) as log, pytest.raises(ValueError, match="max_value_size=10"):
            await small.set("k", b"0123456789X")
        assert log.statements == []
        with pytest.raises(ValueError, match="max_value_size=10"):
            await small.set("k", "é" * 6)  # 6 characters, 12 bytes
        assert await small.get("k") == b"0123456789"
        # the limit is on writes only: a larger value already stored is still read
        await store.set("k", b"x" * 100)
        assert await small.get("k") == b"x" * 100
    finally:
        await small.__aexit__(None, None, None)
