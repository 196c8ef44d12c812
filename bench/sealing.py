"""What sealed values cost: ``python -m bench.sealing [--dialects sqlite,asyncpg] [--ops N]``.

Two tables, for values of 512 B (a session) and 16 KiB (a cached page), each as text that
compresses like JSON/HTML does (words drawn from a fixed vocabulary, seeded):

- CPU: microseconds per ``seal`` (what ``set`` adds) and per ``open`` (what ``get`` adds) in the
  store's own code, and the stored size, for plain, compressed (``compress_min_size=0``),
  encrypted (AES-256-GCM) and both;
- per operation: ``set`` then ``get`` of ``SQLStore.with_url`` on a fresh table of each dialect,
  median microseconds per pair, with the same settings.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from sqlsession import SQLStore
from sqlsession._keys import key_digest
from sqlsession._sealing import Sealer

from .settings import ALL_DIALECTS, dialect_url, reachable

SIZES = {"512 B": 512, "16 KiB": 16 * 1024}
KEY = bytes(range(32))
MODES: dict[str, dict[str, Any]] = {
    "plain": {},
    "compressed": {"compress_min_size": 0},
    "encrypted": {"encryption_keys": [KEY]},
    "both": {"compress_min_size": 0, "encryption_keys": [KEY]},
}
_VOCABULARY = (
    'user id name cart item sku qty price total "true" "false" null <div> </div> <p> </p> class '
    "href title token csrf flash message theme locale en de fr 0 1 2 3 42 1024 2026-12-01 { } [ ] , :"
)
_WORDS = _VOCABULARY.split()


def sample(size: int, seed: int = 7) -> bytes:
    """``size`` bytes of text that compresses like JSON or HTML."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.choice(_WORDS).encode() + b" "
    return bytes(out[:size])


def per_call(function: Callable[[], object], seconds: float = 0.3) -> float:
    """Median microseconds per call over a few timed rounds."""
    rounds: list[float] = []
    count = 1
    while True:  # calibrate: a round of count calls takes ~seconds/5
        start = time.perf_counter()
        for _ in range(count):
            function()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 5:
            break
        count *= 2
    rounds.append(elapsed / count)
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(count):
            function()
        rounds.append((time.perf_counter() - start) / count)
    return statistics.median(rounds) * 1e6


def cpu_table() -> list[str]:
    ns, kh = b"LITESTAR\x00sessions\x00", key_digest("session-id")
    lines = ["| value | mode | stored bytes | seal µs/op | open µs/op |", "|---|---|---|---|---|"]
    for label, size in SIZES.items():
        value = sample(size)
        for mode, options in MODES.items():
            sealer = Sealer(
                compress_min_size=options.get("compress_min_size"),
                encryption_keys=options.get("encryption_keys", ()),
                read_unsealed=False,
                max_value_size=4 * 1024 * 1024,
            )
            stored = sealer.seal(value, ns, kh)
            assert sealer.open(stored, ns, kh) == value
            seal = per_call(lambda s=sealer, v=value: s.seal(v, ns, kh))
            unseal = per_call(lambda s=sealer, v=stored: s.open(v, ns, kh))
            lines.append(f"| {label} | {mode} | {len(stored):,} | {seal:.2f} | {unseal:.2f} |")
    return lines


async def _store_pairs(url: URL, options: dict[str, Any], value: bytes, ops: int) -> float:
    store = SQLStore.with_url(url, table_name=f"bench_seal_{uuid.uuid4().hex[:12]}", **options)
    async with store.engine.begin() as conn:
        await conn.run_sync(store.table.metadata.create_all)
    try:
        for index in range(min(ops, 50)):  # warm up
            await store.set(f"w{index}", value)
            await store.get(f"w{index}")
        times: list[float] = []
        for index in range(ops):
            start = time.perf_counter()
            await store.set(f"k{index}", value)
            got = await store.get(f"k{index}")
            times.append(time.perf_counter() - start)
            assert got == value
        return statistics.median(times) * 1e6
    finally:
        async with store.engine.begin() as conn:
            await conn.run_sync(store.table.metadata.drop_all)
        await store.close()


def store_table(dialects: list[str], ops: int, tmp: str) -> list[str]:
    lines = [
        "| dialect | value | " + " | ".join(MODES) + " |",
        "|---|---|" + "---|" * len(MODES),
    ]
    for dialect in dialects:
        url = dialect_url(dialect, Path(tmp) / f"{dialect}.db")
        port = 5432 if url.get_backend_name() == "postgresql" else 3306
        reason = None if dialect == "sqlite" else reachable(url, port)
        if reason:
            lines.append(f"| {dialect} | unavailable: {reason} |")
            continue
        for label, size in SIZES.items():
            value = sample(size)
            cells = [
                f"{asyncio.run(_store_pairs(url, options, value, ops)):,.0f}" for options in MODES.values()
            ]
            lines.append(f"| {dialect} | {label} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sealing", description=__doc__)
    parser.add_argument("--dialects", default="sqlite", help=f"comma-separated, of {', '.join(ALL_DIALECTS)}")
    parser.add_argument("--ops", type=int, default=300, help="set+get pairs per cell (default 300)")
    args = parser.parse_args(argv)
    dialects = [d for d in args.dialects.split(",") if d]
    print("CPU per call (µs), in the store's own code:")
    print("\n".join(cpu_table()))
    print(f"\nset + get through SQLStore.with_url, median µs per pair of {args.ops}:")
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(store_table(dialects, args.ops, tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
