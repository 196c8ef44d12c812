"""A small Litestar app on sqlsession: server-side sessions, a cached route, a rate-limited route.

    python -m sqlsession upgrade
    litestar --app examples.app:app run --host 127.0.0.1 --port 8000

Then open http://127.0.0.1:8000/ : the page shows the visit count kept in the session (in the
database, so it survives a restart of the app) and the time the cached response was made.

Settings (environment): ``SQLSESSION_URL`` (default: the SQLite file ./sqlsession.db),
``SQLSESSION_TABLE`` (default ``litestar_store``), ``EXAMPLE_SESSION_MAX_AGE`` (seconds, default
3600), ``EXAMPLE_RENEW_ON_ACCESS`` (``1`` to renew the session on every request),
``EXAMPLE_CACHE_SECONDS`` (default 10), ``EXAMPLE_RATE_LIMIT`` (requests per minute, default 5),
``EXAMPLE_CLEANUP_INTERVAL`` (seconds, default 300).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.config.response_cache import ResponseCacheConfig
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.middleware.session.server_side import ServerSideSessionConfig

from sqlsession import SQLStorePlugin
from sqlsession.plugin import DEFAULT_URL

SESSION_MAX_AGE = int(os.environ.get("EXAMPLE_SESSION_MAX_AGE", "3600"))
CACHE_SECONDS = int(os.environ.get("EXAMPLE_CACHE_SECONDS", "10"))
RATE_LIMIT = int(os.environ.get("EXAMPLE_RATE_LIMIT", "5"))

PAGE = """<!doctype html>
<html><head><title>sqlsession example</title></head>
<body>
<h1>sqlsession example</h1>
<p>Visits in this session: <strong id="visits">{visits}</strong> (kept in the database)</p>
<p>Cached response made at: <strong id="cached-at">{cached_at}</strong>
 (cached for {cache_seconds} s, in the database)</p>
<p><a href="/limited">/limited</a> answers 429 after {rate_limit} requests a minute.</p>
</body></html>
"""


def _now() -> str:
    return datetime.now(tz=timezone.utc).isoformat(timespec="milliseconds")


@get("/", media_type=MediaType.HTML)
async def index(request: Request[Any, Any, Any]) -> str:
    """The page: visit count from the session, and the time of the cached response."""
    visits = int(request.session.get("visits", 0)) + 1
    request.set_session({"visits": visits})
    cache = request.app.stores.get("response_cache")
    cached_at = await cache.get("example:cached-at")
    return PAGE.format(
        visits=visits,
        cached_at=cached_at.decode() if cached_at else "not yet: open /cached",
        cache_seconds=CACHE_SECONDS,
        rate_limit=RATE_LIMIT,
    )


@get("/visits")
async def visits(request: Request[Any, Any, Any]) -> dict[str, int]:
    """The session's visit count, counting this request (JSON)."""
    count = int(request.session.get("visits", 0)) + 1
    request.set_session({"visits": count})
    return {"visits": count}


@get("/cached", cache=CACHE_SECONDS)
async def cached(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A response computed once per cache expiry; its time is also shown on the page."""
    made_at = _now()
    await request.app.stores.get("response_cache").set("example:cached-at", made_at, expires_in=CACHE_SECONDS)
    return {"made_at": made_at}


@get("/limited")
async def limited() -> dict[str, str]:
    """A rate-limited route."""
    return {"status": "ok"}


plugin = SQLStorePlugin(
    os.environ.get("SQLSESSION_URL", DEFAULT_URL),
    table_name=os.environ.get("SQLSESSION_TABLE", "litestar_store"),
    cleanup_interval=float(os.environ.get("EXAMPLE_CLEANUP_INTERVAL", "300")),
)

app = Litestar(
    route_handlers=[index, visits, cached, limited],
    plugins=[plugin],
    middleware=[
        ServerSideSessionConfig(
            max_age=SESSION_MAX_AGE,
            renew_on_access=os.environ.get("EXAMPLE_RENEW_ON_ACCESS") == "1",
        ).middleware,
        RateLimitConfig(rate_limit=("minute", RATE_LIMIT), exclude=["/$", "/visits", "/cached"]).middleware,
    ],
    response_cache_config=ResponseCacheConfig(store="response_cache"),
)
