"""``on_error``: a store that survives an outage of its database, and the circuit breaker.

On every dialect, the database is made unreachable and reachable again by the test (``_outage.py``:
a TCP proxy that is cut for the servers, the file's directory moved away for SQLite); the Litestar
app test stops and starts a private PostgreSQL for real (``_servers.py``). Time for the breaker
moves by a hand-moved clock; nothing sleeps to wait for it, and nothing asserts durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import (
    SQLStore,
    SQLStorePlugin,
    StoreError,
    StoreUnavailableError,
    TableMissingError,
)
from sqlsession._breaker import BACKOFF_FIRST, BACKOFF_MAX, FAILURES_TO_OPEN
from sqlsession._dialects import async_url
from sqlsession._execution import LOG_REPEAT_SECONDS
from sqlsession.plugin import DEFAULT_ON_ERROR

from ._outage import Outage
from ._servers import PrivatePostgres
from ._support import within
from .conftest import Clock, create_table, drop_table, owned_only, sqlite_only, unique_table


@dataclass
class Monotonic:
    """The breaker's clock, moved by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setting:
    """Stores of one dialect and engine mode behind an outage the test controls."""

    outage: Outage
    engine_mode: str
    clock: Clock
    table: str
    stores: list[SQLStore]

    def make(self, **options: Any) -> SQLStore:
        """A store on this setting's table; its breaker on a clock of the test's."""
        options.setdefault("table_name", self.table)
        options.setdefault("clock", self.clock)
        url = self.outage.url
        if self.engine_mode == "owned":
            store = SQLStore.with_url(url, **options)
        else:
            store = SQLStore(create_async_engine(async_url(url)), **options)
        self.stores.append(store)
        return store

    @staticmethod
    def connection_attempts(store: SQLStore) -> list[int]:
        """A counter (one item) of the connections the store's engine tries to open from now on."""
        attempts = [0]

        def count(*_args: Any) -> None:
            attempts[0] += 1

        event.listen(store.engine.sync_engine, "do_connect", count)
        return attempts


@pytest.fixture
async def setting(url: str, engine_mode: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Setting]:
    outage = Outage(url, tmp_path)
    await outage.start()
    setting = Setting(outage, engine_mode, clock, unique_table(), [])
    admin = setting.make()
    await create_table(admin)
    try:
        yield setting
    finally:
        await outage.restore()
        await admin.engine.dispose()  # its pooled connections may have been cut
        await drop_table(admin)
        for store in setting.stores:
            await store.__aexit__(None, None, None)
            if engine_mode == "borrowed":
                await store.engine.dispose()
        await outage.close()


# -- what a store does while the database cannot be reached ----------------------------------------


@within(60)
async def test_a_miss_store_reads_nothing_and_writes_nothing_while_unreachable(setting: Setting) -> None:
    monotonic = Monotonic()
    store = setting.make(on_error="miss", breaker_clock=monotonic)
    await store.set("kept", b"before", expires_in=100)
    await setting.outage.cut(store)
    assert await store.get("kept") is None
    assert await store.get("kept", renew_for=1000) is None
    assert await store.exists("kept") is False
    assert await store.expires_in("kept") is None
    await store.set("kept", b"during", expires_in=5)
    await store.set("new", b"during")
    await store.delete("kept")
    await store.delete_all()
    await setting.outage.restore()
    monotonic.now += BACKOFF_MAX  # the back-off is over (tested below): the next call tries
    # after: nothing of what was asked during the outage happened, and the store works again
    assert await store.get("kept") == b"before"
    assert await store.expires_in("kept") == 100
    assert await store.get("new") is None
    await store.set("new", b"after")
    assert await store.get("new") == b"after"


@within(60)
async def test_a_raise_store_raises_store_unavailable_error_while_unreachable(setting: Setting) -> None:
    store = setting.make()
    assert store.on_error == "raise"
    await store.set("kept", b"before")
    await setting.outage.cut(store)
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.get("kept"),
        lambda: store.get("kept", renew_for=10),
        lambda: store.exists("kept"),
        lambda: store.expires_in("kept"),
        lambda: store.set("kept", b"during"),
        lambda: store.delete("kept"),
        store.delete_all,
        store.delete_expired,
        store.stats,
    ]
    for _ in range(2):  # also once the breaker would be open: a raising store is never held back
        for call in calls:
            with pytest.raises(StoreUnavailableError):
                await call()
    await setting.outage.restore()
    assert await store.get("kept") == b"before"


@owned_only
@within(60)
async def test_maintenance_calls_raise_also_on_a_miss_store(setting: Setting) -> None:
    store = setting.make(on_error="miss")
    await setting.outage.cut(store)
    with pytest.raises(StoreUnavailableError):
        await store.delete_expired()
    with pytest.raises(StoreUnavailableError):
        await store.stats()


@sqlite_only
@owned_only
@within(60)
async def test_arguments_are_checked_whatever_on_error(setting: Setting) -> None:
    store = setting.make(on_error="miss")
    await setting.outage.cut(store)
    with pytest.raises(TypeError):
        await store.get(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="renew_for"):
        await store.get("k", renew_for=-1)
    with pytest.raises(TypeError):
        await store.set("k", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_value_size"):
        await store.set("k", b"x" * (store.max_value_size + 1))
    with pytest.raises(ValueError, match="expires_in"):
        await store.set("k", b"v", expires_in=float("nan"))
    with pytest.raises(TypeError):
        await store.delete(None)  # type: ignore[arg-type]


@owned_only
async def test_a_missing_table_still_raises_on_a_miss_store(setting: Setting) -> None:
    # a misconfiguration (the migrations were not run), not an outage: it must not go unnoticed
    store = setting.make(on_error="miss", table_name=unique_table())
    with pytest.raises(TableMissingError, match="python -m sqlsession upgrade"):
        await store.get("k")
    with pytest.raises(TableMissingError):
        await store.set("k", b"v")
    assert not store.breaker_open


@sqlite_only
@owned_only
@within(60)
async def test_namespaces_inherit_on_error_and_can_choose_their_own(setting: Setting) -> None:
    parent = setting.make(on_error="miss")
    inherits, raises = parent.with_namespace("cache"), parent.with_namespace("sessions", on_error="raise")
    assert (parent.on_error, inherits.on_error, raises.on_error) == ("miss", "miss", "raise")
    assert raises.with_namespace("deeper").on_error == "raise"
    await setting.outage.cut(parent)
    assert await inherits.get("k") is None
    with pytest.raises(StoreUnavailableError):
        await raises.get("k")


# -- the circuit breaker --------------------------------------------------------------------------


@owned_only
@within(60)
async def test_the_breaker_stops_trying_after_repeated_failures_and_probes_after_the_back_off(
    setting: Setting,
) -> None:
    monotonic = Monotonic()
    store = setting.make(on_error="miss", breaker_clock=monotonic)
    await store.set("k", b"v", expires_in=100)
    attempts = setting.connection_attempts(store)
    await setting.outage.cut(store)

    for _ in range(30):
        assert await store.get("k") is None
    # each failing call tries to connect at most twice (a lost connection is tried again once)
    assert FAILURES_TO_OPEN <= attempts[0] <= 2 * FAILURES_TO_OPEN
    assert store.breaker_open
    held = attempts[0]
    await asyncio.gather(*(store.set(f"k{i}", b"v") for i in range(20)))
    assert attempts[0] == held  # open: no call tries

    backoff = BACKOFF_FIRST
    for _ in range(3):  # each failed probe doubles the back-off
        monotonic.now += backoff * 0.99
        assert await store.get("k") is None
        assert attempts[0] == held
        monotonic.now += backoff * 0.02
        # half-open: of many concurrent calls, one probes
        assert await asyncio.gather(*(store.get("k") for _ in range(20))) == [None] * 20
        assert held < attempts[0] <= held + 2
        held = attempts[0]
        backoff = min(backoff * 2, BACKOFF_MAX)

    await setting.outage.restore()
    monotonic.now += backoff * 1.01
    assert await store.get("k") == b"v"  # the probe reaches the database: closed again
    assert not store.breaker_open
    await store.set("k", b"v2")
    assert await store.get("k") == b"v2"


@sqlite_only
@owned_only
@within(60)
async def test_the_breaker_is_shared_by_the_namespaces_and_closed_by_a_raise_store(setting: Setting) -> None:
    monotonic = Monotonic()
    parent = setting.make(breaker_clock=monotonic)  # "raise"
    cache, sessions = parent.with_namespace("cache", on_error="miss"), parent.with_namespace("sessions")
    await sessions.set("s", b"data")
    attempts = setting.connection_attempts(parent)
    await setting.outage.cut(parent)
    for _ in range(FAILURES_TO_OPEN):
        with pytest.raises(StoreUnavailableError):
            await sessions.get("s")
    assert cache.breaker_open  # failures of a raise store count
    held = attempts[0]
    assert await cache.get("c") is None
    assert attempts[0] == held  # held back by what the sessions store saw
    await setting.outage.restore()
    assert await sessions.get("s") == b"data"  # a raise store is never held back ...
    assert not cache.breaker_open  # ... and its success closes the breaker
    await cache.set("c", b"cached")  # no time had to pass (the breaker's clock stood still)
    assert await cache.get("c") == b"cached"
    assert monotonic.now == Monotonic().now


@sqlite_only
@owned_only
@within(60)
async def test_a_cancelled_probe_does_not_keep_the_breaker_half_open(setting: Setting) -> None:
    monotonic = Monotonic()
    store = setting.make(on_error="miss", breaker_clock=monotonic)
    await setting.outage.cut(store)
    for _ in range(FAILURES_TO_OPEN):
        await store.get("k")
    monotonic.now += BACKOFF_FIRST
    probe = asyncio.ensure_future(store.get("k"))  # a probe goes out ...
    await asyncio.sleep(0)
    probe.cancel()  # ... and is never heard of again
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    assert store.breaker_open  # half-open: the probe is out
    monotonic.now += BACKOFF_FIRST
    await setting.outage.restore()
    assert await store.get("missing") is None
    assert not store.breaker_open  # the next probe went out, and closed it


# -- logging --------------------------------------------------------------------------------------


@sqlite_only
@owned_only
@within(60)
async def test_misses_are_logged_as_one_warning_per_interval(
    setting: Setting, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = Monotonic()
    store = setting.make(on_error="miss", breaker_clock=monotonic)
    await store.set("k", b"value-that-must-not-be-logged")
    await setting.outage.cut(store)
    with caplog.at_level(logging.INFO, logger="sqlsession"):
        for _ in range(40):
            await store.get("k")
            await store.set("k", b"value-that-must-not-be-logged")
        records = [r for r in caplog.records if r.name == "sqlsession"]
        assert [r.levelno for r in records] == [logging.WARNING]
        assert "cannot be reached" in records[0].getMessage()
        monotonic.now += LOG_REPEAT_SECONDS  # the interval has passed
        await store.get("k")
        records = [r for r in caplog.records if r.name == "sqlsession"]
        assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
        assert "more since the last warning" in records[1].getMessage()
    assert "must-not-be-logged" not in caplog.text


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"), [("fail", ValueError), ("MISS", ValueError), (None, TypeError), (1, TypeError)]
)
def test_bad_on_error_is_refused_everywhere(tmp_path: Path, value: object, error: type[Exception]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(error, match="on_error"):
        SQLStore.with_url(url, on_error=value)  # type: ignore[arg-type]
    with pytest.raises(error, match="on_error"):
        SQLStore(create_async_engine(url), on_error=value)  # type: ignore[arg-type]
    with pytest.raises(error, match="on_error"):
        SQLStorePlugin(url, on_error=value)  # type: ignore[arg-type]
    with pytest.raises(error, match="on_error"):
        SQLStorePlugin(url, on_error={"sessions": value})  # type: ignore[dict-item]
    if value is not None:  # None: the parent's
        with pytest.raises(error, match="on_error"):
            SQLStore.with_url(url).with_namespace("x", on_error=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_error"):
        SQLStorePlugin(url, on_error={1: "miss"})  # type: ignore[dict-item]


def test_plugin_defaults_fail_open_for_the_cache_and_the_rate_limit_only(tmp_path: Path) -> None:
    plugin = SQLStorePlugin(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert dict(DEFAULT_ON_ERROR) == {"sessions": "raise", "response_cache": "miss", "rate_limit": "miss"}
    assert {name: plugin.store_for(name).on_error for name in plugin.store_names} == dict(DEFAULT_ON_ERROR)
    assert plugin.store_for("other").on_error == "raise"
    assert plugin.store.on_error == "raise"  # the cleanup and the CLI see their errors


def test_plugin_on_error_per_name_or_for_all(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    mapped = SQLStorePlugin(url, on_error={"sessions": "miss", "rate_limit": "raise", "other": "miss"})
    assert mapped.store_for("sessions").on_error == "miss"
    assert mapped.store_for("rate_limit").on_error == "raise"
    assert mapped.store_for("response_cache").on_error == "miss"  # the default, kept
    assert mapped.store_for("other").on_error == "miss"
    assert mapped.store_for("unlisted").on_error == "raise"
    for choice in ("raise", "miss"):
        everywhere = SQLStorePlugin(url, on_error=choice)
        assert {everywhere.store_for(n).on_error for n in (*everywhere.store_names, "other")} == {choice}


# -- a Litestar app through a real stop and start of its PostgreSQL ----------------------------------


class _App:
    """An app with a cached route, a rate-limited route and session routes on the plugin's stores."""

    def __init__(self, url: str, table: str) -> None:
        self.handler_calls = 0

        @get("/cached", cache=600, sync_to_thread=False)
        def cached() -> dict[str, int]:
            self.handler_calls += 1
            return {"calls": self.handler_calls}

        @get("/limited", sync_to_thread=False)
        def limited() -> str:
            return "ok"

        @get("/session/{value:str}")
        async def remember(request: Request[Any, Any, Any]) -> str:
            value = str(request.path_params["value"])
            request.session["value"] = value
            return value

        @get("/session")
        async def recall(request: Request[Any, Any, Any]) -> str:
            return str(request.session.get("value", ""))

        self.plugin = SQLStorePlugin(url, table_name=table, cleanup_interval=None)
        self.app = Litestar(
            route_handlers=[cached, limited, remember, recall],
            plugins=[self.plugin],
            middleware=[
                # public routes stay out of the sessions: a session needs its store
                ServerSideSessionConfig(exclude=["/cached", "/limited"]).middleware,
                RateLimitConfig(rate_limit=("minute", 3), exclude=["/cached", "/session"]).middleware,
            ],
        )


async def _eventually(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    for _ in range(int(seconds * 20)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
@within(180)
async def test_app_serves_cache_and_rate_limit_through_a_postgres_outage_and_recovers(
    private_postgres: PrivatePostgres, driver: str
) -> None:
    table = unique_table()
    url = private_postgres.url(driver)
    admin = SQLStore.with_url(url, table_name=table)
    await create_table(admin)
    subject = _App(url, table)
    try:
        # one client: the public routes are outside the session middleware, cookie or not
        async with AsyncTestClient(subject.app, raise_server_exceptions=False) as client:
            visitor = user = client
            # before: cached, limited, sessions kept
            assert (await visitor.get("/cached")).json() == {"calls": 1}
            assert (await visitor.get("/cached")).json() == {"calls": 1}
            assert [(await visitor.get("/limited")).status_code for _ in range(4)] == [200, 200, 200, 429]
            assert (await user.get("/session/abc")).text == "abc"
            assert (await user.get("/session")).text == "abc"

            await asyncio.to_thread(private_postgres.stop)
            try:
                assert not private_postgres.ready()
                # during: the cached route answers from its handler, the limit lets requests through
                for n in range(2, 8):
                    response = await visitor.get("/cached")
                    assert (response.status_code, response.json()) == (200, {"calls": n})
                assert {(await visitor.get("/limited")).status_code for _ in range(6)} == {200}
                # and the sessions fail clearly
                response = await user.get("/session")
                assert response.status_code == 500
            finally:
                await asyncio.to_thread(private_postgres.start)

            # after, same app: sessions at once (a raise store is never held back) ...
            assert (await user.get("/session")).text == "abc"

            # ... the cache serves its entry from before the outage again, the limit applies again
            async def cached_again() -> bool:
                return bool((await visitor.get("/cached")).json() == {"calls": 1})

            async def limited_again() -> bool:
                return (await visitor.get("/limited")).status_code == 429

            await _eventually(cached_again, "the cached response")
            await _eventually(limited_again, "the rate limit")
            assert (await user.get("/session/def")).text == "def"
            assert (await user.get("/session")).text == "def"
    finally:
        await admin.__aexit__(None, None, None)  # its connection did not survive the restart
        await drop_table(admin)
        await admin.__aexit__(None, None, None)


@within(60)
async def test_app_during_an_outage_with_a_session_cookie_on_a_sessions_route_gets_500_not_a_hang(
    private_postgres: PrivatePostgres,
) -> None:
    # the sessions store raises: its failure is the app's 500, at once, whatever the breaker does
    table = unique_table()
    url = private_postgres.url("asyncpg")
    admin = SQLStore.with_url(url, table_name=table)
    await create_table(admin)
    subject = _App(url, table)
    try:
        async with AsyncTestClient(subject.app, raise_server_exceptions=False) as user:
            assert (await user.get("/session/abc")).status_code == 200
            await asyncio.to_thread(private_postgres.stop)
            try:
                statuses = [(await user.get("/session")).status_code for _ in range(5)]
            finally:
                await asyncio.to_thread(private_postgres.start)
            assert statuses == [500] * 5
    finally:
        await admin.__aexit__(None, None, None)  # its connection did not survive the restart
        await drop_table(admin)
        await admin.__aexit__(None, None, None)


def test_store_error_hierarchy() -> None:
    assert issubclass(StoreUnavailableError, StoreError)
    assert not issubclass(TableMissingError, StoreUnavailableError)
