"""Defects found by review at the end of session 3, each shown first to fail."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, text

from sqlsession import SQLStore
from sqlsession.cli import main
from sqlsession.schema import store_table

from .conftest import create_table, drop_table, sqlite_only, unique_table


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


def test_downgrade_of_a_table_the_migrations_did_not_make_says_so_and_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'made.db'}"
    engine = create_engine(url)
    try:
        store_table(MetaData()).metadata.create_all(engine)
        assert main(["downgrade", "--yes", "--url", url]) == 1
        assert "not made by sqlsession's migrations" in capsys.readouterr().err
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM litestar_store")).scalar_one() == 0
    finally:
        engine.dispose()


def test_downgrade_never_creates_a_database_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    assert main(["downgrade", "--yes", "--url", f"sqlite:///{missing}"]) == 1
    assert not missing.exists()
