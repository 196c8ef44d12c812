"""Helpers of the reliability, property and security tests: time bounds, statement logs, raw rows."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore
from sqlsession._dialects import async_url

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


class _RecordingRunner:
    """Wraps a store's driver runner: every SQL text and argument sent on the fast path."""

    def __init__(self, runner: Any, log: list[tuple[str, Any]]) -> None:
        self.runner = runner
        self.log = log

    async def rows(self, conn: Any, sql: str, args: Any) -> Any:
        self.log.append((sql, args))
        return await self.runner.rows(conn, sql, args)

    async def rowcount(self, conn: Any, sql: str, args: Any) -> Any:
        self.log.append((sql, args))
        return await self.runner.rowcount(conn, sql, args)


class StatementLog:
    """Every statement the store sends from now on, whichever way it runs.

    A borrowed engine runs Core: SQLAlchemy's ``before_cursor_execute`` event sees each
    statement. An owned engine runs compiled SQL on the driver's connection: its runner is
    wrapped. Use as a context manager; ``statements`` lists ``(sql, parameters)``.
    """

    def __init__(self, store: SQLStore) -> None:
        self.statements: list[tuple[str, Any]] = []
        self._engine = store.engine.sync_engine
        self._executor = store._shared.executor
        self._runner = getattr(self._executor, "runner", None)

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> StatementLog:
        event.listen(self._engine, "before_cursor_execute", self._on_execute)
        if self._runner is not None:
            self._executor.runner = _RecordingRunner(self._runner, self.statements)  # type: ignore[attr-defined]
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_execute)
        if self._runner is not None:
            self._executor.runner = self._runner  # type: ignore[attr-defined]


async def raw_rows(store: SQLStore) -> list[tuple[bytes, bytes, bytes, int | None]]:
    """Every row of the store's table as stored, read on a connection of its own."""
    engine = create_async_engine(store.engine.url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(store.table))
            return [(bytes(ns), bytes(kh), bytes(v), exp) for ns, kh, v, exp in result.all()]
    finally:
        await engine.dispose()


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
