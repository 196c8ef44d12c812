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
