"""End to end: the example app under a real server (``litestar run``), driven by a real HTTP client.

One app process per dialect serves the module's tests (the restart test starts it again). The app
runs in another process, so its store's clock cannot be injected: the tests read what the app wrote
with a store of their own whose clock they set. An entry the app wrote during a request expires
between ``before + duration`` and ``after + duration``, where ``before`` and ``after`` are the times
just before the request was sent and just after its answer came; a store at a clock before that
span sees the entry live, one at its end sees it expired (and ``delete_expired`` removes it, as the
app's cleanup would). Nothing sleeps and no timing is asserted, only behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sqlsession import SQLStore

from ._support import litestar_command, sqlsession_command
from .conftest import Clock, create_table, dialect_url, drop_table, unique_table

ROOT = Path(__file__).resolve().parent.parent
SESSION_MAX_AGE = 3600
CACHE_SECONDS = 600
RATE_LIMIT = 3


@pytest.fixture(scope="module", params=["sqlite", "asyncpg", "asyncmy"])
def e2e_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return dialect_url(str(request.param), tmp_path_factory.mktemp("e2e"))


@pytest.fixture
async def e2e_table(e2e_url: str) -> AsyncIterator[str]:
    table = unique_table()
    store = SQLStore.with_url(e2e_url, table_name=table)
    await create_table(store)
    await store.__aexit__(None, None, None)
    yield table
    await drop_table(store)
    await store.__aexit__(None, None, None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """The example app in a process of its own, started by the README's command."""

    def __init__(self, url: str, table: str, log: Path, **settings: str) -> None:
        self.url, self.table = url, table
        self.env = {
            **os.environ,
            "SQLSESSION_URL": url,
            "SQLSESSION_TABLE": table,
            "EXAMPLE_CLEANUP_INTERVAL": "3600",
            **settings,
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self) -> None:
        port = _free_port()
        command = [sys.executable, "-m", "litestar", "--app", "examples.app:app", "run"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60  # a guard against a hang, not a speed
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the app exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            pytest.fail(f"the app did not start listening:\n{self.log.read_text()}")
        self.base_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    @contextlib.asynccontextmanager
    async def store(self, namespace: str, at: float) -> AsyncIterator[SQLStore]:
        """A store of the app's namespace ``namespace`` whose clock reads ``at``."""
        root = SQLStore.with_url(self.url, table_name=self.table, clock=lambda: at)
        try:
            yield root.with_namespace(namespace)
        finally:
            await root.close()


@pytest.fixture(scope="module")
def app(e2e_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The example app on a table of its own (made and dropped by the README's commands), with
    durations long enough that nothing expires by itself during the tests."""
    table = unique_table()
    where = ("--url", e2e_url, "--table", table)
    upgraded = sqlsession_command("upgrade", *where)
    assert upgraded.returncode == 0, upgraded.stderr
    app = App(
        e2e_url,
        table,
        tmp_path_factory.mktemp("app") / "app.log",
        EXAMPLE_SESSION_MAX_AGE=str(SESSION_MAX_AGE),
        EXAMPLE_RENEW_ON_ACCESS="1",
        EXAMPLE_CACHE_SECONDS=str(CACHE_SECONDS),
        EXAMPLE_RATE_LIMIT=str(RATE_LIMIT),
    )
    try:
        app.start()
        yield app
    finally:
        app.stop()
        dropped = sqlsession_command("downgrade", "--yes", *where)
        assert dropped.returncode == 0, dropped.stderr


def visits(client: httpx.Client, cookie: str | None = None) -> tuple[int, str]:
    """GET /visits, sending ``cookie`` as the session cookie when given; (count, session cookie)."""
    headers = {"cookie": f"session={cookie}"} if cookie else None
    response = client.get("/visits", headers=headers)
    response.raise_for_status()
    return int(response.json()["visits"]), response.cookies.get("session") or cookie or ""


def timed(request: Callable[[], object]) -> tuple[float, float]:
    """When a request was sent and when its answer came: ``(before, after)``, after the last one's."""
    before = time.time()
    request()
    after = time.time()
    while time.time() <= after:  # the next request's span starts strictly later
        pass
    return before, after


async def live_at(app: App, namespace: str, key: str, at: float) -> bool:
    async with app.store(namespace, at) as store:
        return await store.exists(key)


def test_session_survives_requests_and_a_restart_of_the_app(app: App) -> None:
    with app.client() as client:
        assert [visits(client)[0] for _ in range(2)] == [1, 2]
        cookie = client.cookies["session"]
    app.stop()
    app.start()  # a new process: the session can only come from the database
    with app.client() as client:
        assert visits(client, cookie)[0] == 3


async def test_session_is_kept_for_max_age_and_not_served_once_expired(app: App) -> None:
    with app.client() as client:
        cookie = ""

        def first() -> None:
            nonlocal cookie
            count, cookie = visits(client)
            assert count == 1

        before, after = await asyncio.to_thread(timed, first)
        assert await live_at(app, "sessions", cookie, before + SESSION_MAX_AGE - 0.001)
        assert not await live_at(app, "sessions", cookie, after + SESSION_MAX_AGE)
        async with app.store("sessions", after + SESSION_MAX_AGE) as expired:
            assert await expired.delete_expired() >= 1  # what the cleanup does once it has expired
        # the same cookie, sent explicitly: the server-side entry is gone, a new session starts
        assert (await asyncio.to_thread(visits, client, cookie))[0] == 1


async def test_renewed_session_expires_max_age_after_its_last_request(app: App) -> None:
    with app.client() as client:
        counts: list[int] = []
        cookie = ""

        def request() -> None:
            nonlocal cookie
            count, cookie = visits(client, cookie or None)
            counts.append(count)

        _, previous_after = await asyncio.to_thread(timed, request)
        for _ in range(3):
            before, after = await asyncio.to_thread(timed, request)
            # moved past where the request before had put it, to max_age after this request
            assert await live_at(app, "sessions", cookie, previous_after + SESSION_MAX_AGE)
            assert await live_at(app, "sessions", cookie, before + SESSION_MAX_AGE - 0.001)
            assert not await live_at(app, "sessions", cookie, after + SESSION_MAX_AGE)
            previous_after = after
        assert counts == [1, 2, 3, 4]


async def test_cached_route_is_computed_once_per_expiry(app: App) -> None:
    async with app.store("response_cache", time.time()) as cache:
        await cache.delete_all()  # what the module's other tests cached
    with app.client() as client:
        made_at: list[str] = []
        before, after = await asyncio.to_thread(
            timed, lambda: made_at.append(client.get("/cached").json()["made_at"])
        )
        assert (await asyncio.to_thread(client.get, "/cached")).json()["made_at"] == made_at[0]
        assert made_at[0] in (await asyncio.to_thread(client.get, "/")).text
        async with app.store("response_cache", before + CACHE_SECONDS - 0.001) as cache:
            stats = await cache.stats()
            assert stats.rows >= 1 and stats.expired == 0
        async with app.store("response_cache", after + CACHE_SECONDS) as cache:
            assert (await cache.stats()).expired == stats.rows  # all of it expires with the route
            assert await cache.delete_expired() == stats.rows  # what the cleanup does then
        assert (await asyncio.to_thread(client.get, "/cached")).json()["made_at"] != made_at[0]


def test_rate_limited_route_answers_429_past_its_limit(app: App) -> None:
    with app.client() as client:
        assert [client.get("/limited").status_code for _ in range(5)] == [200, 200, 200, 429, 429]


def test_page_shows_visit_count_and_cached_time(app: App) -> None:
    with app.client() as client:
        assert 'id="visits">1<' in client.get("/").text
        made_at = client.get("/cached").json()["made_at"]
        page = client.get("/").text
        assert 'id="visits">2<' in page
        assert made_at in page


# -- commands on a table with known content -----------------------------------------------------------


async def _known_content(url: str, table: str, clock: Clock) -> None:
    """LITESTAR/sessions: 3 rows (1 expired); LITESTAR/rate_limit: 2 rows (2 expired)."""
    store = SQLStore.with_url(url, table_name=table, clock=lambda: clock.now - 100)
    try:
        sessions, limits = store.with_namespace("sessions"), store.with_namespace("rate_limit")
        await sessions.set("a", b"1")
        await sessions.set("b", b"2", expires_in=1000)
        await sessions.set("c", b"3", expires_in=10)  # expired by now
        await limits.set("x", b"1", expires_in=1)
        await limits.set("y", b"1", expires_in=5)
    finally:
        await store.__aexit__(None, None, None)


async def test_cli_commands_print_the_right_counts(
    e2e_url: str, e2e_table: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _known_content(e2e_url, e2e_table, clock)
    monkeypatch.setenv("SQLSESSION_URL", e2e_url)
    monkeypatch.setenv("SQLSESSION_TABLE", e2e_table)
    where = ("--url", e2e_url, "--table", e2e_table)

    def in_app(command: str) -> str:
        ran = litestar_command("examples.app:app", command)
        assert ran.returncode == 0, ran.stdout
        return ran.stdout

    def standalone(command: str) -> str:
        ran = sqlsession_command(command, *where)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout

    for stats in (await asyncio.to_thread(in_app, "stats"), await asyncio.to_thread(standalone, "stats")):
        assert f"table {e2e_table}: 5 rows, 3 expired" in stats
        assert re.search(r"LITESTAR/sessions: 3 rows, 1 expired", stats)
        assert re.search(r"LITESTAR/rate_limit: 2 rows, 2 expired", stats)

    assert "deleted 3 expired entries" in await asyncio.to_thread(in_app, "delete-expired")
    assert "deleted 0 expired entries" in await asyncio.to_thread(standalone, "delete-expired")
    assert f"table {e2e_table}: 2 rows, 0 expired" in await asyncio.to_thread(standalone, "stats")
