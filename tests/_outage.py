"""Outages a test can cause and end, on every dialect, without touching the machine's servers.

- PostgreSQL and MariaDB: the store talks to the server through ``TcpProxy``, a TCP forwarder of
  the test's own on a free port of 127.0.0.1. ``cut()`` resets every connection through it and
  refuses new ones (what clients see of a server that went down); ``restore()`` listens again on
  the same port.
- SQLite: the database file's directory is moved away (new connections cannot open the file) and
  the stores' pooled connections are closed, which is what a store sees of a file system that went
  away; ``restore()`` moves it back.

The server itself runs on untouched. The real stop and start of a server is in ``test_outage.py``
on a private PostgreSQL (``tests/_servers.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from sqlalchemy.engine import make_url

from sqlsession import SQLStore


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``host``:``target_port``; can be cut and restored."""

    def __init__(self, host: str, target_port: int) -> None:
        self.target = (host, target_port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.streams: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        if this is not None:
            self.tasks.add(this)
            this.add_done_callback(self.tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.streams |= {writer, up_writer}
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            for stream in (writer, up_writer):
                self.streams.discard(stream)
                stream.transport.abort()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for stream in list(self.streams):
            stream.transport.abort()
        await asyncio.sleep(0)

    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self.server is None:
            await self.start()

    async def close(self) -> None:
        """Cut, and wait for the forwarding tasks to end (every stream is aborted: they do)."""
        await self.cut()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=10)


class Outage:
    """An outage of one dialect's database for the stores of a test: ``url``, ``cut(*stores)``,
    ``restore()``."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        parsed = make_url(url)
        self.proxy: TcpProxy | None = None
        self.directory: Path | None = None
        if parsed.get_backend_name() == "sqlite":
            self.directory = tmp_path / "db"
            self.directory.mkdir()
            self.url = parsed.set(database=str(self.directory / "store.db")).render_as_string(
                hide_password=False
            )
        else:
            self.proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 0)
            self._server_url = parsed
            self.url = ""

    async def start(self) -> None:
        if self.proxy is not None:
            await self.proxy.start()
            url = self._server_url.set(host="127.0.0.1", port=self.proxy.port)
            self.url = url.render_as_string(hide_password=False)

    @property
    def away(self) -> Path:
        assert self.directory is not None
        return self.directory.with_name("db-away")

    async def cut(self, *stores: SQLStore) -> None:
        if self.proxy is not None:
            await self.proxy.cut()
            return
        assert self.directory is not None
        self.directory.rename(self.away)
        for store in stores:  # pooled connections keep the moved file open: close them
            await store.close()
            await store.engine.dispose()

    async def restore(self) -> None:
        if self.proxy is not None:
            await self.proxy.restore()
        elif self.away.exists():
            self.away.rename(self.directory)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.restore()
        if self.proxy is not None:
            await self.proxy.close()
