"""``python -m sqlsession``: failures are one line on stderr and a non-zero exit, no traceback.

The commands run in this process (``sqlsession.cli.main``, ``litestar sqlsession`` through click's
test runner); one test runs the real ``python -m sqlsession``, which only calls ``main``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import NamespaceStats, SQLStore, StoreStats
from sqlsession.cli import format_stats, main
from sqlsession.schema import HEAD_REVISION, store_table

from ._support import ROOT, litestar_command, sqlsession_command
from .conftest import unique_table

run = sqlsession_command

FAILURES = [
    ("sqlite:///{tmp}/missing.db", "no database file"),
    ("sqlite:///{tmp}/empty.db", "does not exist: run `python -m sqlsession upgrade --url 'sqlite+aiosqlite"),
    ("postgresql://postgres:s3cretpw@127.0.0.1:1/test", "Connect call failed"),
    ("mysql://nobody:s3cretpw@127.0.0.1:1/test", "Can't connect"),
    ("not a url", "Could not parse"),
    ("nosuchdb://x/y", "Can't load plugin"),
]


@pytest.mark.parametrize("command", ["stats", "delete-expired"])
@pytest.mark.parametrize(("url", "message"), FAILURES)
def test_failures_are_one_line_and_a_non_zero_exit(
    tmp_path: Path, command: str, url: str, message: str
) -> None:
    (tmp_path / "empty.db").touch()
    result = run(command, "--url", url.format(tmp=tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert "s3cretpw" not in result.stderr


def test_python_dash_m_sqlsession_exits_with_the_commands_status_and_one_line(tmp_path: Path) -> None:
    # the real entry point, once: its exit status is main's, and nothing more is printed
    url = "postgresql://postgres:s3cretpw@127.0.0.1:1/test"
    command = [sys.executable, "-m", "sqlsession", "stats", "--url", url]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and "Connect call failed" in result.stderr
    assert "s3cretpw" not in result.stderr


def test_invalid_table_name_is_an_error(tmp_path: Path) -> None:
    result = run("stats", "--url", f"sqlite:///{tmp_path}/x.db", "--table", "x;drop table y")
    assert result.returncode == 1
    assert "invalid table name" in result.stderr


def test_usage_errors_exit_with_2() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["stats", "--no-such-option"])
    assert exited.value.code == 2


# -- the first hour: create the table from the installed package, see where it is, drop it -----------


@pytest.fixture
def server_url(url: str, dialect: str) -> str:
    """This dialect's URL as a user writes it for the commands: no driver named (the default one)."""
    if dialect == "psycopg":
        return url
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


async def _has_table(url: str, table: str) -> bool:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: inspect(sync).has_table(table))
    finally:
        await engine.dispose()


async def test_upgrade_current_and_downgrade_manage_the_table(
    url: str, server_url: str, dialect: str
) -> None:
    table = unique_table()
    where = ["--url", server_url, "--table", table]
    before = await asyncio.to_thread(run, "current", *where)
    if dialect == "sqlite":  # no file yet: only upgrade makes one
        assert before.returncode == 1
        assert "no database file" in before.stderr
    else:
        assert before.returncode == 0, before.stderr
        assert f"{table}: no table" in before.stdout

    upgraded = await asyncio.to_thread(run, "upgrade", *where)
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        assert await _has_table(url, table)
        current = await asyncio.to_thread(run, "current", *where)
        assert current.returncode == 0, current.stderr
        assert f"{table}: {HEAD_REVISION} (head)" in current.stdout
        async with SQLStore.with_url(server_url, table_name=table) as store:
            await store.set("k", b"v")
            assert await store.get("k") == b"v"
        again = await asyncio.to_thread(run, "upgrade", *where)  # idempotent
        assert again.returncode == 0, again.stderr
    finally:
        downgraded = await asyncio.to_thread(run, "downgrade", "--yes", *where)
    assert downgraded.returncode == 0, downgraded.stderr
    assert not await _has_table(url, table)
    assert not await _has_table(url, f"sqlsession_version_{table}")
    assert f"{table}: no table" in (await asyncio.to_thread(run, "current", *where)).stdout


def test_url_defaults_to_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "from-env.db"
    monkeypatch.setenv("SQLSESSION_URL", f"sqlite:///{database}")
    monkeypatch.delenv("SQLSESSION_TABLE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run("upgrade")
    assert result.returncode == 0, result.stderr
    assert database.exists()
    assert not (tmp_path / "sqlsession.db").exists()
    stats = run("stats")
    assert stats.returncode == 0, stats.stderr
    assert "table litestar_store: 0 rows, 0 expired" in stats.stdout


def test_without_url_or_variable_the_commands_use_the_plugins_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQLSESSION_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run("upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sqlsession.db").exists()


@pytest.mark.parametrize("command", ["stats", "delete-expired", "current"])
def test_commands_that_read_never_create_a_database_file(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "mistyped.db"
    result = run(command, "--url", f"sqlite:///{missing}")
    assert result.returncode == 1
    assert "no database file" in result.stderr
    assert "upgrade" in result.stderr
    assert not missing.exists()


def test_downgrade_asks_before_dropping_and_no_keeps_the_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    assert run("upgrade", "--url", url).returncode == 0
    answered = run("downgrade", "--url", url, stdin="n\n")
    assert answered.returncode == 1
    assert "litestar_store" in answered.stdout  # the question names the table
    assert f"litestar_store: {HEAD_REVISION} (head)" in run("current", "--url", url).stdout


def test_help_is_plain_text() -> None:
    for args in ([], ["upgrade"], ["downgrade"], ["current"], ["stats"], ["delete-expired"]):
        result = run(*args, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: python -m sqlsession" in result.stdout
        assert "``" not in result.stdout
        assert ":func:" not in result.stdout


def test_counts_are_singular_for_one() -> None:
    stats = StoreStats(rows=1, expired=1, namespaces={("a",): NamespaceStats(1, 1)})
    assert format_stats("t", stats) == "table t: 1 row, 1 expired\n  a: 1 row, 1 expired"


def test_the_litestar_group_has_the_same_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLSESSION_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("SQLSESSION_TABLE", "app_store")

    def run_in_app(*args: str, answer: str = "") -> str:
        return litestar_command("examples.app:app", *args, stdin=answer).stdout

    assert f"app_store: upgraded to {HEAD_REVISION} (head)" in run_in_app("upgrade")
    assert f"app_store: {HEAD_REVISION} (head)" in run_in_app("current")
    refused = litestar_command("examples.app:app", "downgrade", stdin="n\n")
    assert refused.returncode != 0
    assert f"app_store: {HEAD_REVISION} (head)" in run_in_app("current")
    dropped = litestar_command("examples.app:app", "downgrade", "--yes")
    assert dropped.returncode == 0, dropped.stdout
    assert "app_store: dropped" in dropped.stdout
    assert "app_store: no table" in run_in_app("current")


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
