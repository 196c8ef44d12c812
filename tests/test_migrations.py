"""The Alembic revisions: they create and drop exactly the live Table, on every dialect."""

from __future__ import annotations

import concurrent.futures
import configparser
import contextlib
import io
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.config import CommandLine, Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore
from sqlsession._dialects import async_url
from sqlsession._migrate import alembic_config
from sqlsession.schema import DEFAULT_TABLE_NAME, HEAD_REVISION, REVISION_PREFIX, expires_at_index_name

from .conftest import Clock, create_table, drop_table, unique_table

ROOT = Path(__file__).resolve().parent.parent


def alembic(
    *args: str, url: str, table: str | None = None, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``alembic [-x table=TABLE] ARGS`` with the project's alembic.ini and ``SQLSESSION_URL=url``;
    run in this process (``in_process_alembic``) unless in another working directory."""
    argv = [*(["-x", f"table={table}"] if table else []), *args]
    env = {"SQLSESSION_URL": url, **(env or {})}
    if cwd != ROOT:
        return run([sys.executable, "-m", "alembic", *argv], cwd=cwd, env=env)
    return in_process_alembic(argv, env)


def in_process_alembic(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What ``python -m alembic ARGV`` run in the project's directory does, in a thread of this
    process (the environment runs an event loop of its own): alembic.ini's ``[alembic]`` settings,
    the environment minus any SQLSESSION_* variable plus ``env``, what alembic prints on stdout and
    what alembic.ini's logging would print on stderr; the exit status of alembic's command line."""
    parser = configparser.ConfigParser(defaults={"here": str(ROOT)})
    parser.read(ROOT / "alembic.ini")
    cli = CommandLine()
    options = cli.parser.parse_args(argv)
    stdout, stderr = io.StringIO(), io.StringIO()
    config = Config(stdout=stdout, cmd_opts=options)
    for name, value in parser.items("alembic"):
        if name not in ("here", "prepend_sys_path"):  # sqlsession is importable already
            config.set_main_option(name, value.replace("%", "%%"))
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
    saved_env, alembic_logger = dict(os.environ), logging.getLogger("alembic")
    saved_level = alembic_logger.level

    def command() -> int:
        try:
            cli.run_cmd(config, options)
        except SystemExit as exited:  # alembic's "FAILED: ..." exit
            return exited.code if isinstance(exited.code, int) else 1
        except Exception:
            stderr.write(traceback.format_exc())
            return 1
        return 0

    os.environ.clear()
    os.environ.update({k: v for k, v in saved_env.items() if not k.startswith("SQLSESSION_")}, **env)
    logging.getLogger().addHandler(handler)
    alembic_logger.setLevel(logging.INFO)
    try:
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
            concurrent.futures.ThreadPoolExecutor(1) as thread,
        ):
            returncode = thread.submit(command).result()
    finally:
        alembic_logger.setLevel(saved_level)
        logging.getLogger().removeHandler(handler)
        os.environ.clear()
        os.environ.update(saved_env)
    output = stdout.getvalue(), stderr.getvalue()
    return subprocess.CompletedProcess(["alembic", *argv], returncode % 256, *output)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command with this environment minus any SQLSESSION_* variable, plus ``env``."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("SQLSESSION_")}
    full_env.update(env)
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _describe(conn: Connection, table: str) -> dict[str, Any]:
    insp = inspect(conn)
    if not insp.has_table(table):
        return {}
    return {
        "columns": [c["name"] for c in insp.get_columns(table)],
        "primary_key": insp.get_pk_constraint(table)["constrained_columns"],
        "indexes": {i["name"]: i for i in insp.get_indexes(table)},
    }


async def describe(url: str, table: str) -> dict[str, Any]:
    """What the database holds for ``table``: columns, primary key, indexes."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_describe, table)
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
async def table(url: str) -> AsyncIterator[str]:
    name = unique_table()
    yield name
    await execute(url, f"DROP TABLE IF EXISTS {name}", f"DROP TABLE IF EXISTS sqlsession_version_{name}")


async def test_upgrade_creates_table_and_index_downgrade_drops_them(
    url: str, table: str, dialect: str
) -> None:
    ok(alembic("upgrade", "head", url=url, table=table))
    described = await describe(url, table)
    assert described["columns"] == ["namespace", "key_hash", "value", "expires_at"]
    assert described["primary_key"] == ["namespace", "key_hash"]
    index = described["indexes"][expires_at_index_name(table)]
    assert index["column_names"] == ["expires_at"]
    where = index.get("dialect_options", {}).get(f"{'postgresql' if 'pg' in dialect else 'sqlite'}_where")
    if dialect != "asyncmy":  # MySQL/MariaDB have no partial indexes: a plain one there
        assert "expires_at IS NOT NULL" in str(getattr(where, "text", where))
    ok(alembic("check", url=url, table=table))
    ok(alembic("downgrade", "base", url=url, table=table))
    assert await describe(url, table) == {}


async def test_check_finds_a_difference_when_the_schema_drifts(url: str, table: str, dialect: str) -> None:
    ok(alembic("upgrade", "head", url=url, table=table))
    on_table = f" ON {table}" if dialect == "asyncmy" else ""
    await execute(url, f"DROP INDEX {expires_at_index_name(table)}{on_table}")
    result = alembic("check", url=url, table=table)
    assert result.returncode != 0
    assert expires_at_index_name(table) in result.stdout + result.stderr


async def test_live_table_create_all_equals_the_revisions(url: str, table: str) -> None:
    store = SQLStore.with_url(url, table_name=table)
    await create_table(store)
    try:
        ok(alembic("stamp", "head", url=url, table=table))
        ok(alembic("check", url=url, table=table))
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


async def test_store_works_on_a_table_made_by_the_migrations(url: str, table: str) -> None:
    ok(alembic("upgrade", "head", url=url, table=table))
    store = SQLStore.with_url(url, table_name=table)
    try:
        await store.set("k", b"v", expires_in=10)
        assert await store.get("k", renew_for=20) == b"v"
        assert await store.expires_in("k") in (19, 20)
    finally:
        await store.__aexit__(None, None, None)


async def test_table_name_from_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    ok(alembic("upgrade", "head", url=url, env={"SQLSESSION_TABLE": "from_env"}))
    assert (await describe(url, "from_env"))["primary_key"] == ["namespace", "key_hash"]
    ok(alembic("downgrade", "base", url=url, env={"SQLSESSION_TABLE": "from_env"}))
    assert await describe(url, "from_env") == {}


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"])
async def test_plain_sync_and_async_urls_work(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}:///{tmp_path / 'x.db'}"
    ok(alembic("upgrade", "head", url=url, table="plain"))
    assert (await describe(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "plain"))["columns"]


async def test_default_url_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"]
    result = run(command, cwd=tmp_path, env={})
    assert result.returncode == 0, result.stderr
    assert (await describe(f"sqlite:///{tmp_path / 'sqlsession.db'}", "litestar_store"))["columns"]


def test_invalid_table_name_is_refused_by_the_migrations(tmp_path: Path) -> None:
    result = alembic("upgrade", "head", url=f"sqlite:///{tmp_path / 'x.db'}", table="x;drop")
    assert result.returncode != 0
    assert "invalid table name" in result.stderr


async def test_user_alembic_environment_applies_the_shipped_revisions(tmp_path: Path) -> None:
    """A user's own Alembic setup: version_locations naming the package, the branch label."""
    (tmp_path / "myenv").mkdir()
    (tmp_path / "alembic.ini").write_text(
        textwrap.dedent(
            """\
            [alembic]
            script_location = %(here)s/myenv
            version_locations = %(here)s/myenv/versions sqlsession:migrations
            path_separator = space
            sqlalchemy.url = sqlite:///%(here)s/app.db
            """
        )
    )
    (tmp_path / "myenv" / "versions").mkdir()
    (tmp_path / "myenv" / "env.py").write_text(
        textwrap.dedent(
            """\
            from alembic import context
            from sqlalchemy import create_engine

            engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
            with engine.connect() as connection:
                context.configure(connection=connection)
                with context.begin_transaction():
                    context.run_migrations()
            """
        )
    )
    command = [sys.executable, "-m", "alembic", "-x", "table=app_store", "upgrade", "sqlsession@head"]
    result = run(command, cwd=tmp_path, env={})
    assert result.returncode == 0, result.stderr
    described = await describe(f"sqlite:///{tmp_path / 'app.db'}", "app_store")
    assert described["primary_key"] == ["namespace", "key_hash"]


def test_the_store_expects_the_newest_bundled_revision() -> None:
    script = ScriptDirectory.from_config(alembic_config(DEFAULT_TABLE_NAME, None))  # type: ignore[arg-type]
    assert script.get_heads() == [HEAD_REVISION]
    assert all(rev.revision.startswith(REVISION_PREFIX) for rev in script.walk_revisions())


async def sqlite_table_sql(url: str, table: str) -> str:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            query = text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t")
            return str((await conn.execute(query, {"t": table})).scalar_one())
    finally:
        await engine.dispose()


async def test_upgrade_from_the_first_revision_keeps_every_row(
    url: str, table: str, dialect: str, clock: Clock
) -> None:
    """A table written under revision 0001 is upgraded in place (on SQLite rebuilt WITHOUT ROWID):
    every key keeps its value and expiry, ``alembic check`` is clean, and downgrade brings back
    the first layout with the rows still there."""
    ok(alembic("upgrade", "sqlsession_0001", url=url, table=table))
    if dialect == "sqlite":
        assert "WITHOUT ROWID" not in (await sqlite_table_sql(url, table)).upper()
    store = SQLStore.with_url(url, table_name=table, clock=clock)
    keys = {f"key{i}": bytes([i]) * (i * 40) for i in range(60)}
    expiry = {key: (i % 3) * 100 or None for i, key in enumerate(keys)}  # None: never expires

    async def assert_every_row_kept() -> None:
        for key, value in keys.items():
            assert await store.get(key) == value, key
            assert await store.expires_in(key) == (expiry[key] or -1), key
        assert (await store.stats()).rows == len(keys)

    try:
        for key, value in keys.items():
            await store.set(key, value, expires_in=expiry[key])
        ok(alembic("upgrade", "head", url=url, table=table))
        await assert_every_row_kept()
        ok(alembic("check", url=url, table=table))
        await store.check()  # the revision the store expects
        if dialect == "sqlite":
            assert "WITHOUT ROWID" in (await sqlite_table_sql(url, table)).upper()
            assert (await describe(url, table))["indexes"][expires_at_index_name(table)]["column_names"] == [
                "expires_at"
            ]
        ok(alembic("downgrade", "sqlsession_0001", url=url, table=table))
        await assert_every_row_kept()
        if dialect == "sqlite":
            assert "WITHOUT ROWID" not in (await sqlite_table_sql(url, table)).upper()
        ok(alembic("downgrade", "base", url=url, table=table))
        assert await describe(url, table) == {}
    finally:
        await store.close()
