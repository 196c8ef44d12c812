"""The behaviour contract of SQLStore, run on every dialect and driver against real servers."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import pytest

from sqlsession import SQLStore

from .conftest import Clock

# -- set / get ------------------------------------------------------------------------------------


async def test_bytes_round_trip(store: SQLStore) -> None:
    await store.set("k", b"\x00\xffvalue")
    assert await store.get("k") == b"\x00\xffvalue"


async def test_str_value_is_stored_as_utf8(store: SQLStore) -> None:
    await store.set("k", "héllo ✓")
    assert await store.get("k") == "héllo ✓".encode()


async def test_empty_value_stays_empty_bytes(store: SQLStore) -> None:
    await store.set("k", b"")
    assert await store.get("k") == b""
    assert await store.exists("k") is True


async def test_missing_key_gets_none(store: SQLStore) -> None:
    assert await store.get("nope") is None


async def test_set_replaces_value_and_expiry(store: SQLStore) -> None:
    await store.set("k", b"one", expires_in=10)
    await store.set("k", b"two")
    assert await store.get("k") == b"two"
    assert await store.expires_in("k") == -1


@pytest.mark.parametrize("value", [1, 1.5, None, bytearray(b"x"), memoryview(b"x"), ["x"], object()])
async def test_non_str_bytes_value_raises_type_error_and_writes_nothing(
    store: SQLStore, value: object
) -> None:
    await store.set("k", b"before")
    with pytest.raises(TypeError, match="value must be str or bytes"):
        await store.set("k", value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.set("fresh", value)  # type: ignore[arg-type]
    assert await store.get("k") == b"before"
    assert await store.exists("fresh") is False


async def test_value_over_max_size_raises_and_writes_nothing(make_store: object) -> None:
    from .conftest import create_table, drop_table

    store = make_store(max_value_size=100)  # type: ignore[operator]
    await create_table(store)
    try:
        await store.set("k", b"x" * 100)
        assert await store.get("k") == b"x" * 100
        with pytest.raises(ValueError, match="max_value_size"):
            await store.set("k", b"y" * 101)
        with pytest.raises(ValueError, match="max_value_size"):
            await store.set("k", "é" * 51)  # 102 bytes in UTF-8
        assert await store.get("k") == b"x" * 100
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


@pytest.mark.parametrize("fill", [b"\x00", b"'"])
async def test_value_of_default_max_size_round_trips(store: SQLStore, fill: bytes) -> None:
    # the worst case for drivers that escape bytes in the SQL text (MySQL's protocol)
    value = fill * store.max_value_size
    await store.set("big", value)
    assert await store.get("big") == value
    with pytest.raises(ValueError):
        await store.set("big", value + b"x")


# -- expiry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", [None, 0, 0.0, timedelta(0)])
async def test_none_or_zero_expires_in_means_no_expiry(
    store: SQLStore, clock: Clock, expires_in: object
) -> None:
    await store.set("k", b"v", expires_in=expires_in)  # type: ignore[arg-type]
    clock.advance(10 * 365 * 86400)
    assert await store.get("k") == b"v"
    assert await store.expires_in("k") == -1


@pytest.mark.parametrize("expires_in", [10, 10.0, timedelta(seconds=10)])
async def test_key_expires_after_expires_in(store: SQLStore, clock: Clock, expires_in: object) -> None:
    await store.set("k", b"v", expires_in=expires_in)  # type: ignore[arg-type]
    clock.advance(9.999)
    assert await store.get("k") == b"v"
    clock.advance(0.001)  # expired exactly at expires_at, as MemoryStore
    assert await store.get("k") is None
    assert await store.exists("k") is False
    assert await store.expires_in("k") is None


@pytest.mark.parametrize("expires_in", [0.25, timedelta(milliseconds=250)])
async def test_sub_second_expiry(store: SQLStore, clock: Clock, expires_in: object) -> None:
    await store.set("k", b"v", expires_in=expires_in)  # type: ignore[arg-type]
    clock.advance(0.2)
    assert await store.get("k") == b"v"
    clock.advance(0.05)
    assert await store.get("k") is None


@pytest.mark.parametrize("expires_in", [-1, -0.5, timedelta(seconds=-3)])
async def test_negative_expires_in_stores_an_expired_entry(store: SQLStore, expires_in: object) -> None:
    await store.set("k", b"v", expires_in=expires_in)  # type: ignore[arg-type]
    assert await store.get("k") is None
    assert await store.exists("k") is False
    assert await store.delete_expired() == 1


async def test_expires_in_counts_whole_seconds_rounded_up(store: SQLStore, clock: Clock) -> None:
    await store.set("k", b"v", expires_in=100)
    assert await store.expires_in("k") == 100
    clock.advance(0.5)
    assert await store.expires_in("k") == 100
    clock.advance(89.5)
    assert await store.expires_in("k") == 10
    clock.advance(9.9)
    assert await store.expires_in("k") == 1


async def test_expires_in_of_missing_key_is_none(store: SQLStore) -> None:
    assert await store.expires_in("nope") is None


async def test_exists(store: SQLStore) -> None:
    assert await store.exists("k") is False
    await store.set("k", b"v")
    assert await store.exists("k") is True


# -- renewal --------------------------------------------------------------------------------------


@pytest.mark.parametrize("renew_for", [100, 100.0, timedelta(seconds=100)])
async def test_renew_moves_expiry_to_now_plus_renew_for(
    store: SQLStore, clock: Clock, renew_for: object
) -> None:
    await store.set("k", b"v", expires_in=10)
    clock.advance(5)
    assert await store.get("k", renew_for=renew_for) == b"v"  # type: ignore[arg-type]
    assert await store.expires_in("k") == 100
    clock.advance(99)
    assert await store.get("k") == b"v"
    clock.advance(1)
    assert await store.get("k") is None


async def test_renew_can_shorten_expiry(store: SQLStore, clock: Clock) -> None:
    await store.set("k", b"v", expires_in=1000)
    assert await store.get("k", renew_for=0.5) == b"v"
    clock.advance(0.5)
    assert await store.get("k") is None


async def test_renew_keeps_a_key_without_expiry_without_expiry(store: SQLStore, clock: Clock) -> None:
    await store.set("k", b"v")
    assert await store.get("k", renew_for=10) == b"v"
    assert await store.expires_in("k") == -1
    clock.advance(1000)
    assert await store.get("k") == b"v"


@pytest.mark.parametrize("renew_for", [None, 0, 0.0, timedelta(0)])
async def test_none_or_zero_renew_for_does_not_renew(store: SQLStore, renew_for: object) -> None:
    await store.set("k", b"v", expires_in=10)
    assert await store.get("k", renew_for=renew_for) == b"v"  # type: ignore[arg-type]
    assert await store.expires_in("k") == 10


async def test_renew_never_resurrects_deleted_key(store: SQLStore) -> None:
    await store.set("k", b"v", expires_in=10)
    await store.delete("k")
    assert await store.get("k", renew_for=100) is None
    assert await store.get("k") is None
    assert await store.exists("k") is False


async def test_renew_never_resurrects_expired_key(store: SQLStore, clock: Clock) -> None:
    await store.set("k", b"v", expires_in=10)
    clock.advance(10)
    assert await store.get("k", renew_for=100) is None
    assert await store.get("k") is None
    assert await store.delete_expired() == 1


async def test_renew_of_missing_key_is_none(store: SQLStore) -> None:
    assert await store.get("nope", renew_for=10) is None
    assert await store.exists("nope") is False


# -- delete ---------------------------------------------------------------------------------------


async def test_delete_removes_key(store: SQLStore) -> None:
    await store.set("k", b"v")
    await store.set("other", b"w")
    await store.delete("k")
    assert await store.get("k") is None
    assert await store.get("other") == b"w"


async def test_delete_of_missing_key_is_no_error(store: SQLStore) -> None:
    await store.delete("nope")
    assert await store.get("nope") is None


async def test_delete_all_clears_namespace_and_children_but_not_prefix_siblings(store: SQLStore) -> None:
    root = store.with_namespace("sess")
    child = root.with_namespace("child")
    grandchild = child.with_namespace("g")
    sibling = store.with_namespace("sessions")
    sibling_child = store.with_namespace("sess_child")
    for s in (root, child, grandchild, sibling, sibling_child, store):
        await s.set("k", b"v")
    await root.delete_all()
    assert [await s.get("k") for s in (root, child, grandchild)] == [None, None, None]
    assert [await s.get("k") for s in (sibling, sibling_child, store)] == [b"v", b"v", b"v"]


async def test_delete_all_of_a_child_leaves_its_parent(store: SQLStore) -> None:
    child = store.with_namespace("c")
    await store.set("k", b"parent")
    await child.set("k", b"child")
    await child.delete_all()
    assert await child.get("k") is None
    assert await store.get("k") == b"parent"


async def test_root_namespace_delete_all_clears_the_table(make_store: object, store: SQLStore) -> None:
    root = make_store(table_name=store.table.name, namespace=None)  # type: ignore[operator]
    try:
        assert root.namespace is None
        other = root.with_namespace("OTHER")
        await store.set("a", b"1")
        await other.set("b", b"2")
        await root.set("c", b"3")
        await root.delete_all()
        assert [await store.get("a"), await other.get("b"), await root.get("c")] == [None, None, None]
    finally:
        await root.__aexit__(None, None, None)


async def test_delete_expired_counts_only_this_namespace_and_below(
    make_store: object, store: SQLStore, clock: Clock
) -> None:
    child = store.with_namespace("child")
    sibling = make_store(table_name=store.table.name, namespace="LITESTAR_SIBLING")  # type: ignore[operator]
    try:
        await store.set("a", b"v", expires_in=1)
        await store.set("b", b"v", expires_in=100)
        await store.set("c", b"v")
        await child.set("a", b"v", expires_in=1)
        await child.set("b", b"v", expires_in=1)
        await sibling.set("a", b"v", expires_in=1)
        clock.advance(1)
        assert await child.delete_expired() == 2
        await child.set("a", b"v", expires_in=-1)
        assert await store.delete_expired() == 2  # its own "a" and the child's new "a"
        assert await store.delete_expired() == 0
        assert await store.get("b") == b"v"
        assert await store.get("c") == b"v"
        assert await sibling.delete_expired() == 1
    finally:
        await sibling.__aexit__(None, None, None)


# -- namespaces -----------------------------------------------------------------------------------


async def test_namespaces_are_isolated(store: SQLStore) -> None:
    a = store.with_namespace("a")
    b = store.with_namespace("b")
    await a.set("k", b"in a")
    await b.set("k", b"in b")
    await store.set("k", b"in parent")
    assert (await a.get("k"), await b.get("k"), await store.get("k")) == (b"in a", b"in b", b"in parent")
    await a.delete("k")
    assert (await a.get("k"), await b.get("k")) == (None, b"in b")


async def test_underscore_name_differs_from_nested_names(store: SQLStore) -> None:
    flat = store.with_namespace("a_b")
    nested = store.with_namespace("a").with_namespace("b")
    await flat.set("k", b"flat")
    await nested.set("k", b"nested")
    assert await flat.get("k") == b"flat"
    assert await nested.get("k") == b"nested"


@pytest.mark.parametrize(
    "name", ["with.dots", "ünïcødé", "日本語", "", "\x00", "\x01", "a\x00b", "%_*'\"\\;--"]
)
async def test_any_namespace_name_is_isolated(store: SQLStore, name: str) -> None:
    child = store.with_namespace(name)
    neighbour = store.with_namespace(name + "x")
    await child.set("k", b"child")
    await neighbour.set("k", b"neighbour")
    assert await child.get("k") == b"child"
    await child.delete_all()
    assert await child.get("k") is None
    assert await neighbour.get("k") == b"neighbour"
    assert child.namespace == name
    assert child.namespace_path == ("LITESTAR", name)


def test_namespace_path_too_long_is_rejected(store: SQLStore) -> None:
    with pytest.raises(ValueError, match="too long"):
        store.with_namespace("n" * 300)


def test_non_str_namespace_raises_type_error(store: SQLStore) -> None:
    with pytest.raises(TypeError):
        store.with_namespace(1)  # type: ignore[arg-type]


# -- keys -----------------------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
TRICKY_KEYS = [
    "key",
    "KEY",
    "Key",
    "cafe",
    NFC,
    NFD,
    "a\x00",
    "a",
    "\x00",
    "",
    " ",
    "  ",
    "a ",
    "'; DROP TABLE x; --",
    "%",
    "_",
    "\\",
    "\ud800",
    "x" * 10_000 + "a",
    "x" * 10_000 + "b",
]


async def test_distinct_keys_never_collide_and_round_trip(store: SQLStore) -> None:
    assert NFC != NFD
    for index, key in enumerate(TRICKY_KEYS):
        await store.set(key, str(index))
    for index, key in enumerate(TRICKY_KEYS):
        assert await store.get(key) == str(index).encode(), repr(key[:20])


@pytest.mark.parametrize("key", [1, b"k", None, ("k",)])
async def test_non_str_key_raises_type_error(store: SQLStore, key: object) -> None:
    for call in (
        store.set(key, b"v"),  # type: ignore[arg-type]
        store.get(key),  # type: ignore[arg-type]
        store.get(key, renew_for=1),  # type: ignore[arg-type]
        store.exists(key),  # type: ignore[arg-type]
        store.expires_in(key),  # type: ignore[arg-type]
        store.delete(key),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match="key must be a str"):
            await call
