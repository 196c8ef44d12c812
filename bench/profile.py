"""Where the time goes: the client CPU per call of sqlsession next to the raw driver, and a profile.

The CPU time of this process per call (``time.process_time``, all threads: aiosqlite's worker too) is
what a store adds on top of its driver, and what competes with the database for the cores."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time

from .contenders import ALL_DIALECTS, OPS, Settings, dropping, open_contender, tool_settings
from .run import op_call, session_keys


async def _measure(args: argparse.Namespace, settings: Settings) -> None:
    value, keys, times = os.urandom(512), session_keys(args.calls), {}

    async def calls(store: object, op: str) -> None:
        call = op_call(store, op, value, 3600)
        for key in keys:
            await call(key)

    async with dropping() as stores:
        for name in filter(None, args.contenders.split(",")):
            stores.append(await open_contender(name, args.dialect, settings))  # the benchmark's pool size
        for round_no in range(args.rounds + 1):  # round 0 warms up
            for contender in stores:
                await calls(contender.store, "set")  # the rows exist for every operation
                cpu, wall = time.process_time(), time.perf_counter()
                await calls(contender.store, args.op)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if round_no:
                    times.setdefault(contender.name, []).append((cpu, wall))  # seconds of the round
        print(f"{args.dialect} {args.op} 512 B, {args.calls} calls x {args.rounds} rounds, one task:")
        for name, pairs in times.items():
            cpu, wall = (min(column) / args.calls * 1e6 for column in zip(*pairs, strict=True))
            print(f"  {name:<18} client CPU {cpu:7.1f} µs/call   wall {wall:7.1f} µs/call (best rounds)")
        for contender in stores if args.cprofile else ():
            await calls(contender.store, "set")
            with cProfile.Profile() as profiler:
                await calls(contender.store, args.op)
            print(f"\n--- cProfile of {contender.name} ({args.calls} calls), by own time ---")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.cprofile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialect", choices=ALL_DIALECTS, default="asyncpg")
    parser.add_argument("--op", choices=OPS, default="get")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default="raw,sqlsession")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the N top functions")
    args = parser.parse_args(argv)
    for _, settings in tool_settings(args.dialect, "{dialect}: {reason}"):
        asyncio.run(_measure(args, settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
