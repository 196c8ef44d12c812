"""Where the time goes: client CPU per call of sqlsession next to the raw driver, and a profile.

``python -m bench.profile --dialect asyncpg --op get --calls 5000 [--cprofile 25]``

Wall-clock latency mixes the server, the network stack and the scheduler; the CPU time this
process spends per call (``time.process_time``, all threads: aiosqlite's worker included) is
what a store adds on top of its driver, and what competes with the database for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .contenders import Contender, open_contender
from .settings import ALL_DIALECTS, OPS, Settings
from .workload import session_keys


async def _calls(contender: Contender, op: str, keys: Sequence[str], value: bytes) -> None:
    store = contender.store
    if op == "set":
        for key in keys:
            await store.set(key, value, 3600)
    elif op == "get":
        for key in keys:
            await store.get(key)
    elif op == "get_renew":
        for key in keys:
            await store.get(key, 3600)
    elif op == "exists":
        for key in keys:
            await store.exists(key)
    else:
        for key in keys:
            await store.delete(key)


async def _measure(
    dialect: str, op: str, calls: int, size: int, names: Sequence[str], top: int, rounds: int
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sqlsession-profile-"))
    settings = Settings(dialects=(dialect,), workdir=workdir)  # the pool size of the benchmark
    contenders: list[Contender] = []
    value = os.urandom(size)
    keys = session_keys(calls)
    try:
        for name in names:
            contenders.append(await open_contender(name, dialect, settings))
        cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
        wall: dict[str, list[float]] = {c.name: [] for c in contenders}
        for round_no in range(rounds + 1):
            for contender in contenders:
                await _calls(contender, "set", keys, value)  # the rows exist for every operation
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                await _calls(contender, op, keys, value)
                if round_no:  # round 0 warms up
                    cpu[contender.name].append((time.process_time() - cpu_start) / calls * 1e6)
                    wall[contender.name].append((time.perf_counter() - wall_start) / calls * 1e6)
        print(f"{dialect} {op} {size} B, {calls} calls x {rounds} rounds, one connection:")
        for name in cpu:
            print(
                f"  {name:<18} client CPU {min(cpu[name]):7.1f} µs/call (best round)   "
                f"wall {min(wall[name]):7.1f} µs/call (best round)"
            )
        if top:
            for contender in contenders:
                await _calls(contender, "set", keys, value)
                profiler = cProfile.Profile()
                profiler.enable()
                await _calls(contender, op, keys, value)
                profiler.disable()
                buffer = io.StringIO()
                pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(top)
                print(f"\n--- cProfile of {contender.name} ({calls} calls), by own time ---")
                print(buffer.getvalue())
    finally:
        for contender in contenders:
            await contender.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialect", choices=ALL_DIALECTS, default="asyncpg")
    parser.add_argument("--op", choices=OPS, default="get")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--contenders", default="raw,sqlsession")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the N top functions")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.contenders.split(",") if name.strip()]
    asyncio.run(_measure(args.dialect, args.op, args.calls, args.size, names, args.cprofile, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
