"""What sealed values cost (``python -m bench.sealing``): for 512 B and 16 KiB of text that compresses like
JSON/HTML, plain, compressed, encrypted (AES-256-GCM) and both, the CPU of ``seal`` (``set``) and ``open``
(``get``) and the stored size; then the median time of a ``set`` and a ``get`` through ``SQLStore.with_url``
on a fresh table of each dialect."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import timeit
from typing import Any

from sqlsession._keys import key_digest
from sqlsession._sealing import Sealer

from .contenders import ALL_DIALECTS, Settings, dropping, open_contender, tool_settings

SIZES = {"512 B": 512, "16 KiB": 16 * 1024}
COMPRESS, ENCRYPT = {"compress_min_size": 0}, {"encryption_keys": [bytes(range(32))]}
MODES = {"plain": {}, "compressed": COMPRESS, "encrypted": ENCRYPT, "both": COMPRESS | ENCRYPT}
WORDS = 'user id name cart item sku qty price total "true" "false" null <div> </div> <p> </p> class '
WORDS += "href title token csrf flash message theme locale en de fr 0 1 2 3 42 1024 2026-12-01 { } [ ] , :"


def sample(size: int) -> bytes:
    """``size`` bytes of text that compresses like JSON or HTML (words of a fixed vocabulary, seeded)."""
    rng, words, out = random.Random(7), WORDS.split(), b""
    while len(out) < size:
        out += rng.choice(words).encode() + b" "
    return out[:size]


def per_call(function: Any) -> float:
    """Median microseconds per call over five rounds of about 60 ms."""
    count = 1
    while timeit.timeit(function, number=count) < 0.06:  # calibrate
        count *= 2
    return statistics.median(timeit.repeat(function, number=count, repeat=5)) / count * 1e6


async def _pairs(dialect: str, s: Settings, options: dict[str, Any], value: bytes, ops: int) -> float:
    """Median microseconds of a ``set`` and a ``get``, after ``min(ops, 50)`` of them to warm up."""
    async with dropping() as opened:
        opened.append(await open_contender("sqlsession", dialect, s, "sealing", **options))
        contender, times = opened[0], []
        for index in range(min(ops, 50) + ops):
            start = time.perf_counter()
            await contender.store.set(f"k{index}", value)
            assert await contender.store.get(f"k{index}") == value
            times.append(time.perf_counter() - start)
        return statistics.median(times[min(ops, 50) :]) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sealing", description=__doc__)
    parser.add_argument("--dialects", default="sqlite", help=f"comma-separated, of {', '.join(ALL_DIALECTS)}")
    parser.add_argument("--ops", type=int, default=300, help="set+get pairs per cell (default 300)")
    args, ns, kh = parser.parse_args(argv), b"LITESTAR\x00sessions\x00", key_digest("session-id")
    print("CPU per call (µs), in the store's own code:")
    print("| value | mode | stored bytes | seal µs/op | open µs/op |\n|---|---|---|---|---|")
    for (label, size), (mode, options) in [(z, m) for z in SIZES.items() for m in MODES.items()]:
        value, options = sample(size), {"compress_min_size": None, "encryption_keys": ()} | options
        sealer = Sealer(**options, read_unsealed=False, max_value_size=4 * 1024 * 1024)
        stored = sealer.seal(value, ns, kh)
        assert sealer.open(stored, ns, kh) == value
        seal = per_call(lambda s=sealer, v=value: s.seal(v, ns, kh))
        unseal = per_call(lambda s=sealer, v=stored: s.open(v, ns, kh))
        print(f"| {label} | {mode} | {len(stored):,} | {seal:.2f} | {unseal:.2f} |")
    print(f"\nset + get through SQLStore.with_url, median µs per pair of {args.ops}:")
    print("| dialect | value | " + " | ".join(MODES) + " |\n|---|---|" + "---|" * len(MODES))
    for dialect, settings in tool_settings(args.dialects, "| {dialect} | unavailable: {reason} |"):
        for label, size in SIZES.items():
            value = sample(size)
            pairs = [asyncio.run(_pairs(dialect, settings, mode, value, args.ops)) for mode in MODES.values()]
            print(f"| {dialect} | {label} | " + " | ".join(f"{us:,.0f}" for us in pairs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
