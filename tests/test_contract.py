"""The behaviour contract of SQLStore, run on every dialect and driver against real servers.

On an engine the store owns; on engines it borrows, each call commits what it writes (those
engines are not in autocommit): ``test_engine.py``. Through PgBouncer, both: ``test_pgbouncer.py``.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta

from sqlsession import DEFAULT_MAX_VALUE_SIZE, SQLStore

from ._support import value_of, within
from .conftest import Clock, owned_only

pytestmark = owned_only  # a module mark: test_pgbouncer.py collects these tests on both engine modes

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


@within(60)
async def test_value_of_exactly_max_value_size_round_trips_on_default_server_settings(
    store: SQLStore,
) -> None:
    assert store.max_value_size == DEFAULT_MAX_VALUE_SIZE
    value = value_of(DEFAULT_MAX_VALUE_SIZE)
    await store.set("big", value, expires_in=100)
    assert await store.get("big") == value
    assert await store.get("big", renew_for=200) == value  # also back from the renewal statement
    text = "é" * (DEFAULT_MAX_VALUE_SIZE // 2)  # the limit counts UTF-8 bytes, not characters
    await store.set("big text", text)
    assert await store.get("big text") == text.encode()


# -- expiry ---------------------------------------------------------------------------------------


# a duration is given as an int, a float or a timedelta: each test sets one key per form

NO_EXPIRY: list[object] = [None, 0, 0.0, timedelta(0)]


async def test_none_or_zero_expires_in_means_no_expiry(store: SQLStore, clock: Clock) -> None:
    for expires_in in NO_EXPIRY:
        await store.set(repr(expires_in), b"v", expires_in=expires_in)  # type: ignore[arg-type]
    clock.advance(10 * 365 * 86400)
    for expires_in in NO_EXPIRY:
        assert await store.get(repr(expires_in)) == b"v", expires_in
        assert await store.expires_in(repr(expires_in)) == -1, expires_in


TEN_SECONDS: list[object] = [10, 10.0, timedelta(seconds=10)]


async def test_key_expires_after_expires_in(store: SQLStore, clock: Clock) -> None:
    for expires_in in TEN_SECONDS:
        await store.set(repr(expires_in), b"v", expires_in=expires_in)  # type: ignore[arg-type]
    clock.advance(9.999)
    for expires_in in TEN_SECONDS:
        assert await store.get(repr(expires_in)) == b"v", expires_in
    clock.advance(0.001)  # expired exactly at expires_at, as MemoryStore
    for expires_in in TEN_SECONDS:
        assert await store.get(repr(expires_in)) is None, expires_in
        assert await store.exists(repr(expires_in)) is False, expires_in
        assert await store.expires_in(repr(expires_in)) is None, expires_in


async def test_sub_second_expiry(store: SQLStore, clock: Clock) -> None:
    quarter: list[object] = [0.25, timedelta(milliseconds=250)]
    for expires_in in quarter:
        await store.set(repr(expires_in), b"v", expires_in=expires_in)  # type: ignore[arg-type]
    clock.advance(0.2)
    for expires_in in quarter:
        assert await store.get(repr(expires_in)) == b"v", expires_in
    clock.advance(0.05)
    for expires_in in quarter:
        assert await store.get(repr(expires_in)) is None, expires_in


async def test_negative_expires_in_stores_an_expired_entry(store: SQLStore) -> None:
    negative: list[object] = [-1, -0.5, timedelta(seconds=-3)]
    for expires_in in negative:
        await store.set(repr(expires_in), b"v", expires_in=expires_in)  # type: ignore[arg-type]
    for expires_in in negative:
        assert await store.get(repr(expires_in)) is None, expires_in
        assert await store.exists(repr(expires_in)) is False, expires_in
    assert await store.delete_expired() == len(negative)


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


async def test_renew_moves_expiry_to_now_plus_renew_for(store: SQLStore, clock: Clock) -> None:
    hundred: list[object] = [100, 100.0, timedelta(seconds=100)]
    for renew_for in hundred:
        await store.set(repr(renew_for), b"v", expires_in=10)
    clock.advance(5)
    for renew_for in hundred:
        assert await store.get(repr(renew_for), renew_for=renew_for) == b"v", renew_for  # type: ignore[arg-type]
        assert await store.expires_in(repr(renew_for)) == 100, renew_for
    clock.advance(99)
    for renew_for in hundred:
        assert await store.get(repr(renew_for)) == b"v", renew_for
    clock.advance(1)
    for renew_for in hundred:
        assert await store.get(repr(renew_for)) is None, renew_for


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


async def test_none_or_zero_renew_for_does_not_renew(store: SQLStore, clock: Clock) -> None:
    await store.set("k", b"v", expires_in=10)
    clock.advance(5)
    for renew_for in NO_EXPIRY:
        assert await store.get("k", renew_for=renew_for) == b"v", renew_for  # type: ignore[arg-type]
        assert await store.expires_in("k") == 5, renew_for


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


ODD_NAMES = ["with.dots", "ünïcødé", "日本語", "", "\x00", "\x01", "a\x00b", "%_*'\"\\;--"]


async def test_any_namespace_name_is_isolated(store: SQLStore) -> None:
    # each name beside a neighbour that extends it; no name is another's neighbour
    for name in ODD_NAMES:
        child, neighbour = store.with_namespace(name), store.with_namespace(name + "x")
        assert child.namespace == name
        assert child.namespace_path == ("LITESTAR", name)
        await child.set("k", f"child {name}")
        await neighbour.set("k", f"neighbour {name}")
    for name in ODD_NAMES:
        child, neighbour = store.with_namespace(name), store.with_namespace(name + "x")
        assert await child.get("k") == f"child {name}".encode(), name
        await child.delete_all()
        assert await child.get("k") is None, name
        assert await neighbour.get("k") == f"neighbour {name}".encode(), name


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
