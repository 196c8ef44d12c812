"""A private, throwaway PostgreSQL server for the tests that stop or restart one.

A test that takes a server down must never touch the machine's own cluster (127.0.0.1:5432): the
other tests, other projects and the developer use it. ``PrivatePostgres`` runs the installed
binaries (the highest ``/usr/lib/postgresql/<version>/bin``) on a temporary data directory and a
free port of 127.0.0.1, with trust authentication and ``fsync=off``. PostgreSQL refuses to run as
root: as root, its commands run as an unprivileged OS user (``postgres``, else ``nobody``) who owns
the temporary directory. The ``private_postgres`` fixture gives a test a running one (one per test
run, started again for each test that needs it) and removes it at the end of the run, whatever the
outcome; an ``atexit`` handler stops any left over as a last resort.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BINARIES = "/usr/lib/postgresql/*/bin"
USERS = ("postgres", "nobody")  # who runs the server when the tests run as root
NEEDED = ("initdb", "pg_ctl", "pg_isready")
MODES = ("smart", "fast", "immediate")


class ServerUnavailable(Exception):
    """This machine cannot run a private PostgreSQL (no binaries, no unprivileged user)."""


def _version(bin_dir: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in Path(bin_dir).parent.name.split("."))
    except ValueError:
        return (-1,)


def find_binaries() -> Path:
    """The ``bin`` directory of the highest installed PostgreSQL version that has what is needed."""
    found = [d for d in glob.glob(BINARIES) if all(os.access(Path(d, n), os.X_OK) for n in NEEDED)]
    if found:
        return Path(max(found, key=_version))
    initdb = shutil.which("initdb")  # not Debian's layout: the binaries on PATH
    if initdb and all(os.access(Path(initdb).parent / n, os.X_OK) for n in NEEDED):
        return Path(initdb).parent
    raise ServerUnavailable(f"no PostgreSQL binaries ({', '.join(NEEDED)}) under {BINARIES} or on PATH")


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as; ``None``: as this process (not root)."""
    if os.geteuid() != 0:
        return None
    for name in USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerUnavailable(f"running as root and none of the users {USERS} exists to run PostgreSQL")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL server of the test's own: ``start()``, ``stop(mode)``, ``start()`` again (same
    port, same data), ``url(driver)``, and ``close()`` to stop it and remove its directory.

    The database is created on the first ``start()``; superuser ``postgres``, no password.
    """

    def __init__(self) -> None:
        self.bin_dir = find_binaries()
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="sqlsession-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port: int | None = None
        _alive.add(self)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def __repr__(self) -> str:
        return f"PrivatePostgres(port={self.port}, root={self.root})"

    def url(self, driver: str = "asyncpg", database: str = "postgres") -> str:
        """E.g. ``postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres``."""
        assert self.port is not None, "start() the server first"
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    # -- commands ---------------------------------------------------------------------------------

    def _run(self, program: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """Run one of the PostgreSQL programs, as the unprivileged user when this process is root."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGDATA, PGPORT...
        env.update(HOME=str(self.root), LC_ALL="C")
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bin_dir / program), *args],
            cwd=self.root,  # root's working directory may be closed to that user
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **as_user,
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _fail(self, what: str, result: subprocess.CompletedProcess[str] | None = None) -> AssertionError:
        output = f"\n{result.stdout}{result.stderr}" if result is not None else ""
        return AssertionError(f"private PostgreSQL ({self.root}): {what}{output}\nlog:\n{self._log_tail()}")

    def running(self) -> bool:
        """Whether the server process runs (``pg_ctl status``), ready for connections or not."""
        return self.data.is_dir() and self._run("pg_ctl", "status", "-D", str(self.data)).returncode == 0

    def ready(self) -> bool:
        """Whether it accepts connections on its TCP port."""
        if self.port is None:
            return False
        probe = ("-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-t", "3")
        return self._run("pg_isready", *probe, timeout=10).returncode == 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the server (creating the database the first time) and wait until it accepts
        connections; after a ``stop()``, on the same port and data directory. Running: a no-op."""
        deadline = time.monotonic() + timeout
        if not self.data.is_dir():
            result = self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale",
                "--no-sync",
            )  # fmt: skip
            if result.returncode != 0:
                raise self._fail("initdb failed", result)
        if not self.running():
            first = self.port is None
            for _attempt in range(3 if first else 1):
                if first:  # a free port; taken again by someone in between: another one
                    self.port = _free_port()
                result = self._pg_ctl_start(timeout)
                if result.returncode == 0:
                    break
                if not (first and "could not bind" in self._log_tail()):
                    raise self._fail(f"pg_ctl start failed on port {self.port}", result)
            else:
                raise self._fail("no free port to start on")
        while not self.ready():
            if not self.running():
                raise self._fail("the server exited while starting")
            if time.monotonic() > deadline:
                raise self._fail(f"not ready on port {self.port} after {timeout} s")
            time.sleep(0.05)

    def _pg_ctl_start(self, timeout: float) -> subprocess.CompletedProcess[str]:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={shlex.quote(str(self.root))}",  # not /var/run/postgresql
            "-c fsync=off",  # a throwaway server: no need to survive a power cut
        ]
        return self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)),
            "-o", " ".join(options),
            timeout=timeout + 30,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m mode``) and make sure its port is closed."""
        assert mode in MODES, f"mode is one of {MODES}"
        result = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")
        if result.returncode != 0:
            raise self._fail(f"pg_ctl stop -m {mode} failed", result)
        if self.ready():
            raise self._fail(f"still accepting connections on port {self.port} after stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server if it runs, however it can be, and remove its directory. Idempotent."""
        _alive.discard(self)
        try:
            if self.running():
                stop = ("stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")
                if self._run("pg_ctl", *stop).returncode != 0:
                    self._kill()
        except (OSError, subprocess.SubprocessError):
            self._kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill(self) -> None:
        """The last resort: SIGKILL the postmaster named in ``postmaster.pid`` (its children exit
        when it dies)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


_alive: set[PrivatePostgres] = set()


@atexit.register
def _close_all() -> None:
    """Servers a test run left behind (interrupted before its finalizers ran): stop and remove."""
    for server in list(_alive):
        server.close()


@pytest.fixture(scope="session")
def _private_postgres_server() -> Iterator[PrivatePostgres]:
    """One private PostgreSQL for the test run (made once: ``initdb`` is the slow part), removed at
    its end. No binaries: skipped, or failed with ``SQLSESSION_REQUIRE_ALL_DIALECTS=1``."""
    try:
        server = PrivatePostgres()
    except ServerUnavailable as reason:
        if os.environ.get("SQLSESSION_REQUIRE_ALL_DIALECTS") == "1":
            pytest.fail(f"SQLSESSION_REQUIRE_ALL_DIALECTS=1 but cannot run a private PostgreSQL: {reason}")
        pytest.skip(f"cannot run a private PostgreSQL: {reason}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_postgres(_private_postgres_server: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A running private PostgreSQL, free to stop and restart: the run's one, started again if a
    test before left it stopped. Tests on it use tables of their own; it is the machine's own
    server's tests never touch."""
    server = _private_postgres_server
    server.start()  # a no-op when it runs
    yield server
    if not server.running():  # the next test finds it running, whatever this one did
        server.start()


# -- PgBouncer ------------------------------------------------------------------------------------

PGBOUNCER = "pgbouncer"


class PgBouncerUnavailable(Exception):
    """This machine cannot run a private PgBouncer (not installed, no unprivileged user)."""


class PrivatePgBouncer:
    """A PgBouncer of the test run's own in front of a PostgreSQL server (``host``, ``port``,
    ``database``), on a free port of 127.0.0.1: ``start()``, ``url(driver)``, ``close()``.

    It runs in the foreground as a child of the test process (as an unprivileged user when this
    process is root: PgBouncer refuses to run as root, like PostgreSQL), with a configuration file
    it writes in a temporary directory: trust authentication for ``user``, no Unix socket, and by
    default ``pool_mode = transaction`` with ``pool_size`` server connections kept open
    (``min_pool_size``) and handed out in turn (``server_round_robin``), so that two statements in a
    row of one client usually run on different server connections, as under load in production.
    """

    def __init__(
        self,
        host: str,
        port: int,
        database: str,
        user: str = "postgres",
        password: str = "",
        *,
        pool_mode: str = "transaction",
        pool_size: int = 2,
    ) -> None:
        binary = shutil.which(PGBOUNCER) or next(
            (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
        )
        if binary is None:
            raise PgBouncerUnavailable("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        try:
            self.user = _server_user()
        except ServerUnavailable as reason:
            raise PgBouncerUnavailable(str(reason)) from None
        self.binary = binary
        self.target = (host, port, database, user)
        self.password = password  # for PgBouncer's own logins to the server
        self.pool_mode, self.pool_size = pool_mode, pool_size
        self.root = Path(tempfile.mkdtemp(prefix="sqlsession-pgbouncer-"))
        self.config = self.root / "pgbouncer.ini"
        self.log = self.root / "pgbouncer.log"
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        _bouncers.add(self)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def __repr__(self) -> str:
        return f"PrivatePgBouncer(port={self.port}, pool_mode={self.pool_mode!r}, root={self.root})"

    def url(self, driver: str = "asyncpg") -> str:
        """E.g. ``postgresql+asyncpg://postgres@127.0.0.1:<port>/test``."""
        assert self.port is not None, "start() PgBouncer first"
        _host, _port, database, user = self.target
        return f"postgresql+{driver}://{user}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> None:
        host, port, database, user = self.target
        (self.root / "userlist.txt").write_text(f'"{user}" "{self.password}"\n')
        (self.root / "userlist.txt").chmod(0o600)
        self.config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"{database} = host={host} port={port} dbname={database}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.root / 'userlist.txt'}",
                    f"logfile = {self.log}",
                    f"pool_mode = {self.pool_mode}",
                    f"default_pool_size = {self.pool_size}",
                    f"min_pool_size = {self.pool_size}",
                    "server_round_robin = 1",
                    "max_client_conn = 200",
                    "ignore_startup_parameters = extra_float_digits",
                    "",
                ]
            )
        )
        if self.user is not None:
            for path in (self.config, self.root / "userlist.txt"):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port or 0), timeout=1):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 30) -> None:
        """Start PgBouncer on a free port and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        for _attempt in range(3):  # a free port taken again by someone in between: another one
            self.port = _free_port()
            self._write_config()
            self.process = subprocess.Popen(
                [self.binary, str(self.config)],
                cwd=self.root,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root), "LC_ALL": "C"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **as_user,
            )
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and not self._accepts():
                if time.monotonic() > deadline:
                    self.close()
                    raise AssertionError(f"PgBouncer not ready on port {self.port} after {timeout} s")
                time.sleep(0.02)
            if self.process.poll() is None:
                return
            if "Address already in use" not in self._log_tail():
                break
        raise AssertionError(f"PgBouncer ({self.root}) exited while starting:\n{self._log_tail()}")

    def close(self) -> None:
        """Stop PgBouncer (SIGTERM, then SIGKILL) and remove its directory. Idempotent."""
        _bouncers.discard(self)
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePgBouncer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


_bouncers: set[PrivatePgBouncer] = set()


@atexit.register
def _close_all_bouncers() -> None:
    for bouncer in list(_bouncers):
        bouncer.close()


def private_pgbouncer_for(url: str, **options: Any) -> PrivatePgBouncer:
    """A started PgBouncer in front of the server of ``url`` (its host, port, database and user);
    no ``pgbouncer``: skipped, or failed with ``SQLSESSION_REQUIRE_ALL_DIALECTS=1``."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        bouncer = PrivatePgBouncer(
            parsed.host or "127.0.0.1",
            parsed.port or 5432,
            parsed.database or "postgres",
            parsed.username or "postgres",
            parsed.password or "",
            **options,
        )
    except PgBouncerUnavailable as reason:
        if os.environ.get("SQLSESSION_REQUIRE_ALL_DIALECTS") == "1":
            pytest.fail(f"SQLSESSION_REQUIRE_ALL_DIALECTS=1 but cannot run a private PgBouncer: {reason}")
        pytest.skip(f"cannot run a private PgBouncer: {reason}")
    try:
        bouncer.start()
    except BaseException:
        bouncer.close()
        raise
    return bouncer
