"""Command line of the benchmark: ``python -m bench [--quick] [--dialects ...] [--rows ...]``.

A full run (no ``--quick``) prints the tables and the PASS/FAIL of every target and rewrites
``docs/benchmarks.md`` and ``docs/benchmarks.png``. ``--quick`` shrinks every count and writes no
document unless ``--docs-dir`` is given. Benchmarks are not tests: the exit status is 0 whatever the
figures say.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import report, sysinfo
from .contenders import Contender, Unavailable, drop_leftovers, open_contender
from .scale import run_scale
from .settings import ALL_CONTENDERS, ALL_DIALECTS, Settings, server_reason
from .workload import Interrupted, concurrent, latency_summary, request_stop, sequential

__all__ = ("main", "run")

REPO = Path(__file__).resolve().parent.parent
RETRY_PAUSE_S = 15
FOREIGN_LIMIT = 0.1  # cores used by other processes on average, above which the document says so

QUICK = {
    "batch": 20,
    "rounds": 3,
    "seconds": 0.4,
    "conc_rounds": 1,
    "keys": 200,
    "rows": (1_000, 20_000),
    "scale_keys": 32,
    "scale_rounds": 3,
}


def _interrupt() -> None:
    _log("interrupted: stopping at the next step and dropping what the run created")
    request_stop()


def _log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def _names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(allowed)})"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, for a check that it runs")
    parser.add_argument(
        "--dialects",
        type=lambda text: _names(text, ALL_DIALECTS, "dialect"),
        default=ALL_DIALECTS,
        help=f"comma-separated, of {','.join(ALL_DIALECTS)} (default: all)",
    )
    parser.add_argument(
        "--contenders",
        type=lambda text: _names(text, ALL_CONTENDERS, "contender"),
        default=ALL_CONTENDERS,
        help=f"comma-separated, of {','.join(ALL_CONTENDERS)} (default: all)",
    )
    parser.add_argument(
        "--rows",
        type=_ints,
        default=None,
        help=(
            "table sizes of the scale part, e.g. 1000,2000000 (default; --quick: 1000,20000); "
            "the largest is half expiring, half live; 0 skips it"
        ),
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the scale part")
    parser.add_argument("--only-scale", action="store_true", help="run the scale part alone")
    parser.add_argument("--sizes", type=_ints, default=None, help="value sizes in bytes (default 512,16384)")
    parser.add_argument("--batch", type=int, default=None, help="calls per contender, operation and round")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds of the sequential shape")
    parser.add_argument(
        "--tasks", type=_ints, default=None, help="tasks of the concurrent shape (default 1,32)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds per contender per concurrent round"
    )
    parser.add_argument("--conc-rounds", type=int, default=None, help="rounds of the concurrent shape")
    parser.add_argument("--keys", type=int, default=None, help="keys of the concurrent mix")
    parser.add_argument(
        "--pool-size", type=int, default=None, help="connections per SQL contender (default 10)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="re-run a dialect's group (or its scale part) this many times when it looks disturbed: server "
        "unreachable, or two or more contenders failing (e.g. a server restart); default 1",
    )
    parser.add_argument(
        "--docs-dir", type=Path, default=None, help="write benchmarks.md and benchmarks.png here"
    )
    parser.add_argument("--no-docs", action="store_true", help="write no document (default for --quick)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON here")
    parser.add_argument(
        "--note", default="", help="a note for the document (e.g. what else ran on the machine)"
    )
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace, workdir: Path) -> Settings:
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("batch", "rounds", "seconds", "conc_rounds", "keys", "pool_size", "sizes", "tasks", "rows"):
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    if args.no_scale or values.get("rows") == (0,):
        values["rows"] = ()
    return Settings(dialects=args.dialects, contenders=args.contenders, workdir=workdir, **values)


def _cells(latencies: Any) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for (name, op, size), samples in latencies.samples.items():
        out.setdefault(name, {}).setdefault(op, {})[str(size)] = latency_summary(samples)
    return out


async def _group(dialect: str, settings: Settings) -> dict[str, Any]:
    """Every contender of one dialect, interleaved: the sequential shape, then the concurrent one."""
    reason = server_reason(dialect)
    if reason is not None:
        _log(f"{dialect}: server unreachable: {reason}")
        return {"available": False, "reason": f"server unreachable: {reason}"}
    group: dict[str, Any] = {"available": True, "contenders": {}}
    opened: list[Contender] = []
    try:
        for name in settings.contenders:
            try:
                contender = await open_contender(name, dialect, settings)
            except Unavailable as error:
                group["contenders"][name] = {"status": "unavailable", "detail": str(error)}
                _log(f"{dialect}: {name} unavailable: {error}")
                continue
            except Exception as error:
                group["contenders"][name] = {"status": "error", "detail": f"{type(error).__name__}: {error}"}
                _log(f"{dialect}: {name} failed to open: {type(error).__name__}: {error}")
                continue
            opened.append(contender)
            group["contenders"][name] = {"status": "ok", "detail": contender.note}
        if not opened:
            return group
        _log(f"{dialect}: sequential shape, {', '.join(c.name for c in opened)}")
        latencies = await sequential(
            opened,
            sizes=settings.sizes,
            batch=settings.batch,
            rounds=settings.rounds,
            expires_in=settings.expires_in,
        )
        group["sequential"] = _cells(latencies)
        group["misses"] = latencies.misses
        _log(f"{dialect}: concurrent shape")
        throughput = await concurrent(
            [c for c in opened if c.name not in latencies.errors],
            sizes=settings.sizes,
            tasks=settings.tasks,
            seconds=settings.seconds,
            rounds=settings.conc_rounds,
            keys=settings.keys,
            expires_in=settings.expires_in,
        )
        conc: dict[str, dict[str, dict[str, float]]] = {}
        for (name, size, tasks), value in throughput.ops_per_s.items():
            conc.setdefault(name, {}).setdefault(str(size), {})[str(tasks)] = value
        group["concurrent"] = conc
        cpu: dict[str, dict[str, dict[str, float]]] = {}
        for (name, size, tasks), value in throughput.client_cpu.items():
            cpu.setdefault(name, {}).setdefault(str(size), {})[str(tasks)] = value
        group["client_cpu"] = cpu
        for name, message in {**throughput.errors, **latencies.errors}.items():
            group["contenders"][name] = {"status": "error", "detail": message}
            _log(f"{dialect}: {name} failed: {message}")
    finally:
        for contender in opened:
            try:
                await contender.close()
            except Exception as error:
                _log(f"{dialect}: closing {contender.name} failed: {type(error).__name__}: {error}")
    return group


async def _measure_all(
    results: dict[str, Any], settings: Settings, *, only_scale: bool, retries: int
) -> None:
    """The groups of every dialect, then the scale part, into ``results``."""
    for dialect in settings.dialects:
        if only_scale:
            reason = server_reason(dialect)
            results["groups"][dialect] = {
                "available": reason is None,
                "reason": f"server unreachable: {reason}",
            }
            continue
        for attempt in range(retries + 1):
            group = await _group(dialect, settings)
            group["attempts"] = attempt + 1
            failed = [name for name, info in group.get("contenders", {}).items() if info["status"] == "error"]
            if (group["available"] and len(failed) < 2) or attempt == retries:
                break
            why = "server unreachable" if not group["available"] else f"{', '.join(failed)} failed"
            _log(f"{dialect}: disturbed ({why}); the group runs again in {RETRY_PAUSE_S} s")
            await asyncio.sleep(RETRY_PAUSE_S)
        results["groups"][dialect] = group
    if settings.rows and "sqlsession" in settings.contenders:
        results["scale"] = {}
        for dialect in settings.dialects:
            if not results["groups"][dialect].get("available"):
                continue
            for attempt in range(retries + 1):
                _log(f"{dialect}: scale part, rows {', '.join(f'{n:,}' for n in settings.rows)}")
                try:
                    results["scale"][dialect] = await run_scale(dialect, settings, _log)
                    break
                except Exception as error:
                    _log(f"{dialect}: scale part failed: {type(error).__name__}: {error}")
                    results["scale"][dialect] = {"error": f"{type(error).__name__}: {error}"}
                if attempt < retries:
                    await asyncio.sleep(RETRY_PAUSE_S)


async def run(
    settings: Settings, command: str, *, only_scale: bool = False, retries: int = 1
) -> dict[str, Any]:
    """Everything one run measures, as a JSON-ready dict."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, _interrupt)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "command": command,
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": sysinfo.machine(),
            "packages": sysinfo.packages(),
            "revision": sysinfo.git_revision(REPO),
            "load_before": sysinfo.busy_processes(),
            "cpu_before": sysinfo.cpu_snapshot(),
        },
        "settings": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in dataclasses.asdict(settings).items()
        },
        "groups": {},
    }
    results["meta"]["servers"] = await sysinfo.servers(settings)
    try:
        await _measure_all(results, settings, only_scale=only_scale, retries=retries)
    finally:
        dropped = await drop_leftovers()
        if dropped:
            _log(f"dropped tables left behind by a disturbed contender: {', '.join(dropped)}")
    results["meta"]["load_after"] = sysinfo.busy_processes()
    results["meta"]["foreign_cores"] = sysinfo.foreign_load(
        results["meta"].pop("cpu_before"), sysinfo.cpu_snapshot()
    )
    results["meta"]["duration_s"] = time.perf_counter() - started
    return results


def _disturbed(results: dict[str, Any], note: str) -> str:
    foreign = results["meta"].get("foreign_cores", 0.0)
    parts = [note] if note else []
    retried = [d for d, g in results["groups"].items() if g.get("attempts", 1) > 1]
    if foreign > FOREIGN_LIMIT:
        parts.append(
            f"other work was running on this machine during the run: processes other than the benchmark and "
            f"the database servers used {foreign * 100:.0f}% of a core on average (the servers may have "
            "served other clients too); the figures are noisier than on a quiet machine"
        )
    if retried:
        parts.append(f"the groups of {', '.join(retried)} were re-run after a disturbance (server restart?)")
    return "; ".join(parts)


def _measuring(given: Sequence[str]) -> list[str]:
    """The arguments that change what is measured (not where results go): the re-run command."""
    out: list[str] = []
    skip = False
    for arg in given:
        if skip:
            skip = False
            continue
        if arg in ("--json", "--note", "--docs-dir"):
            skip = True
            continue
        if arg.startswith(("--json=", "--note=", "--docs-dir=")):
            continue
        out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m bench", *_measuring(given)])
    workdir = Path(tempfile.mkdtemp(prefix="sqlsession-bench-"))
    try:
        settings = build_settings(args, workdir)
        _log(f"benchmark: dialects {', '.join(settings.dialects)}; working files in {workdir}")
        results = asyncio.run(run(settings, command, only_scale=args.only_scale, retries=args.retries))
    except Interrupted:
        _log("interrupted: no report written")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["meta"]["disturbed_note"] = _disturbed(results, args.note)
    # the document words its noise section from these; the JSON keeps the one-line summary above
    results["meta"]["note"] = args.note
    results["meta"]["foreign_limit"] = FOREIGN_LIMIT
    print("\n".join(report.text_report(results)))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    docs_dir = args.docs_dir
    if docs_dir is None and not args.quick and not args.no_docs:
        docs_dir = REPO / "docs"
    if docs_dir is not None and not args.no_docs:
        docs_dir.mkdir(parents=True, exist_ok=True)
        png = docs_dir / "benchmarks.png"
        problem = report.chart(results, png)
        if problem:
            _log(f"no chart: {problem}")
        (docs_dir / "benchmarks.md").write_text(report.markdown(results, None if problem else png.name))
        _log(f"wrote {docs_dir / 'benchmarks.md'}" + ("" if problem else f" and {png}"))
    _log(f"done in {results['meta']['duration_s'] / 60:.1f} min")
    return 0
