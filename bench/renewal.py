"""What renewal costs with ``renew_threshold`` (``python -m bench.renewal``): ``get(key, renew_for=3600)``
of a 512-byte session, next to a plain ``get``, on stores of ``SQLStore.with_url`` interleaved in a seeded
order. ``renew t=0.1`` writes the expiry once it is 360 s behind (target: at most 1.10x ``get``); ``renew
t=0`` (the default, Litestar's) every time. Prints the median microseconds per call and the ratio."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from .contenders import ALL_DIALECTS, Settings, dropping, open_contender, tool_settings

RENEW_FOR, VALUE, KEYS = 3600, b"s" * 512, 32
THRESHOLDS = {"get": 0.0, "renew t=0.1": 0.1, "renew t=0": 0.0}  # renew_threshold of each store


async def _measure(dialect: str, s: Settings, rounds: int, batch: int) -> list[float]:
    rng, samples = random.Random(5), {name: [] for name in THRESHOLDS}
    async with dropping() as opened:
        for i, threshold in enumerate(THRESHOLDS.values()):
            options = {"file": f"renewal{i}", "renew_threshold": threshold}
            opened.append(await open_contender("sqlsession", dialect, s, **options))
            for key in range(KEYS):
                await opened[-1].store.set(str(key), VALUE, expires_in=RENEW_FOR)
        stores = dict(zip(THRESHOLDS, opened, strict=True))
        for round_no in range(rounds + 1):  # round 0 warms up
            for name in rng.sample(list(stores), len(stores)):
                start, renew_for = time.perf_counter(), None if name == "get" else RENEW_FOR
                for i in range(batch):
                    await stores[name].store.get(str(i % KEYS), renew_for=renew_for)
                samples[name] += [(time.perf_counter() - start) / batch * 1e6] if round_no else []
        return [statistics.median(values) for values in samples.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.renewal", description=__doc__)
    parser.add_argument("--dialects", default=",".join(ALL_DIALECTS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    parser.add_argument("--batch", type=int, default=100, help="calls per store per round (default 100)")
    args = parser.parse_args(argv)
    print(f"{'dialect':<10} {'get':>9} {'renew t=0.1':>12} {'ratio':>6} {'renew t=0':>10} {'ratio':>6}")
    for dialect, settings in tool_settings(args.dialects, "{dialect:<10} skipped: {reason}"):
        g, a, b = asyncio.run(_measure(dialect, settings, args.rounds, args.batch))
        print(f"{dialect:<10} {g:>7.0f}us {a:>10.0f}us {a / g:>5.2f}x {b:>8.0f}us {b / g:>5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
