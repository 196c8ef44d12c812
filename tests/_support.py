"""Helpers of the tests: time bounds, statement logs, raw rows, the commands run in this process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import io
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore
from sqlsession._dialects import async_url
from sqlsession.cli import main

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def within(seconds: float) -> Callable[[F], F]:
    """Fail an async test that has not finished after ``seconds`` (cancelling what it awaits)."""

    def decorate(test: F) -> F:
        @functools.wraps(test)
        async def bounded(*args: Any, **kwargs: Any) -> Any:
            try:
                return await asyncio.wait_for(test(*args, **kwargs), seconds)
            except asyncio.TimeoutError:
                raise AssertionError(f"{test.__name__} did not finish within {seconds} s") from None

        return bounded  # type: ignore[return-value]

    return decorate


class StatementLog:
    """Every statement the store sends from now on, seen by SQLAlchemy's ``before_cursor_execute``.

    A store whose engine has a cursor-execute listener runs every statement through Core, so the
    listener sees all of them, on engines the store owns and engines it borrows alike. Use as a
    context manager; ``statements`` lists ``(sql, parameters)``.
    """

    def __init__(self, store: SQLStore) -> None:
        self.statements: list[tuple[str, Any]] = []
        self._engine = store.engine.sync_engine

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> StatementLog:
        event.listen(self._engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_execute)


class BeforeStatement:
    """Runs ``action`` once, inside a call of the store, just before the first statement of the
    store's engine that starts with ``verb`` is sent: another client's write between two statements
    of one call (say, between a renewal's read and its write). Seen through SQLAlchemy's
    ``before_cursor_execute`` (with a listener the store runs its statements through Core); the action
    is awaited through the connection's ``run_async``. Use as a context manager; ``ran`` tells."""

    def __init__(self, store: SQLStore, verb: str, action: Callable[[], Awaitable[object]]) -> None:
        self.verb, self.action, self.ran = verb.upper(), action, False
        self._engine = store.engine.sync_engine

    def _before(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not self.ran and statement.lstrip().upper().startswith(self.verb):
            self.ran = True
            conn.connection.dbapi_connection.run_async(lambda _driver_connection: self.action())

    def __enter__(self) -> BeforeStatement:
        event.listen(self._engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)


async def raw_rows(store: SQLStore) -> list[tuple[bytes, bytes, bytes, int | None]]:
    """Every row of the store's table as stored, read on a connection of its own."""
    engine = create_async_engine(store.engine.url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(store.table))
            return [(bytes(ns), bytes(kh), bytes(v), exp) for ns, kh, v, exp in result.all()]
    finally:
        await engine.dispose()


# the bytes that MySQL escapes and PostgreSQL's text protocol would spell out: the costliest value
_WORST_CASE = b"\x00'\"\\\x1a\n\r\xff"


def value_of(size: int) -> bytes:
    """``size`` bytes, all of them ones that a driver or server may have to escape."""
    return (_WORST_CASE * (size // len(_WORST_CASE) + 1))[:size]


def with_credentials(url: str, username: str, password: str) -> str:
    return make_url(url).set(username=username, password=password).render_as_string(hide_password=False)


def borrowed_or_owned(url: str, engine_mode: str, engine_options: dict[str, Any], **options: Any) -> SQLStore:
    """A store of ``engine_mode`` whose engine gets ``engine_options``."""
    if engine_mode == "owned":
        return SQLStore.with_url(url, engine_options=engine_options, **options)
    return SQLStore(create_async_engine(async_url(url), **engine_options), **options)


async def close_store(store: SQLStore, engine_mode: str) -> None:
    await store.__aexit__(None, None, None)
    if engine_mode == "borrowed":
        await store.engine.dispose()


def chain(error: BaseException) -> Sequence[BaseException]:
    """``error`` and every exception it was raised from or during."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# -- the commands, run in this process -----------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Ran:
    """What a command printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def sqlsession_command(*args: str, stdin: str = "") -> Ran:
    """``python -m sqlsession ARGS``, in this process: ``sqlsession.cli.main``, which is all that
    ``python -m sqlsession`` runs (``test_cli.py`` also runs the real one once), in a thread of its
    own (it runs an event loop of its own); an async test calls it through ``asyncio.to_thread``, so
    as not to block its loop. The environment and working directory are this process's
    (``monkeypatch.setenv``, ``monkeypatch.chdir``)."""
    out, err = io.StringIO(), io.StringIO()

    def command() -> int:
        try:
            return main(list(args))
        except SystemExit as exited:  # argparse: --help, usage errors
            return 0 if exited.code is None else exited.code if isinstance(exited.code, int) else 1

    real_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _in_a_thread(command)
    finally:
        sys.stdin = real_stdin
    return Ran(code, out.getvalue(), err.getvalue())


def _in_a_thread(function: Callable[[], Any]) -> Any:
    """``function()`` in a thread of its own: a command runs an event loop of its own, which must not
    touch this thread's (an async test's, or the one pytest-asyncio keeps for the next test)."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(function).result()


def litestar_command(app: str, *args: str, app_dir: Path = ROOT, stdin: str = "") -> Ran:
    """``litestar --app APP sqlsession ARGS``, in this process (click's test runner); the app's module
    is imported afresh, so that it reads the environment of this call. In a thread of its own.
    ``stdout`` holds everything printed (click mixes in stderr in some versions)."""
    from click.testing import CliRunner
    from litestar.cli.main import litestar_group

    sys.modules.pop(app.partition(":")[0], None)
    argv = ["--app-dir", str(app_dir), "--app", app, "sqlsession", *args]
    result = _in_a_thread(lambda: CliRunner().invoke(litestar_group, argv, input=stdin))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.output, result.output)
