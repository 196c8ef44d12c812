"""End to end: the example app under a real server (``litestar run``), driven by a real HTTP client.

The app runs in another process, so the store's clock cannot be injected there: expiry is
exercised with short real durations (seconds). Timing is never asserted, only behaviour.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from sqlsession import SQLStore

from .conftest import Clock, create_table, dialect_url, drop_table, unique_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "asyncpg", "asyncmy"])
def e2e_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return dialect_url(str(request.param), tmp_path)


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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the app exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
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
        return httpx.Client(base_url=self.base_url, timeout=10)


@pytest.fixture
def app_factory(e2e_url: str, e2e_table: str, tmp_path: Path) -> Iterator[type[App]]:
    apps: list[App] = []

    class Bound(App):
        def __init__(self, **settings: str) -> None:
            super().__init__(e2e_url, e2e_table, tmp_path / "app.log", **settings)
            apps.append(self)

    yield Bound
    for app in apps:
        app.stop()


def visits(client: httpx.Client, cookie: str | None = None) -> tuple[int, str]:
    """GET /visits, sending ``cookie`` as the session cookie when given; (count, session cookie)."""
    headers = {"cookie": f"session={cookie}"} if cookie else None
    response = client.get("/visits", headers=headers)
    response.raise_for_status()
    return int(response.json()["visits"]), response.cookies.get("session") or cookie or ""


def test_session_survives_requests_and_a_restart_of_the_app(app_factory: type[App]) -> None:
    app = app_factory()
    app.start()
    with app.client() as client:
        assert [visits(client)[0] for _ in range(2)] == [1, 2]
        cookie = client.cookies["session"]
    app.stop()
    app.start()  # a new process: the session can only come from the database
    with app.client() as client:
        assert visits(client, cookie)[0] == 3


def test_session_expires_after_max_age(app_factory: type[App]) -> None:
    app = app_factory(EXAMPLE_SESSION_MAX_AGE="2")
    app.start()
    with app.client() as client:
        count, cookie = visits(client)
        assert count == 1
        assert visits(client, cookie)[0] == 2
        time.sleep(2.3)
        # the same cookie, sent explicitly: the server-side entry has expired
        assert visits(client, cookie)[0] == 1


def test_renewed_session_does_not_expire(app_factory: type[App]) -> None:
    app = app_factory(EXAMPLE_SESSION_MAX_AGE="2", EXAMPLE_RENEW_ON_ACCESS="1")
    app.start()
    with app.client() as client:
        count, cookie = visits(client)
        counts = [count]
        for _ in range(3):  # 3.6 s in all, well past max_age, each request within it of the last
            time.sleep(1.2)
            counts.append(visits(client, cookie)[0])
        assert counts == [1, 2, 3, 4]


def test_cached_route_is_computed_once_per_expiry(app_factory: type[App]) -> None:
    app = app_factory(EXAMPLE_CACHE_SECONDS="2")
    app.start()
    with app.client() as client:
        first = client.get("/cached").json()["made_at"]
        assert client.get("/cached").json()["made_at"] == first
        assert first in client.get("/").text
        time.sleep(2.3)
        assert client.get("/cached").json()["made_at"] != first


def test_rate_limited_route_answers_429_past_its_limit(app_factory: type[App]) -> None:
    app = app_factory(EXAMPLE_RATE_LIMIT="3")
    app.start()
    with app.client() as client:
        assert [client.get("/limited").status_code for _ in range(5)] == [200, 200, 200, 429, 429]


def test_page_shows_visit_count_and_cached_time(app_factory: type[App]) -> None:
    app = app_factory()
    app.start()
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


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


async def test_cli_commands_print_the_right_counts(e2e_url: str, e2e_table: str, clock: Clock) -> None:
    await _known_content(e2e_url, e2e_table, clock)
    env = {"SQLSESSION_URL": e2e_url, "SQLSESSION_TABLE": e2e_table}
    litestar = [sys.executable, "-m", "litestar", "--app", "examples.app:app", "sqlsession"]
    standalone = [sys.executable, "-m", "sqlsession"]
    where = ["--url", e2e_url, "--table", e2e_table]

    for stats in (_run([*litestar, "stats"], env), _run([*standalone, "stats", *where], {})):
        assert stats.returncode == 0, stats.stderr
        assert f"table {e2e_table}: 5 rows, 3 expired" in stats.stdout
        assert re.search(r"LITESTAR/sessions: 3 rows, 1 expired", stats.stdout)
        assert re.search(r"LITESTAR/rate_limit: 2 rows, 2 expired", stats.stdout)

    deleted = _run([*litestar, "delete-expired"], env)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 3 expired entries" in deleted.stdout
    again = _run([*standalone, "delete-expired", *where], {})
    assert again.returncode == 0, again.stderr
    assert "deleted 0 expired entries" in again.stdout
    after = _run([*standalone, "stats", *where], {})
    assert f"table {e2e_table}: 2 rows, 0 expired" in after.stdout
