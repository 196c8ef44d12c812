"""The first hour: a misconfigured app does not start and says how to fix it; URLs and drivers as
users write them; a store call that fails at run time is logged with its cause, once."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy import text

from sqlsession import SQLStore, SQLStorePlugin, StoreError, TableMissingError
from sqlsession.schema import HEAD_REVISION

from ._support import sqlsession_command
from .conftest import create_table, dialect_url, drop_table, unique_table


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


def start(plugin: SQLStorePlugin) -> None:
    """Start the app (its lifespan) and serve one request."""
    with TestClient(Litestar(route_handlers=[ping], plugins=[plugin])) as client:
        assert client.get("/ping").text == "pong"


def start_fails(plugin: SQLStorePlugin) -> BaseException:
    """The error that stops the app's start-up (out of the task group the test client wraps it in)."""
    with pytest.raises(BaseException) as raised:
        start(plugin)
    error: BaseException = raised.value
    while isinstance(getattr(error, "exceptions", None), tuple) and len(error.exceptions) == 1:  # type: ignore[attr-defined]
        error = error.exceptions[0]  # type: ignore[attr-defined]
    return error


@pytest.fixture
async def migrated_table(url: str) -> AsyncIterator[str]:
    """A table made by the bundled revisions, dropped with them afterwards."""
    table = unique_table()
    where = ("--url", url, "--table", table)
    assert (await asyncio.to_thread(sqlsession_command, "upgrade", *where)).returncode == 0
    yield table
    assert (await asyncio.to_thread(sqlsession_command, "downgrade", "--yes", *where)).returncode == 0


# -- the start-up check ------------------------------------------------------------------------------


def test_an_app_on_a_missing_table_does_not_start_and_names_the_command(url: str) -> None:
    error = start_fails(SQLStorePlugin(url, table_name="no_such_table"))
    assert isinstance(error, TableMissingError)
    message = str(error)
    assert "python -m sqlsession upgrade --url '" in message
    assert "--table no_such_table" in message
    assert "\n" not in message


def test_the_check_can_be_turned_off_for_apps_that_start_before_their_database(url: str) -> None:
    start(SQLStorePlugin(url, table_name="no_such_table", check_on_startup=False))


def test_an_app_on_a_migrated_table_starts(url: str, migrated_table: str) -> None:
    start(SQLStorePlugin(url, table_name=migrated_table))


async def test_a_table_made_by_create_all_passes_the_check(url: str) -> None:
    store = SQLStore.with_url(url, table_name=unique_table())
    await create_table(store)
    try:
        await store.check()
    finally:
        await drop_table(store)
        await store.close()


async def test_a_table_at_an_unknown_revision_fails_the_check(url: str, migrated_table: str) -> None:
    store = SQLStore.with_url(url, table_name=migrated_table)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(
                text(f"UPDATE sqlsession_version_{migrated_table} SET version_num = 'sqlsession_9999'")
            )
        with pytest.raises(StoreError, match=rf"at revision sqlsession_9999.*expects {HEAD_REVISION}"):
            await store.check()
        async with store.engine.begin() as conn:
            await conn.execute(
                text(f"UPDATE sqlsession_version_{migrated_table} SET version_num = '{HEAD_REVISION}'")
            )
    finally:
        await store.close()


async def test_a_table_of_that_name_made_by_something_else_fails_the_check(url: str) -> None:
    table = unique_table()
    store = SQLStore.with_url(url, table_name=table)
    async with store.engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, data TEXT)"))
    try:
        with pytest.raises(StoreError, match="does not have sqlsession's columns"):
            await store.check()
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {table}"))
        await store.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres:s3cretpw@127.0.0.1:1/test", "mysql://root:s3cretpw@127.0.0.1:1/test"],
)
def test_an_app_whose_database_does_not_answer_does_not_start(url: str) -> None:
    error = start_fails(SQLStorePlugin(url))
    assert isinstance(error, StoreError)
    assert "does not answer" in str(error)
    assert "s3cretpw" not in str(error)


# -- URLs and drivers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+asyncmy"),
        ("mariadb://u@h/db", "mariadb+asyncmy"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite://", "sqlite+aiosqlite"),
    ],
)
def test_urls_without_a_driver_get_the_async_default(url: str, driver: str) -> None:
    assert SQLStore.with_url(url).engine.url.drivername == driver


async def test_a_postgres_url_works(tmp_path: Path) -> None:
    url = dialect_url("asyncpg", tmp_path).replace("postgresql+asyncpg://", "postgres://")
    store = SQLStore.with_url(url, table_name=unique_table())
    await create_table(store)
    try:
        await store.set("k", b"v")
        assert await store.get("k") == b"v"
    finally:
        await drop_table(store)
        await store.close()


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("mysql+aiomysql://u@h/db", "use mysql+asyncmy"),
        ("postgresql+psycopg2://u@h/db", "use postgresql+asyncpg or postgresql+psycopg"),
        ("sqlite+pysqlite:///x.db", "use sqlite+aiosqlite"),
    ],
)
def test_drivers_the_store_does_not_run_on_are_refused_with_the_alternative(url: str, advice: str) -> None:
    with pytest.raises(ValueError, match=re.escape(advice)):
        SQLStore.with_url(url)


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql://u@h/db", "asyncpg", "asyncpg"),
        ("postgresql+psycopg://u@h/db", "psycopg", "psycopg"),
        ("mysql://u@h/db", "asyncmy", "asyncmy"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    for name in list(sys.modules):
        if name == module or name.startswith(f"{module}."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when it is not installed
    with pytest.raises(ModuleNotFoundError, match=f"pip install 'sqlsession\\[{extra}\\]'"):
        SQLStore.with_url(url)


# -- failures at run time are logged -------------------------------------------------------------------


async def test_a_failing_call_is_logged_once_with_its_cause(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLStore.with_url(url, table_name="no_such_table")
    try:
        with caplog.at_level(logging.ERROR, logger="sqlsession"):
            for _ in range(3):
                with pytest.raises(TableMissingError):
                    await store.get("secret-session-id")
            with pytest.raises(TableMissingError):
                await store.set("secret-session-id", b"secret-value")
    finally:
        await store.close()
    records = [r for r in caplog.records if r.name == "sqlsession"]
    assert len(records) == 1, [r.getMessage() for r in records]
    message = records[0].getMessage()
    assert "no_such_table" in message
    assert "python -m sqlsession upgrade" in message
    assert "secret" not in message


async def test_a_new_cause_is_logged_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    store = SQLStore.with_url(url, table_name="t")
    try:
        with caplog.at_level(logging.ERROR, logger="sqlsession"):
            with pytest.raises(TableMissingError):
                await store.get("k")
            async with store.engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (namespace BLOB)"))  # the wrong columns
            with pytest.raises(StoreError):
                await store.get("k")
    finally:
        await store.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "sqlsession"]
    assert len(messages) == 2, messages
    assert "does not exist" in messages[0]
    assert "no such column" in messages[1]
