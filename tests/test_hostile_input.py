"""Odd and hostile arguments: a clear ``TypeError``/``ValueError``, no statement sent, nothing written;
values at the size limit work on every dialect with its default server settings.

"Nothing sent" is observed, not inferred: ``StatementLog`` records every statement the store
sends (SQLAlchemy's ``before_cursor_execute`` on a borrowed engine, the driver runner on an
owned one), and each test also shows that the log does see the statement of a valid call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import DEFAULT_MAX_VALUE_SIZE, SQLStore

from ._support import StatementLog, raw_rows, within

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
    assert await store.get("k") == b"before"
    assert await store.expires_in("k") == 50
    assert await store.exists("new") is False


@within(30)
async def test_str_value_utf8_cannot_encode_raises_value_error_and_changes_nothing(store: SQLStore) -> None:
    await store.set("k", "before")
    with StatementLog(store) as log, pytest.raises(ValueError):  # UnicodeEncodeError
        await store.set("k", "lone surrogate \ud800")
    assert log.statements == []
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


@within(30)
async def test_odd_durations_raise_and_leave_an_existing_key_as_it_was(store: SQLStore) -> None:
    await store.set("k", b"before", expires_in=50)
    with StatementLog(store) as log:
        for duration, error in ODD_DURATIONS:
            with pytest.raises(error, match="expires_in"):
                await store.set("k", b"after", expires_in=duration)  # type: ignore[arg-type]
            with pytest.raises(error, match="renew_for"):
                await store.get("k", renew_for=duration)  # type: ignore[arg-type]
            assert log.statements == [], duration
    assert await store.get("k") == b"before"
    assert await store.expires_in("k") == 50


async def test_negative_renew_for_raises_value_error_and_changes_nothing(store: SQLStore) -> None:
    await store.set("k", b"v", expires_in=50)
    with StatementLog(store) as log:
        for renew_for in (-1, -0.001, timedelta(seconds=-1), timedelta(microseconds=-1)):
            with pytest.raises(ValueError, match="renew_for"):
                await store.get("k", renew_for=renew_for)
    assert log.statements == []
    assert await store.expires_in("k") == 50


@pytest.mark.parametrize(("namespace", "error"), [(None, TypeError), (1, TypeError), (b"ns", TypeError)])
def test_non_str_child_namespace_is_rejected(namespace: object, error: type[Exception]) -> None:
    store = SQLStore(create_async_engine("sqlite+aiosqlite://"))
    with pytest.raises(error, match="namespace"):
        store.with_namespace(namespace)  # type: ignore[arg-type]


async def test_namespace_path_too_long_is_rejected_before_any_sql(store: SQLStore) -> None:
    with StatementLog(store) as log, pytest.raises(ValueError, match="too long"):
        store.with_namespace("n" * 300)
    with pytest.raises(ValueError, match="too long"):
        store.with_namespace("\x00" * 130)  # 130 characters, 260 bytes escaped
    assert log.statements == []


# -- the value size limit ---------------------------------------------------------------------------

# the bytes that MySQL escapes and PostgreSQL's text protocol would spell out: the costliest value
_WORST_CASE = b"\x00'\"\\\x1a\n\r\xff"


def _value_of(size: int) -> bytes:
    return (_WORST_CASE * (size // len(_WORST_CASE) + 1))[:size]


@within(60)
async def test_value_of_exactly_max_value_size_round_trips_on_default_server_settings(
    store: SQLStore,
) -> None:
    assert store.max_value_size == DEFAULT_MAX_VALUE_SIZE
    value = _value_of(DEFAULT_MAX_VALUE_SIZE)
    await store.set("big", value, expires_in=100)
    assert await store.get("big") == value
    assert await store.get("big", renew_for=200) == value  # also back from the renewal statement
    text = "é" * (DEFAULT_MAX_VALUE_SIZE // 2)  # the limit counts UTF-8 bytes, not characters
    await store.set("big text", text)
    assert await store.get("big text") == text.encode()


@within(60)
async def test_value_one_byte_over_max_value_size_raises_before_anything_is_sent(store: SQLStore) -> None:
    limit = store.max_value_size
    with StatementLog(store) as log:
        with pytest.raises(ValueError, match="max_value_size"):
            await store.set("big", _value_of(limit + 1))
        with pytest.raises(ValueError, match="max_value_size"):
            await store.set("big", "é" * (limit // 2 + 1))  # fewer characters than the limit, more bytes
        assert log.statements == []
        await store.set("big", _value_of(limit))
    assert len(log.statements) == 1
    assert await store.get("big") == _value_of(limit)


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
        assert await small.get("k") == b"0123456789"
        # the limit is on writes only: a larger value already stored is still read
        await store.set("k", b"x" * 100)
        assert await small.get("k") == b"x" * 100
    finally:
        await small.__aexit__(None, None, None)
