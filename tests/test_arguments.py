"""Bad input gets a clear TypeError/ValueError before any SQL is sent, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore

from .conftest import Clock

BAD_DURATIONS = [
    ("10", TypeError),
    (object(), TypeError),
    (True, TypeError),
    ([1], TypeError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (float("-inf"), ValueError),
]


@pytest.mark.parametrize(("expires_in", "error"), BAD_DURATIONS)
async def test_bad_expires_in_raises_and_writes_nothing(
    store: SQLStore, expires_in: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="expires_in"):
        await store.set("k", b"v", expires_in=expires_in)  # type: ignore[arg-type]
    assert await store.exists("k") is False


@pytest.mark.parametrize("expires_in", [10**30, timedelta.max, 1e300])
async def test_out_of_range_expires_in_raises_and_writes_nothing(store: SQLStore, expires_in: object) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        await store.set("k", b"v", expires_in=expires_in)  # type: ignore[arg-type]
    assert await store.exists("k") is False


@pytest.mark.parametrize(("renew_for", "error"), [*BAD_DURATIONS, (-1, ValueError), (-0.5, ValueError)])
async def test_bad_renew_for_raises_and_changes_nothing(
    store: SQLStore, renew_for: object, error: type[Exception]
) -> None:
    await store.set("k", b"v", expires_in=10)
    with pytest.raises(error, match="renew_for"):
        await store.get("k", renew_for=renew_for)  # type: ignore[arg-type]
    assert await store.expires_in("k") == 10


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


def test_sync_engine_is_rejected() -> None:
    with pytest.raises(TypeError, match="AsyncEngine"):
        SQLStore(create_engine("sqlite://"))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1, 1.5, "10", True])
def test_bad_max_value_size_is_rejected(size: object) -> None:
    with pytest.raises(ValueError, match="max_value_size"):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), max_value_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("namespace", [1, b"ns", ("a",)])
def test_non_str_namespace_is_rejected(namespace: object) -> None:
    with pytest.raises(TypeError, match="namespace"):
        SQLStore(create_async_engine("sqlite+aiosqlite://"), namespace=namespace)  # type: ignore[arg-type]


def test_unsupported_dialect_is_a_clear_error() -> None:
    from sqlalchemy.dialects import mssql

    from sqlsession import store_table
    from sqlsession._dialects import upsert_statement

    with pytest.raises(ValueError, match="supports SQLite, PostgreSQL and MySQL/MariaDB, not 'mssql'"):
        upsert_statement(mssql.dialect(), store_table())


async def test_validation_happens_before_sql(make_store: Callable[..., SQLStore], clock: Clock) -> None:
    # no table exists: any SQL sent would fail with TableMissingError, so these prove nothing is sent
    store = make_store()
    try:
        with pytest.raises(TypeError):
            await store.set(1, b"v")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await store.set("k", 1)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.set("k", b"x" * (store.max_value_size + 1))
        with pytest.raises(ValueError):
            await store.get("k", renew_for=float("nan"))
    finally:
        await store.__aexit__(None, None, None)
