"""What renewal costs with ``renew_threshold``: ``python -m bench.renewal [--dialects ...] [--rounds N]``.

A session read on every request: ``get(key, renew_for=3600)`` of a 512-byte value, many times in
a row, against a plain ``get(key)`` of the same key. Three stores made by ``SQLStore.with_url`` on
one fresh table per dialect, run in interleaved rounds (a burst of noise hits them alike):

- ``get``: no renewal (the floor);
- ``renew t=0.1``: ``renew_threshold=0.1``: the expiry is only written once it has fallen more
  than 360 s behind, i.e. once per 6 minutes of a session's life, so a read-per-request session
  costs a read (``SELECT value, expires_at``);
- ``renew t=0``: the default, Litestar's semantics: every renewal writes (``UPDATE ... RETURNING``,
  or ``SELECT`` and compare-and-set on MySQL/MariaDB).

Each store reads keys of its own (the writes of ``renew t=0`` leave new row versions behind, which
must not slow the others' reads), and the order of the stores changes every round (seeded).

Prints the median microseconds per call and the ratio to ``get``; the target of ``renew t=0.1`` is
at most 1.10.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.engine import URL

from sqlsession import SQLStore

from .settings import ALL_DIALECTS, dialect_url, reachable

RENEW_FOR = 3600
VALUE = b"s" * 512
KEYS = 32


async def _measure(url: URL, rounds: int, batch: int) -> dict[str, float]:
    table = f"bench_renewal_{uuid.uuid4().hex[:8]}"
    stores = {
        "get": SQLStore.with_url(url, table_name=table),
        "renew t=0.1": SQLStore.with_url(url, table_name=table, renew_threshold=0.1),
        "renew t=0": SQLStore.with_url(url, table_name=table),
    }
    first = stores["get"]
    async with first.engine.begin() as conn:
        await conn.run_sync(first.table.metadata.create_all)
    keys = {name: [f"{name}-{i}" for i in range(KEYS)] for name in stores}
    rng = random.Random(5)
    try:
        for name in stores:
            for key in keys[name]:
                await first.set(key, VALUE, expires_in=RENEW_FOR)

        async def one(name: str) -> float:
            store, own = stores[name], keys[name]
            renew_for = None if name == "get" else RENEW_FOR
            start = time.perf_counter()
            for i in range(batch):
                await store.get(own[i % KEYS], renew_for=renew_for)
            return (time.perf_counter() - start) / batch

        samples: dict[str, list[float]] = {name: [] for name in stores}
        for round_ in range(rounds + 1):
            order = list(stores)
            rng.shuffle(order)
            for name in order:
                elapsed = await one(name)
                if round_:  # round 0 warms up
                    samples[name].append(elapsed)
        return {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    finally:
        async with first.engine.begin() as conn:
            await conn.run_sync(first.table.metadata.drop_all)
        for store in stores.values():
            await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.renewal", description=__doc__)
    parser.add_argument("--dialects", default=",".join(ALL_DIALECTS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    parser.add_argument("--batch", type=int, default=100, help="calls per store per round (default 100)")
    args = parser.parse_args(argv)
    print(f"{'dialect':<10} {'get':>9} {'renew t=0.1':>12} {'ratio':>6} {'renew t=0':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for dialect in args.dialects.split(","):
            url = dialect_url(dialect, Path(tmp) / f"{dialect}.db")
            port = 5432 if url.drivername.startswith("postgresql") else 3306
            reason = None if dialect == "sqlite" else reachable(url, port)
            if reason is not None:
                print(f"{dialect:<10} skipped: {reason}")
                continue
            us = asyncio.run(_measure(url, args.rounds, args.batch))
            base = us["get"]
            print(
                f"{dialect:<10} {base:>7.0f}us {us['renew t=0.1']:>10.0f}us {us['renew t=0.1'] / base:>5.2f}x"
                f" {us['renew t=0']:>8.0f}us {us['renew t=0'] / base:>5.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
