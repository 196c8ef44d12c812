"""Property-based tests (hypothesis): keys, namespaces and values of any shape, on every dialect.

The pure tests of ``sqlsession._keys`` run many examples; the ones against the databases run a
few dozen per dialect (on an engine the store owns: the bytes are compared by the server, the same
way whoever owns the engine), on one table per test (each example cleans up after itself), each
example bounded in time.
"""

from __future__ import annotations

import hashlib
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlsession import SQLStore
from sqlsession._keys import decode_namespace, encode_namespace, key_digest, namespace_range
from sqlsession.schema import NAMESPACE_MAX_BYTES

from ._support import within
from .conftest import owned_only

# every code point, lone surrogates included: any Python str is a valid key or namespace
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
# what UTF-8 can encode: a str value is stored as its UTF-8 bytes
ENCODABLE_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
# few characters, so that prefixes, siblings and the escaped bytes 0x00 and 0x01 meet often
TIGHT_NAME = st.text(st.sampled_from(["a", "b", "\x00", "\x01", "\x02", "é", "\ud800", "\uffff"]), max_size=3)
TIGHT_PATH = st.lists(TIGHT_NAME, max_size=3).map(tuple)
SHORT_NAME = st.text(ANY_CHAR, max_size=10)
SHORT_PATH = st.lists(SHORT_NAME, max_size=3).map(tuple)

PURE = settings(max_examples=300, deadline=None, database=None)
ON_DATABASE = settings(
    max_examples=30,
    deadline=None,
    database=None,
    # one store (and table) per test on purpose: every example cleans up what it wrote
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _under(store: SQLStore, path: tuple[str, ...]) -> SQLStore:
    for name in path:
        store = store.with_namespace(name)
    return store


def _is_within(path: tuple[str, ...], ancestor: tuple[str, ...]) -> bool:
    return path[: len(ancestor)] == ancestor


# -- sqlsession._keys, pure -----------------------------------------------------------------------


@PURE
@given(st.lists(SHORT_NAME, max_size=6).map(tuple))
def test_namespace_encoding_round_trips_or_refuses_a_path_too_long(path: tuple[str, ...]) -> None:
    try:
        encoded = encode_namespace(path)
    except ValueError:
        raw = sum(len(name.encode("utf-8", "surrogatepass")) + 1 for name in path)
        assert raw > NAMESPACE_MAX_BYTES // 2  # only long paths are refused (escapes at most double)
        return
    assert len(encoded) <= NAMESPACE_MAX_BYTES
    assert decode_namespace(encoded) == path


@PURE
@given(SHORT_PATH, SHORT_PATH)
def test_distinct_namespace_paths_never_share_an_encoding(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    assert (encode_namespace(a) == encode_namespace(b)) == (a == b)


@st.composite
def _related_paths(draw: st.DrawFn) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A path and another one: a descendant, an ancestor, a sibling sharing a prefix, or any."""
    path = draw(TIGHT_PATH)
    kind = draw(st.sampled_from(["descendant", "ancestor", "prefix sibling", "any"]))
    if kind == "descendant":
        return path, path + draw(TIGHT_PATH)
    if kind == "ancestor":
        return path, path[: draw(st.integers(0, len(path)))]
    if kind == "prefix sibling" and path:
        last = path[-1]
        sibling = draw(st.sampled_from([last + draw(TIGHT_NAME), last[:-1], last[::-1]]))
        return path, (*path[:-1], sibling, *draw(TIGHT_PATH))
    return path, draw(TIGHT_PATH)


@PURE
@given(_related_paths())
def test_namespace_range_holds_exactly_the_namespace_and_its_descendants(
    paths: tuple[tuple[str, ...], tuple[str, ...]],
) -> None:
    ancestor, path = paths
    bounds = namespace_range(encode_namespace(ancestor))
    if not ancestor:
        assert bounds is None  # the root: the whole table
        return
    assert bounds is not None
    low, high = bounds
    assert (low <= encode_namespace(path) < high) == _is_within(path, ancestor)


@PURE
@given(ANY_TEXT, ANY_TEXT)
def test_key_digest_is_the_sha256_of_the_exact_key(a: str, b: str) -> None:
    digest = key_digest(a)
    assert digest == hashlib.sha256(a.encode("utf-8", "surrogatepass")).digest()
    assert len(digest) == 32
    assert (digest == key_digest(b)) == (a == b)


# -- on every dialect ---------------------------------------------------------------------------


@owned_only
@ON_DATABASE
@given(
    path=SHORT_PATH,
    key=ANY_TEXT,
    value=st.one_of(st.binary(max_size=3000), ENCODABLE_TEXT),
    expires_in=st.sampled_from([None, 0, 3600, 0.5]),
)
@within(20)
async def test_any_key_namespace_and_value_round_trip_exactly(
    store: SQLStore, path: tuple[str, ...], key: str, value: bytes | str, expires_in: float | None
) -> None:
    expected = value.encode("utf-8") if isinstance(value, str) else value
    home = _under(store, path)
    assert home.namespace_path == (*store.namespace_path, *path)
    await home.set(key, value, expires_in=expires_in)
    try:
        assert await home.get(key) == expected
        assert await home.get(key, renew_for=60) == expected  # the value comes back from the renewal
        assert await home.exists(key) is True
        assert await store.get(key) == (expected if not path else None)  # the parent holds its own
    finally:
        await home.delete(key)
    assert await home.get(key) is None


@st.composite
def _lookalike_keys(draw: st.DrawFn) -> list[str]:
    """Keys that differ only a little: case, normalization, NUL, spaces, a surrogate, a prefix."""
    base = draw(st.text(ANY_CHAR, min_size=1, max_size=12))
    variants = [
        base,
        base.upper(),
        base.lower(),
        unicodedata.normalize("NFC", base.encode("utf-8", "surrogatepass").decode("utf-8", "replace")),
        unicodedata.normalize("NFD", base.encode("utf-8", "surrogatepass").decode("utf-8", "replace")),
        base + "\x00",
        "\x00" + base,
        base + " ",
        base[:-1],
        base + "\ud800",
        *draw(st.lists(ANY_TEXT, max_size=4)),
    ]
    return list(dict.fromkeys(variants))


@owned_only
@ON_DATABASE
@given(keys=_lookalike_keys())
@within(20)
async def test_distinct_keys_never_collide(store: SQLStore, keys: list[str]) -> None:
    try:
        for index, key in enumerate(keys):
            await store.set(key, str(index))
        for index, key in enumerate(keys):
            assert await store.get(key) == str(index).encode(), (index, key)
        await store.delete(keys[0])
        assert await store.get(keys[0]) is None
        for index, key in enumerate(keys[1:], start=1):
            assert await store.get(key) == str(index).encode(), (index, key)
    finally:
        await store.delete_all()


@owned_only
@ON_DATABASE
@given(
    paths=st.lists(TIGHT_PATH, min_size=2, max_size=6, unique=True),
    target=st.integers(min_value=0, max_value=5),
)
@within(20)
async def test_namespaces_are_isolated_and_delete_all_clears_exactly_the_subtree(
    store: SQLStore, paths: list[tuple[str, ...]], target: int
) -> None:
    cleared = paths[target % len(paths)]
    try:
        for index, path in enumerate(paths):
            await _under(store, path).set("key", str(index))
        for index, path in enumerate(paths):
            assert await _under(store, path).get("key") == str(index).encode(), path
        await _under(store, cleared).delete_all()
        for index, path in enumerate(paths):
            expected = None if _is_within(path, cleared) else str(index).encode()
            assert await _under(store, path).get("key") == expected, (path, cleared)
    finally:
        await store.delete_all()
