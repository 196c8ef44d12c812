"""Sealed values: compression and encryption at rest, key rotation, reseal, on every dialect."""

from __future__ import annotations

import base64
import logging
import os
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore, SQLStorePlugin, parse_encryption_keys
from sqlsession._keys import encode_namespace, key_digest
from sqlsession._sealing import MAGIC
from sqlsession.cli import main

from ._support import BeforeStatement, litestar_command, raw_rows
from .conftest import Clock, create_table, drop_table, owned_only, sqlite_only, unique_table

K1, K2, K3 = (bytes([n]) * 32 for n in (1, 2, 3))
COMPRESSIBLE = b'{"user": 42, "cart": [' + b'{"sku": "A-1", "qty": 1}, ' * 700 + b"]}"  # ~18 KB
MakeSealed = Callable[..., SQLStore]


@pytest.fixture
async def sealed(make_store: Callable[..., SQLStore]) -> AsyncIterator[MakeSealed]:
    """Stores with the given options, all on this test's one table (created by the first)."""
    made: list[SQLStore] = []

    def make(**options: Any) -> SQLStore:
        store = make_store(**options)
        made.append(store)
        return store

    yield make
    if made:
        await drop_table(made[0])
    for store in made:
        await store.__aexit__(None, None, None)


async def first_store(sealed: MakeSealed, **options: Any) -> SQLStore:
    store = sealed(**options)
    await create_table(store)
    return store


async def stored_value(store: SQLStore, key: str) -> bytes:
    """The bytes in the table for ``key`` of ``store``'s namespace."""
    ns, kh = encode_namespace(store.namespace_path), key_digest(key)
    (value,) = [v for n, k, v, _ in await raw_rows(store) if (n, k) == (ns, kh)]
    return value


async def write_raw(store: SQLStore, key: str, value: bytes, *, new: bool = False) -> None:
    """Write ``value`` as it is into the row of ``key``, behind the store's back."""
    ns, kh = encode_namespace(store.namespace_path), key_digest(key)
    table = store.table
    engine = create_async_engine(store.engine.url)
    try:
        async with engine.begin() as conn:
            if new:
                await conn.execute(insert(table).values(namespace=ns, key_hash=kh, value=value))
            else:
                stmt = update(table).where(table.c.namespace == ns, table.c.key_hash == kh)
                result = await conn.execute(stmt.values(value=value))
                assert result.rowcount == 1
    finally:
        await engine.dispose()


# -- compression --------------------------------------------------------------------------------------


@sqlite_only
@owned_only
async def test_value_at_least_compress_min_size_is_stored_compressed(sealed: MakeSealed) -> None:
    store = await first_store(sealed, compress_min_size=1024)
    await store.set("k", COMPRESSIBLE)
    assert await store.get("k") == COMPRESSIBLE
    stored = await stored_value(store, "k")
    assert stored.startswith(MAGIC)
    assert len(stored) < len(COMPRESSIBLE) // 10


@sqlite_only
@owned_only
async def test_value_below_compress_min_size_or_incompressible_is_stored_as_it_is(sealed: MakeSealed) -> None:
    store = await first_store(sealed, compress_min_size=1024)
    small, noise = COMPRESSIBLE[:1023], os.urandom(4096)
    await store.set("small", small)
    await store.set("noise", noise)
    assert await stored_value(store, "small") == small
    assert await stored_value(store, "noise") == noise
    assert await store.get("small") == small
    assert await store.get("noise") == noise


@sqlite_only
@owned_only
async def test_turning_compression_on_keeps_plain_rows_readable(sealed: MakeSealed) -> None:
    plain = await first_store(sealed)
    legacy = {"json": b'{"a": 1}', "binary": os.urandom(64), "empty": b"", "big": COMPRESSIBLE}
    for key, value in legacy.items():
        await plain.set(key, value)
    # a row an earlier version wrote that starts like an envelope but is not one
    await write_raw(plain, "lookalike", MAGIC + b"\x01\x01not zlib", new=True)
    compressing = sealed(compress_min_size=0)
    for key, value in legacy.items():
        assert await compressing.get(key) == value
    assert await compressing.get("lookalike") == MAGIC + b"\x01\x01not zlib"


@sqlite_only
@owned_only
async def test_turning_compression_off_keeps_compressed_rows_readable(sealed: MakeSealed) -> None:
    compressing = await first_store(sealed, compress_min_size=0)
    await compressing.set("k", COMPRESSIBLE)
    assert await sealed().get("k") == COMPRESSIBLE


@sqlite_only
@owned_only
@pytest.mark.parametrize("options", [{}, {"compress_min_size": 0}, {"encryption_keys": [K1]}])
async def test_value_that_starts_like_an_envelope_round_trips(sealed: MakeSealed, options: Any) -> None:
    store = await first_store(sealed, **options)
    values = [MAGIC, MAGIC + b"\x01\x00", MAGIC + b"\x01\x01" + zlib.compress(b"x"), MAGIC + b"\x01\x02" * 40]
    for index, value in enumerate(values):
        await store.set(str(index), value)
    for index, value in enumerate(values):
        assert await store.get(str(index)) == value


# -- encryption ---------------------------------------------------------------------------------------


@sqlite_only
@owned_only
async def test_encrypted_value_round_trips_and_is_not_stored_in_clear(sealed: MakeSealed) -> None:
    store = await first_store(sealed, encryption_keys=[K1])
    await store.set("k", b"secret session data")
    await store.set("empty", b"")
    await store.set("text", "héllo")
    assert await store.get("k") == b"secret session data"
    assert await store.get("empty") == b""
    assert await store.get("text") == "héllo".encode()
    stored = await stored_value(store, "k")
    assert b"secret" not in stored
    assert stored.startswith(MAGIC)


@sqlite_only
@owned_only
async def test_compressed_and_encrypted_value_round_trips(sealed: MakeSealed) -> None:
    store = await first_store(sealed, compress_min_size=512, encryption_keys=[K1])
    await store.set("k", COMPRESSIBLE)
    assert await store.get("k") == COMPRESSIBLE
    stored = await stored_value(store, "k")
    assert len(stored) < len(COMPRESSIBLE) // 10
    assert b"sku" not in stored


@sqlite_only
@owned_only
async def test_same_value_is_sealed_differently_each_time(sealed: MakeSealed) -> None:
    store = await first_store(sealed, encryption_keys=[K1])
    await store.set("a", b"same")
    first = await stored_value(store, "a")
    await store.set("a", b"same")
    assert await stored_value(store, "a") != first


@sqlite_only
@owned_only
async def test_value_copied_to_another_row_does_not_open(sealed: MakeSealed) -> None:
    store = await first_store(sealed, encryption_keys=[K1])
    other = store.with_namespace("other")
    await store.set("victim", b"admin session")
    await store.set("attacker", b"guest session")
    await other.set("victim", b"other namespace")
    stolen = await stored_value(store, "victim")
    await write_raw(store, "attacker", stolen)
    await write_raw(other, "victim", stolen)
    assert await store.get("attacker") is None
    assert await other.get("victim") is None
    assert await store.get("victim") == b"admin session"


@sqlite_only
@owned_only
async def test_value_sealed_under_a_key_not_in_the_list_does_not_open(sealed: MakeSealed) -> None:
    writer = await first_store(sealed, encryption_keys=[K1])
    await writer.set("k", b"v")
    assert await sealed(encryption_keys=[K2]).get("k") is None
    assert await sealed(encryption_keys=[K2, K3]).get("k") is None
    assert await sealed().get("k") is None  # no keys: never the ciphertext
    assert await sealed(compress_min_size=0).get("k") is None


@sqlite_only
@owned_only
@pytest.mark.parametrize("position", [5, 6, 10, 22, -1])  # flags, key id, nonce, ciphertext, tag
async def test_tampered_value_reads_as_missing(sealed: MakeSealed, position: int) -> None:
    store = await first_store(sealed, encryption_keys=[K1, K2], compress_min_size=0)
    await store.set("k", COMPRESSIBLE)
    stored = bytearray(await stored_value(store, "k"))
    stored[position] ^= 0x01
    await write_raw(store, "k", bytes(stored))
    assert await store.get("k") is None


@sqlite_only
@owned_only
async def test_truncated_value_reads_as_missing(sealed: MakeSealed) -> None:
    store = await first_store(sealed, encryption_keys=[K1])
    await store.set("k", b"value")
    stored = await stored_value(store, "k")
    for length in (len(stored) - 1, 30, 10, 5, 0):
        await write_raw(store, "k", stored[:length])
        assert await store.get("k") is None


@sqlite_only
@owned_only
async def test_plain_rows_read_as_missing_when_encryption_is_on(sealed: MakeSealed) -> None:
    plain = await first_store(sealed)
    await plain.set("k", b"planted")
    await plain.set("lookalike", MAGIC + b"\x01\x01not zlib")
    encrypted = sealed(encryption_keys=[K1])
    assert await encrypted.get("k") is None
    assert await encrypted.get("lookalike") is None
    migrating = sealed(encryption_keys=[K1], read_unsealed=True)
    assert await migrating.get("k") == b"planted"
    assert await migrating.get("lookalike") == MAGIC + b"\x01\x01not zlib"


@owned_only
async def test_key_rotation(sealed: MakeSealed) -> None:
    old = await first_store(sealed, encryption_keys=[K1])
    await old.set("a", b"one", expires_in=60)
    await old.with_namespace("child").set("b", COMPRESSIBLE)
    rotating = sealed(encryption_keys=[K2, K1], compress_min_size=1024)
    assert await rotating.get("a") == b"one"  # the old key still opens
    await rotating.set("c", b"three")
    assert await rotating.reseal() == 2
    assert await rotating.reseal() == 0  # nothing left to do
    new = sealed(encryption_keys=[K2])  # the old key dropped
    assert await new.get("a") == b"one"
    assert await new.with_namespace("child").get("b") == COMPRESSIBLE
    assert await new.get("c") == b"three"
    assert await old.get("a") is None
    assert 55 < await new.expires_in("a") <= 60  # type: ignore[operator]


@owned_only
async def test_reseal_covers_this_namespace_and_below_in_batches(sealed: MakeSealed) -> None:
    root = await first_store(sealed, namespace=None, encryption_keys=[K1])
    app = root.with_namespace("app")
    sibling = root.with_namespace("apples")
    for index in range(7):
        await app.set(f"k{index}", b"v%d" % index)
        await app.with_namespace("sessions").set(f"s{index}", b"s%d" % index)
    await sibling.set("x", b"x")
    rotated = sealed(namespace=None, encryption_keys=[K2, K1])
    assert await rotated.with_namespace("app").reseal(batch_size=2) == 14
    assert await rotated.reseal(batch_size=3) == 1  # only the sibling was left
    after = sealed(namespace=None, encryption_keys=[K2])
    for index in range(7):
        assert await after.with_namespace("app").get(f"k{index}") == b"v%d" % index
        assert await after.with_namespace("app").with_namespace("sessions").get(f"s{index}") == b"s%d" % index
    assert await after.with_namespace("apples").get("x") == b"x"


@owned_only
async def test_reseal_skips_expired_rows_and_keeps_expiry(sealed: MakeSealed, clock: Clock) -> None:
    old = await first_store(sealed, encryption_keys=[K1])
    await old.set("live", b"v", expires_in=100)
    await old.set("dead", b"v", expires_in=1)
    clock.advance(2)
    rotating = sealed(encryption_keys=[K2, K1])
    assert await rotating.reseal() == 1
    assert await rotating.expires_in("live") == 98


@sqlite_only
@owned_only
async def test_reseal_seals_plain_rows_only_when_they_are_read(sealed: MakeSealed) -> None:
    plain = await first_store(sealed)
    await plain.set("k", b"plain")
    assert await sealed(encryption_keys=[K1]).reseal() == 0
    assert await stored_value(plain, "k") == b"plain"
    assert await sealed(encryption_keys=[K1], read_unsealed=True).reseal() == 1
    assert b"plain" not in await stored_value(plain, "k")
    assert await sealed(encryption_keys=[K1]).get("k") == b"plain"


@sqlite_only
@owned_only
async def test_reseal_compresses_plain_rows(sealed: MakeSealed) -> None:
    plain = await first_store(sealed)
    await plain.set("big", COMPRESSIBLE)
    await plain.set("small", b"small")
    compressing = sealed(compress_min_size=1024)
    assert await compressing.reseal() == 1
    assert len(await stored_value(plain, "big")) < len(COMPRESSIBLE) // 10
    assert await plain.get("big") == COMPRESSIBLE


@owned_only
async def test_reseal_never_overwrites_a_concurrent_set(sealed: MakeSealed) -> None:
    old = await first_store(sealed, encryption_keys=[K1])
    await old.set("k", b"old value")
    rotating = sealed(encryption_keys=[K2, K1])
    writer = sealed(encryption_keys=[K2, K1])
    # another client's set between the reseal's read and its compare-and-set
    with BeforeStatement(rotating, "UPDATE", lambda: writer.set("k", b"new value")) as raced:
        assert await rotating.reseal() == 0
    assert raced.ran
    assert await rotating.get("k") == b"new value"


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "10"])
async def test_reseal_batch_size_must_be_a_positive_int(batch_size: Any) -> None:
    store = SQLStore(create_async_engine("sqlite+aiosqlite://"), encryption_keys=[K1])  # no SQL is sent
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        await store.reseal(batch_size=batch_size)


# -- the rest of the store on sealed rows ------------------------------------------------------------


@sqlite_only
@owned_only
async def test_renewal_expiry_delete_and_stats_work_on_sealed_rows(sealed: MakeSealed, clock: Clock) -> None:
    store = await first_store(sealed, encryption_keys=[K1], compress_min_size=0)
    await store.set("k", COMPRESSIBLE, expires_in=10)
    clock.advance(5)
    assert await store.get("k", renew_for=timedelta(seconds=60)) == COMPRESSIBLE
    assert await store.expires_in("k") == 60
    assert await store.exists("k") is True
    clock.advance(30)
    assert await store.get("k") == COMPRESSIBLE
    assert (await store.stats()).rows == 1
    await store.delete("k")
    assert await store.get("k") is None
    await store.set("gone", b"v", expires_in=1)
    clock.advance(2)
    assert await store.delete_expired() == 1


@sqlite_only
@owned_only
async def test_max_value_size_applies_to_the_value_before_sealing(sealed: MakeSealed) -> None:
    store = await first_store(sealed, encryption_keys=[K1], max_value_size=100)
    await store.set("k", b"x" * 100)
    assert await store.get("k") == b"x" * 100
    with pytest.raises(ValueError, match="max_value_size"):
        await store.set("k", b"x" * 101)


@owned_only
async def test_value_of_default_max_size_round_trips_sealed(sealed: MakeSealed) -> None:
    store = await first_store(sealed, encryption_keys=[K1], compress_min_size=0)
    value = os.urandom(store.max_value_size)  # incompressible: the largest sealed value
    await store.set("big", value)
    assert await store.get("big") == value


@owned_only
async def test_reseal_of_a_plain_value_of_default_max_size(sealed: MakeSealed) -> None:
    # the compare-and-set sends the old and the new value: the worst case for MySQL's packet size
    plain = await first_store(sealed)
    value = b"\x00" * plain.max_value_size
    await plain.set("big", value)
    assert await sealed(encryption_keys=[K1], read_unsealed=True).reseal(batch_size=1) == 1
    assert await sealed(encryption_keys=[K1]).get("big") == value


@sqlite_only
@owned_only
async def test_compressed_value_larger_than_max_value_size_is_not_expanded(sealed: MakeSealed) -> None:
    store = await first_store(sealed, max_value_size=1000)
    bomb = MAGIC + b"\x01\x01" + zlib.compress(b"\x00" * 1001)
    await write_raw(store, "k", bomb, new=True)
    assert await store.get("k") is None  # read as missing: never expanded, never returned as stored


@sqlite_only
@owned_only
async def test_each_cause_is_logged_once_without_data(
    sealed: MakeSealed, caplog: pytest.LogCaptureFixture
) -> None:
    writer = await first_store(sealed, encryption_keys=[K1])
    await writer.set("victim", b"SECRETVALUE")
    await writer.set("copy", b"x")
    await write_raw(writer, "copy", await stored_value(writer, "victim"))
    await sealed().set("plain", b"PLAINVALUE")
    reader = sealed(encryption_keys=[K2, K1])
    stranger = sealed(encryption_keys=[K3])
    with caplog.at_level(logging.WARNING, logger="sqlsession"):
        for _ in range(3):
            assert await reader.get("copy") is None
            assert await reader.get("plain") is None
            assert await stranger.get("victim") is None
    messages = [r.getMessage() for r in caplog.records if r.name == "sqlsession"]
    assert len(messages) == 3, messages
    assert any("copied" in m for m in messages)
    assert any("without encryption" in m for m in messages)
    assert any("not in encryption_keys" in m for m in messages)
    text = "\n".join(messages)
    for secret in ("SECRETVALUE", "PLAINVALUE", "victim", "copy", "LITESTAR", K1.hex(), K3.hex()):
        assert secret not in text


# -- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"encryption_keys": K1}, TypeError, "list or tuple"),
        ({"encryption_keys": K1.hex()}, TypeError, "list or tuple"),
        ({"encryption_keys": {K1}}, TypeError, "list or tuple"),
        ({"encryption_keys": [K1.hex()]}, TypeError, r"encryption_keys\[0\] must be bytes"),
        ({"encryption_keys": [bytearray(K1)]}, TypeError, "must be bytes"),
        ({"encryption_keys": [K1, b"short"]}, ValueError, r"encryption_keys\[1\] is 5 bytes"),
        ({"encryption_keys": [b"x" * 64]}, ValueError, "is 64 bytes"),
        ({"encryption_keys": [K1, K2, K1]}, ValueError, r"\[2\] repeats encryption_keys\[0\]"),
        ({"compress_min_size": -1}, ValueError, "compress_min_size must be None or >= 0"),
        ({"compress_min_size": 1.5}, TypeError, "compress_min_size must be None or an int"),
        ({"compress_min_size": True}, TypeError, "compress_min_size must be None or an int"),
        ({"read_unsealed": 1}, TypeError, "read_unsealed must be a bool"),
    ],
)
@pytest.mark.parametrize("how", ["engine", "url", "plugin"])
async def test_bad_sealing_options_are_clear_errors(
    tmp_path: Any, options: dict[str, Any], error: type[Exception], message: str, how: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    with pytest.raises(error, match=message):
        if how == "engine":
            engine = create_async_engine(url)
            try:
                SQLStore(engine, **options)
            finally:
                await engine.dispose()
        elif how == "url":
            SQLStore.with_url(url, **options)
        else:
            SQLStorePlugin(url, **options)


async def test_keys_without_cryptography_name_the_extra(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "cryptography"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'sqlsession\[encryption\]'"):
        SQLStore.with_url(url, encryption_keys=[K1])
    async with SQLStore.with_url(url, compress_min_size=10):  # compression needs nothing
        pass


async def test_settings_are_shared_by_namespaces_and_plugin_stores(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    plugin = SQLStorePlugin(url, encryption_keys=[K2, K1], compress_min_size=100, check_on_startup=False)
    store = plugin.store_for("sessions").with_namespace("x")
    assert store.compress_min_size == 100
    assert store.encryption_key_ids == plugin.store.encryption_key_ids
    assert len(store.encryption_key_ids) == 2
    assert K2.hex()[:8] not in store.encryption_key_ids[0]
    await plugin.store.close()


def test_parse_encryption_keys() -> None:
    b64 = base64.b64encode(K1).decode()
    urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")
    assert parse_encryption_keys(f" {b64}, {K2.hex()} ,{urlsafe},") == (K1, K2, b"\xfb" * 32)
    assert parse_encryption_keys("") == ()
    with pytest.raises(ValueError, match="key 1 is 16 bytes"):
        parse_encryption_keys(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(ValueError, match="key 2 is neither"):
        parse_encryption_keys(f"{b64},not a key!")


# -- the reseal command --------------------------------------------------------------------------------


@sqlite_only
@owned_only
async def test_reseal_command_uses_keys_from_the_environment(
    sealed: MakeSealed, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = await first_store(sealed, encryption_keys=[K1])
    await old.set("a", b"one")
    await old.with_namespace("x").set("b", b"two")
    keys = f"{base64.b64encode(K2).decode()},{K1.hex()}"
    monkeypatch.setenv("SQLSESSION_ENCRYPTION_KEYS", keys)
    argv = ["reseal", "--url", url, "--table", old.table.name, "--batch-size", "1"]
    assert await _in_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "resealed 2 rows" in out
    assert keys.split(",")[0] not in out
    new = sealed(encryption_keys=[K2])
    assert await new.get("a") == b"one"
    assert await new.with_namespace("x").get("b") == b"two"


def test_reseal_command_without_keys_or_compression_is_an_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SQLSESSION_ENCRYPTION_KEYS", raising=False)
    assert main(["reseal", "--url", f"sqlite:///{tmp_path}/x.db"]) == 1
    assert "SQLSESSION_ENCRYPTION_KEYS" in capsys.readouterr().err


def test_reseal_is_a_litestar_command(tmp_path: Path) -> None:
    import click

    cli = click.Group("litestar")
    SQLStorePlugin(url=f"sqlite:///{tmp_path / 'x.db'}").on_cli_init(cli)
    group = cli.commands["sqlsession"]
    assert isinstance(group, click.Group)
    assert "reseal" in group.commands


async def _in_thread(function: Callable[..., int], *args: Any) -> int:
    """Run the CLI (which runs its own event loop) off this test's loop."""
    import asyncio

    return await asyncio.to_thread(function, *args)


def test_reseal_command_of_the_app_uses_the_apps_keys(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    url, table = f"sqlite+aiosqlite:///{tmp_path}/app.db", unique_table()

    async def write_with_the_old_key() -> None:
        async with SQLStore.with_url(url, table_name=table, encryption_keys=[K1]) as old:
            await create_table(old)
            await old.set("a", b"one")

    asyncio.run(write_with_the_old_key())
    (tmp_path / "sealapp.py").write_text(
        "from litestar import Litestar\n"
        "from sqlsession import SQLStorePlugin\n"
        f"plugin = SQLStorePlugin({url!r}, table_name={table!r}, check_on_startup=False,\n"
        f"    cleanup_interval=None, encryption_keys=[{K2!r}, {K1!r}])\n"
        "app = Litestar(plugins=[plugin])\n"
    )
    monkeypatch.delenv("SQLSESSION_ENCRYPTION_KEYS", raising=False)
    result = litestar_command("sealapp:app", "reseal", "--batch-size", "1", app_dir=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "resealed 1 row" in result.stdout

    async def read_with_the_new_key() -> bytes | None:
        async with SQLStore.with_url(url, table_name=table, encryption_keys=[K2]) as new:
            return await new.get("a")

    assert asyncio.run(read_with_the_new_key()) == b"one"


def test_sealing_benchmark_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import sealing

    def once(function: Callable[[], object], *_args: Any, **_kwargs: Any) -> float:
        function()  # what is timed runs; its timing is the benchmark's business, not this test's
        return 1.0

    monkeypatch.setattr(sealing, "per_call", once)
    assert sealing.main(["--dialects", "sqlite", "--ops", "3"]) == 0
    out = capsys.readouterr().out
    assert "| 16 KiB | both |" in out
    assert "| sqlite | 512 B |" in out


async def test_exists_and_expires_in_agree_with_get_on_values_that_do_not_open(sealed: MakeSealed) -> None:
    writer = await first_store(sealed, encryption_keys=[K1])
    await writer.set("k", b"v", expires_in=100)
    await writer.set("forever", b"v")
    reader = sealed(encryption_keys=[K2])
    for key in ("k", "forever"):
        assert await reader.get(key) is None
        assert await reader.exists(key) is False
        assert await reader.expires_in(key) is None
    assert await sealed(encryption_keys=[K2, K1]).exists("k") is True  # a key that opens it
    assert await sealed(encryption_keys=[K2, K1]).expires_in("forever") == -1
    await write_raw(writer, "k", b"plain")  # unencrypted: read as missing when encryption is on
    assert await sealed(encryption_keys=[K1]).exists("k") is False
    assert await sealed(encryption_keys=[K1], read_unsealed=True).exists("k") is True


@sqlite_only  # what a store reads back is decided in Python, after the same SQL on every dialect
async def test_a_compressed_value_larger_than_this_stores_limit_reads_as_missing_and_is_not_resealed(
    url: str,
) -> None:
    table = unique_table()
    writer = SQLStore.with_url(url, table_name=table, compress_min_size=100, max_value_size=2000)
    reader = SQLStore.with_url(url, table_name=table, compress_min_size=100, max_value_size=1000)
    await create_table(writer)
    try:
        value = b"x" * 1500
        await writer.set("k", value)
        assert await reader.get("k") is None  # not the stored envelope's bytes
        assert await reader.reseal() == 0
        assert await writer.get("k") == value
    finally:
        await drop_table(writer)
        await writer.close()
        await reader.close()
