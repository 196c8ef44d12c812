"""SQLStore as a Litestar store: server-side sessions and the response cache through TestClient.

TestClient runs the app (and its lifespan) on an event loop of its own, so this also proves the
store works across loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.stores.base import NamespacedStore
from litestar.testing import TestClient

from sqlsession import SQLStore

from .conftest import create_table, drop_table, owned_only, sqlite_only


@get("/visit")
async def visit(request: Request[Any, Any, Any]) -> dict[str, int]:
    visits = int(request.session.get("visits", 0)) + 1
    request.set_session({"visits": visits})
    return {"visits": visits}


calls = {"cached": 0}


@get("/cached", cache=60, sync_to_thread=False)
def cached() -> dict[str, int]:
    calls["cached"] += 1
    return {"computed": calls["cached"]}


@sqlite_only
@owned_only
def test_is_a_litestar_namespaced_store(store: SQLStore) -> None:
    assert isinstance(store, NamespacedStore)
    assert isinstance(store.with_namespace("x"), SQLStore)


@pytest.mark.parametrize("engine_mode", ["owned"], indirect=True)
async def test_sessions_and_response_cache_in_a_litestar_app(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    await create_table(store)
    await store.__aexit__(None, None, None)  # the app's loop takes it from here
    try:
        app = Litestar(
            route_handlers=[visit, cached],
            stores={
                "sessions": store.with_namespace("sessions"),
                "response_cache": store.with_namespace("response_cache"),
            },
            middleware=[ServerSideSessionConfig().middleware],
            lifespan=[store],
        )
        calls["cached"] = 0
        with TestClient(app) as client:
            assert [client.get("/visit").json()["visits"] for _ in range(3)] == [1, 2, 3]
            assert [client.get("/cached").json()["computed"] for _ in range(3)] == [1, 1, 1]
        sessions = store.with_namespace("sessions")
        # the session lives in the table under the cookie's ID, stored as a digest
        cookie = client.cookies.get("session")
        assert cookie
        assert await sessions.exists(cookie)
        assert await store.with_namespace("response_cache").delete_expired() == 0
    finally:
        await drop_table(store)
        await store.__aexit__(None, None, None)


@pytest.mark.parametrize("dialect", ["sqlite", "asyncpg", "asyncmy"], indirect=True)
async def test_store_on_an_engine_shared_with_advanced_alchemy_serves_a_burst_on_a_pool_of_2(
    url: str,
) -> None:
    # advanced-alchemy's plugin needs a newer litestar than the lowest we allow (it does not declare it)
    plugin = pytest.importorskip("advanced_alchemy.extensions.litestar", exc_type=ImportError)
    SQLAlchemyAsyncConfig, SQLAlchemyPlugin = plugin.SQLAlchemyAsyncConfig, plugin.SQLAlchemyPlugin
    from litestar.testing import AsyncTestClient
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from sqlsession._dialects import async_url

    from .conftest import unique_table

    # the application's engine: request sessions of advanced-alchemy and the store share its 2 connections
    table = unique_table()
    engine = create_async_engine(async_url(url), pool_size=2, max_overflow=0, pool_timeout=10)
    store = SQLStore(engine, table_name=table)
    outside = SQLStore.with_url(url, table_name=table)  # the test's own view, on the test's loop
    await create_table(outside)

    @get("/write")
    async def write(request: Request[Any, Any, Any]) -> dict[str, int]:
        # the request's session as advanced-alchemy's dependency provides it (its declared styles differ
        # between Litestar versions)
        db_session: AsyncSession = config.provide_session(request.app.state, request.scope)
        await db_session.execute(text("SELECT 1"))  # this request's session holds a connection
        visits = int(request.session.get("visits", 0)) + 1
        request.set_session({"visits": visits})
        return {"visits": visits}

    config = SQLAlchemyAsyncConfig(engine_instance=engine, before_send_handler="autocommit")
    app = Litestar(
        route_handlers=[write],
        plugins=[SQLAlchemyPlugin(config)],
        stores={"sessions": store.with_namespace("sessions")},
        middleware=[ServerSideSessionConfig().middleware],
        on_shutdown=[engine.dispose],  # on the app's own event loop
    )
    try:
        async with AsyncTestClient(app) as client:
            responses = await asyncio.gather(*(client.get("/write") for _ in range(32)))
            assert [r.status_code for r in responses] == [200] * 32
            assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert (await outside.stats()).rows >= 1  # the sessions were written
    finally:
        await drop_table(outside)
        await outside.close()
