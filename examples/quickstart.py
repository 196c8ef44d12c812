"""Store and read a value with sqlsession on the embedded SQLite default.

Run `python -m sqlsession upgrade` first (it creates the table in ./sqlsession.db), then:
    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os

from sqlsession import SQLStore


async def main() -> None:
    url = os.environ.get("SQLSESSION_URL", "sqlite+aiosqlite:///sqlsession.db")
    async with SQLStore.with_url(url) as store:
        sessions = store.with_namespace("sessions")
        await sessions.set("session-id", b'{"user": 42}', expires_in=3600)
        print("value:", await sessions.get("session-id", renew_for=3600))
        print("expires in:", await sessions.expires_in("session-id"), "seconds")
        await sessions.delete("session-id")
        print("exists after delete:", await sessions.exists("session-id"))


if __name__ == "__main__":
    asyncio.run(main())
