"""Tables (terminal and Markdown), the targets' PASS/FAIL, the chart and ``docs/benchmarks.md``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .settings import ALL_CONTENDERS, OPS

__all__ = ("chart", "markdown", "targets", "text_report")

OP_LABELS = {
    "set": "set",
    "get": "get",
    "get_renew": "get(renew_for)",
    "exists": "exists",
    "delete": "delete",
}
RAW_LIMIT = {"sqlite": 2.0}
RAW_LIMIT_DEFAULT = 1.5
FLAT_LIMIT = 1.3
CONCURRENT_FACTOR = 2.0
MAIN = "sqlsession"
LIBRARIES = ("sqlspec", "advanced-alchemy")
# time per op as a multiple of the raw driver's, for each way of making a store (set, get, get+renew,
# 1 task: medians; 32 tasks: the mix's throughput): SQLStore.with_url and SQLStore(application's engine)
WAY_LIMITS = {
    "sqlsession": {"asyncpg": 1.2, "psycopg": 1.2, "asyncmy": 1.2},
    "sqlsession-engine": {"sqlite": 2.0, "asyncpg": 1.5, "psycopg": 1.5, "asyncmy": 1.5},
}
WAY_OPS = ("set", "get", "get_renew")


def size_label(size: int | str) -> str:
    size = int(size)
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _grid(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return lines
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=False)]
        return "  ".join([first, *rest]).rstrip()

    return [line(headers), "  ".join("-" * width for width in widths), *(line(row) for row in rows)]


def _present(group: dict[str, Any]) -> list[str]:
    """Contenders that produced figures, in the standard column order."""
    seq = group.get("sequential", {})
    conc = group.get("concurrent", {})
    return [name for name in ALL_CONTENDERS if name in seq or name in conc]


def _median(group: dict[str, Any], name: str, op: str, size: int | str) -> float | None:
    cell = group.get("sequential", {}).get(name, {}).get(op, {}).get(str(size))
    return None if cell is None else float(cell["median_us"])


def _throughput(group: dict[str, Any], name: str, size: int | str, tasks: int | str) -> float | None:
    value = group.get("concurrent", {}).get(name, {}).get(str(size), {}).get(str(tasks))
    return None if value is None else float(value)


def _sizes(results: dict[str, Any]) -> list[int]:
    return [int(size) for size in results["settings"]["sizes"]]


def _tasks(results: dict[str, Any]) -> list[int]:
    return [int(tasks) for tasks in results["settings"]["tasks"]]


def sequential_table(results: dict[str, Any], dialect: str, markdown: bool) -> list[str]:
    group = results["groups"][dialect]
    names = _present(group)
    headers = ["operation", "value", *names]
    rows = []
    for op in OPS:
        for size in _sizes(results):
            row = [OP_LABELS[op], size_label(size)]
            for name in names:
                cell = group.get("sequential", {}).get(name, {}).get(op, {}).get(str(size))
                row.append("-" if cell is None else f"{_fmt(cell['median_us'])} ({_fmt(cell['p99_us'])})")
            rows.append(row)
    return _grid(headers, rows, markdown)


def ratio_table(results: dict[str, Any], dialect: str, markdown: bool) -> list[str]:
    group = results["groups"][dialect]
    others = [name for name in _present(group) if name != MAIN]
    headers = ["operation", "value", *(f"/{name}" for name in others)]
    rows = []
    for op in OPS:
        for size in _sizes(results):
            mine = _median(group, MAIN, op, size)
            row = [OP_LABELS[op], size_label(size)]
            for name in others:
                theirs = _median(group, name, op, size)
                row.append("-" if mine is None or not theirs else f"{mine / theirs:.2f}")
            rows.append(row)
    return _grid(headers, rows, markdown)


def concurrent_table(results: dict[str, Any], dialect: str, markdown: bool) -> list[str]:
    group = results["groups"][dialect]
    names = _present(group)
    headers = ["value", "tasks", *names, *(f"{MAIN}/{n}" for n in names if n != MAIN)]
    rows = []
    for size in _sizes(results):
        for tasks in _tasks(results):
            row = [size_label(size), str(tasks)]
            row += [_fmt(_throughput(group, name, size, tasks)) for name in names]
            mine = _throughput(group, MAIN, size, tasks)
            for name in names:
                if name == MAIN:
                    continue
                theirs = _throughput(group, name, size, tasks)
                row.append("-" if mine is None or not theirs else f"{mine / theirs:.2f}")
            rows.append(row)
    return _grid(headers, rows, markdown)


def cpu_table(results: dict[str, Any], dialect: str, markdown: bool) -> list[str]:
    """Client CPU per second of the mix, in % of one core (100% = Python is the bottleneck)."""
    group = results["groups"][dialect]
    cpu = group.get("client_cpu", {})
    names = [name for name in _present(group) if name in cpu]
    rows = []
    for size in _sizes(results):
        for tasks in _tasks(results):
            row = [size_label(size), str(tasks)]
            for name in names:
                value = cpu.get(name, {}).get(str(size), {}).get(str(tasks))
                row.append("-" if value is None else f"{value * 100:.0f}%")
            rows.append(row)
    return _grid(["value", "tasks", *names], rows, markdown)


def scale_tables(results: dict[str, Any], markdown: bool) -> list[str]:
    scale = results.get("scale", {})
    if not scale:
        return []
    lines: list[str] = []
    headers = ["dialect", "operation"]
    counts: list[str] = []
    for part in scale.values():
        counts = list(part.get("rows", {}))
        if counts:
            break
    headers += [f"{int(n):,} rows" for n in counts]
    if len(counts) >= 2:
        headers.append("large/small")
    rows = []
    for dialect, part in scale.items():
        if "error" in part:
            rows.append([dialect, f"error: {part['error']}", *(["-"] * (len(headers) - 2))])
            continue
        for op in OPS:
            row = [dialect, OP_LABELS[op]]
            medians = []
            for n in counts:
                cell = part["rows"].get(n, {}).get("ops", {}).get(op)
                medians.append(None if cell is None else cell["median_us"])
                row.append("-" if cell is None else f"{_fmt(cell['median_us'])} ({_fmt(cell['p99_us'])})")
            if len(counts) >= 2:
                small, large = medians[0], medians[-1]
                row.append("-" if not small or large is None else f"{large / small:.2f}")
            rows.append(row)
    lines += _grid(headers, rows, markdown)
    lines.append("")
    headers = [
        "dialect",
        "expired rows",
        "deleted",
        "delete_expired() s",
        "get p50 / p99 before (µs)",
        "get p50 / p99 during (µs)",
        "gets during",
    ]
    rows = []
    for dialect, part in scale.items():
        info = part.get("delete_expired")
        if not info:
            continue
        before, during = info["baseline"], info["during"]
        rows.append(
            [
                dialect,
                f"{int(part['rows'][str(info['rows'])]['filled']):,}",
                f"{int(info['deleted']):,}",
                f"{info['seconds']:.2f}",
                f"{_fmt(before['median_us'])} / {_fmt(before['p99_us'])}",
                f"{_fmt(during['median_us'])} / {_fmt(during['p99_us'])}",
                f"{int(during['n']):,}",
            ]
        )
    lines += _grid(headers, rows, markdown)
    return lines


def _ratio(group: dict[str, Any], name: str, op: str, size: int | str) -> float | None:
    mine, raw = _median(group, name, op, size), _median(group, "raw", op, size)
    return mine / raw if mine and raw else None


def _throughput_ratio(group: dict[str, Any], name: str, size: int | str, tasks: int) -> float | None:
    mine, raw = _throughput(group, name, size, tasks), _throughput(group, "raw", size, tasks)
    return raw / mine if mine and raw else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 4 checked on this run's figures (PASS/FAIL, never an assertion)."""
    checks: list[dict[str, Any]] = []

    def add(target: str, scope: str, ok: bool, detail: str) -> None:
        checks.append({"target": target, "scope": scope, "ok": ok, "detail": detail})

    for dialect, group in results["groups"].items():
        limit = RAW_LIMIT.get(dialect, RAW_LIMIT_DEFAULT)
        for op in OPS:
            for size in _sizes(results):
                mine = _median(group, MAIN, op, size)
                if mine is None:
                    continue
                scope = f"{dialect} {OP_LABELS[op]} {size_label(size)}"
                raw = _median(group, "raw", op, size)
                if raw:
                    ratio = mine / raw
                    add(f"median <= {limit}x raw driver", scope, ratio <= limit, f"{ratio:.2f}x raw")
                for library in LIBRARIES:
                    theirs = _median(group, library, op, size)
                    if theirs:
                        add(
                            f"faster than {library}",
                            scope,
                            mine < theirs,
                            f"{mine:.0f} vs {theirs:.0f} µs ({mine / theirs:.2f}x)",
                        )
        tasks = _tasks(results)
        for size in _sizes(results):
            many = _throughput(group, MAIN, size, max(tasks))
            for library in LIBRARIES:
                theirs = _throughput(group, library, size, max(tasks))
                if many and theirs:
                    add(
                        f"(extra) mix throughput above {library}",
                        f"{dialect} {size_label(size)} {max(tasks)} tasks",
                        many > theirs,
                        f"{many:,.0f} vs {theirs:,.0f} ops/s",
                    )
            if dialect in ("asyncpg", "psycopg") and len(tasks) > 1:
                one = _throughput(group, MAIN, size, min(tasks))
                raw_one = _throughput(group, "raw", size, min(tasks))
                raw_many = _throughput(group, "raw", size, max(tasks))
                floor = f"; raw driver: {raw_many / raw_one:.2f}x" if raw_one and raw_many else ""
                if one and many:
                    factor = many / one
                    add(
                        f"concurrent >= {CONCURRENT_FACTOR:g}x sequential throughput",
                        f"{dialect} {size_label(size)}",
                        factor >= CONCURRENT_FACTOR,
                        f"{many:,.0f} ops/s with {max(tasks)} tasks = {factor:.2f}x "
                        f"{one:,.0f} with {min(tasks)}{floor}",
                    )
    for dialect, group in results["groups"].items():
        for way, limits in WAY_LIMITS.items():
            limit = limits.get(dialect)
            if limit is None:
                continue
            for size in _sizes(results):
                # (scope, our time per op / the raw driver's): medians with one task, the mix's throughput
                ratios = [
                    (f"{OP_LABELS[op]} {size_label(size)}, 1 task", _ratio(group, way, op, size))
                    for op in WAY_OPS
                ] + [
                    (f"mix {size_label(size)}, {tasks} tasks", _throughput_ratio(group, way, size, tasks))
                    for tasks in _tasks(results)
                ]
                for scope, ratio in ratios:
                    if ratio is not None:
                        target = f"{way}: time per op <= {limit}x raw driver"
                        add(target, f"{dialect} {scope}", ratio <= limit, f"{ratio:.2f}x raw")
    for dialect, part in results.get("scale", {}).items():
        counts = list(part.get("rows", {}))
        if len(counts) < 2:
            continue
        small, large = counts[0], counts[-1]
        for op in OPS:
            a = part["rows"][small].get("ops", {}).get(op)
            b = part["rows"][large].get("ops", {}).get(op)
            if a and b:
                ratio = b["median_us"] / a["median_us"]
                add(
                    f"flat latency: {int(large):,} rows <= {FLAT_LIMIT}x {int(small):,} rows",
                    f"{dialect} {OP_LABELS[op]} 512 B",
                    ratio <= FLAT_LIMIT,
                    f"{b['median_us']:.0f} vs {a['median_us']:.0f} µs ({ratio:.2f}x)",
                )
    return checks


def _target_lines(checks: Sequence[dict[str, Any]], markdown: bool) -> list[str]:
    if markdown:
        rows = [["PASS" if c["ok"] else "**FAIL**", c["target"], c["scope"], c["detail"]] for c in checks]
        return _grid(["", "target", "where", "figure"], rows, True)
    return [
        f"{'PASS' if c['ok'] else 'FAIL'}  {c['target']:<48} {c['scope']:<34} {c['detail']}" for c in checks
    ]


def _availability(results: dict[str, Any]) -> list[str]:
    lines = []
    for dialect, group in results["groups"].items():
        if not group.get("available", True):
            lines.append(f"- {dialect}: not run: {group.get('reason', '?')}")
            continue
        for name, info in group.get("contenders", {}).items():
            if info["status"] != "ok":
                lines.append(f"- {dialect} / {name}: {info['status']}: {info['detail']}")
        for name, count in group.get("misses", {}).items():
            if count:
                lines.append(f"- {dialect} / {name}: {count} reads did not return the value written")
    return lines


def text_report(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for dialect, group in results["groups"].items():
        if not group.get("available", True):
            lines += [f"== {dialect}: not run ({group.get('reason')})", ""]
            continue
        if not group.get("sequential") and not group.get("concurrent"):
            continue
        lines += [
            f"== {dialect}: sequential latency, median (p99) in µs, 1 task",
            *sequential_table(results, dialect, False),
        ]
        lines += ["", f"== {dialect}: sqlsession median / other median (lower = sqlsession faster)"]
        lines += [*ratio_table(results, dialect, False), ""]
        lines += [
            f"== {dialect}: session mix (70% get+renew, 25% set, 5% delete), ops/s; "
            "ratios: higher = sqlsession faster"
        ]
        lines += [*concurrent_table(results, dialect, False), ""]
    if results.get("scale"):
        lines += [
            "== scale: sqlsession alone, median (p99) in µs, 512 B values",
            *scale_tables(results, False),
            "",
        ]
    notes = _availability(results)
    if notes:
        lines += ["== not run / problems", *notes, ""]
    checks = targets(results)
    lines += ["== targets", *_target_lines(checks, False)]
    failed = sum(1 for c in checks if not c["ok"])
    lines.append(f"targets: {len(checks) - failed} PASS, {failed} FAIL")
    return lines


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Bar chart of the mix throughput per dialect and store; ``None`` or why it was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"matplotlib is not installed ({error})"
    dialects = [d for d, g in results["groups"].items() if g.get("concurrent")]
    if not dialects:
        return "no throughput figures"
    sizes, tasks = _sizes(results), _tasks(results)
    names = [
        n for n in ALL_CONTENDERS if any(n in results["groups"][d].get("concurrent", {}) for d in dialects)
    ]
    fig, axes = plt.subplots(
        len(tasks), len(sizes), figsize=(6.5 * len(sizes), 3.8 * len(tasks)), squeeze=False
    )
    width = 0.8 / max(len(names), 1)
    colors = plt.get_cmap("tab10")
    for row, n_tasks in enumerate(tasks):
        for col, size in enumerate(sizes):
            ax = axes[row][col]
            for i, name in enumerate(names):
                values = [_throughput(results["groups"][d], name, size, n_tasks) or 0.0 for d in dialects]
                xs = [x + (i - (len(names) - 1) / 2) * width for x in range(len(dialects))]
                ax.bar(
                    xs,
                    values,
                    width,
                    label=name,
                    color=colors(i),
                    edgecolor="black" if name == MAIN else None,
                )
                for x, value, dialect in zip(xs, values, dialects, strict=True):
                    status = results["groups"][dialect].get("contenders", {}).get(name, {}).get("status")
                    if not value and status in ("error", "unavailable"):
                        label = "failed" if status == "error" else "n/a"
                        ax.text(x, 0, label, rotation=90, fontsize=7, ha="center", va="bottom")
            ax.set_xticks(range(len(dialects)), dialects)
            ax.set_title(
                f"session mix, {size_label(size)} values, {n_tasks} task{'s' if n_tasks > 1 else ''}"
            )
            ax.set_ylabel("ops/s")
            ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(names), fontsize=9, frameon=False)
    fig.suptitle("sqlsession benchmark: throughput per dialect and store (higher is better)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def markdown(results: dict[str, Any], chart_name: str | None) -> str:
    meta, settings = results["meta"], results["settings"]
    m = meta["machine"]
    guest = f", {m['hypervisor']} guest" if m["hypervisor"] else ""
    row_counts = ", ".join(f"{int(n):,}" for n in settings["rows"])
    out: list[str] = ["# Benchmarks", ""]
    out += [
        "Generated by `python -m bench` (the harness in `bench/`); re-run on a quiet machine to refresh",
        "this file and the chart (both are rewritten):",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"Run on {meta['started']}, took {meta['duration_s'] / 60:.1f} minutes; "
        f"sqlsession at {meta['revision']}.",
        "",
    ]
    load = meta["load_before"], meta["load_after"]
    if meta.get("disturbed_note"):
        out += [f"**Note:** {meta['disturbed_note']}", ""]
    out += [
        f"Load average before / after: {load[0]['loadavg']} / {load[1]['loadavg']}; other processes "
        f"(not the benchmark, not the database servers) used {meta.get('foreign_cores', 0) * 100:.0f}% of a "
        "core on average during the run."
        + (f" Busy processes at the start: {', '.join(load[0]['busy'])}." if load[0]["busy"] else ""),
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, `nproc` = {m['nproc']} ({m['cores_per_socket']} cores per socket, "
        f"{m['threads_per_core']} thread per core{guest})",
        f"- memory: {m['memory_gib']} GiB; {m['os']}, Linux {m['kernel']}",
        f"- Python {m['python']}, SQLite library {m['sqlite']}, default asyncio event loop",
        "",
        "## Versions",
        "",
        *_grid(["package", "version"], [[k, v] for k, v in meta["packages"].items()], True),
        "",
        *_grid(["server", "version and settings"], [[k, v] for k, v in meta["servers"].items()], True),
        "",
        "## Method",
        "",
        "- Contenders, each on a table (SQLite: a file; Redis: a namespace; FileStore: a folder) of its own:",
        "  - **raw**: the driver alone running, by hand, the SQL the store runs for that dialect",
        "    (same table, same statements and parameters, autocommit; SQLite with WAL and",
        "    `synchronous=NORMAL`), on one connection when sequential. This is the floor.",
        "  - **sqlsession**: `SQLStore.with_url(url)` (an engine of its own, in autocommit).",
        "  - **sqlsession-engine**: `SQLStore(create_async_engine(url))` (the application's engine with",
        "    SQLAlchemy's defaults: `pool_size=5, max_overflow=10`, not in autocommit).",
        "  - **sqlspec**: sqlspec's Litestar store for the same driver (`AsyncpgStore`, `PsycopgAsyncStore`,",
        "    `AsyncmyStore`, `AiosqliteStore`), table made by its `create_table()`.",
        "  - **advanced-alchemy**: `SQLAlchemyStore` with a model on `StoreModelMixin`, on an",
        "    `AsyncEngine` of the same driver (SQLite: WAL and `synchronous=NORMAL` set on connect).",
        "  - **FileStore** and **RedisStore**: Litestar's own, run in every dialect's group so that",
        "    each table compares against them too.",
        f"- Every SQL contender has at most {settings['pool_size']} connections (sqlsession: `pool_size="
        f"{settings['pool_size']}, max_overflow=0`; the others' pools the same size).",
        f"- Keys look like Litestar session IDs (64 hex characters); values are random bytes; "
        f"`expires_in` / `renew_for` = {settings['expires_in']} s.",
        f"- Sequential: one task; per round, operation and value size each contender in turn (the order "
        f"rotates every round) makes {settings['batch']} calls, each timed alone; {settings['rounds']} "
        f"rounds after a warm-up round, so {settings['batch'] * settings['rounds']:,} samples per cell. "
        "`delete` removes rows that exist (set untimed just before).",
        f"- Concurrent: the session mix (70% `get` with `renew_for`, 25% `set`, 5% `delete`) on "
        f"{settings['keys']:,} keys, with {' and '.join(str(t) for t in settings['tasks'])} tasks, "
        f"{settings['seconds']} s per contender per round, {settings['conc_rounds']} rounds, contenders "
        "alternating; throughput = operations done / time. The database server runs on the same machine: "
        "with few cores, client and server share them, so the gain from concurrency is bounded by the "
        "cores over the CPU time one operation costs the client plus the server (the CPU table of each "
        "dialect shows the client's share).",
    ]
    if results.get("scale"):
        out += [
            f"- Scale: sqlsession alone on tables of {row_counts} rows "
            f"(bulk-loaded server-side, {settings['fill_value_bytes']}-byte values, then `VACUUM ANALYZE` / "
            f"`ANALYZE`), measured interleaved with {settings['scale_keys']} working keys, 512-byte values; "
            f"then `delete_expired()` on the largest table, its filler rows expired (the stores' clock is "
            f"moved two days on), while {settings['delete_get_tasks']} tasks `get` live keys, "
            f"{settings['delete_get_rate']:,.0f} calls per second in all (and for 2 s before, to compare).",
        ]
    out += [""]
    if chart_name:
        out += ["## Throughput", "", f"![throughput per dialect and store]({chart_name})", ""]
    for dialect, group in results["groups"].items():
        if group.get("available", True) and not group.get("sequential") and not group.get("concurrent"):
            continue
        out += [f"## {dialect}", ""]
        if not group.get("available", True):
            out += [f"Not run: {group.get('reason')}", ""]
            continue
        notes = {name: info for name, info in group.get("contenders", {}).items()}
        if group.get("attempts", 1) > 1:
            out += [
                f"This group ran {group['attempts']} times: the earlier run was disturbed (server "
                "unreachable or several contenders failing); these are the figures of the last run.",
                "",
            ]
        out += [
            "Contenders: "
            + "; ".join(
                f"**{name}** {info['detail']}" if info["status"] == "ok" else f"**{name}** {info['status']}"
                for name, info in notes.items()
            ),
            "",
            "Sequential latency, median (p99) in µs:",
            "",
            *sequential_table(results, dialect, True),
            "",
            "sqlsession median / other median (lower = sqlsession faster):",
            "",
            *ratio_table(results, dialect, True),
            "",
            "Session mix throughput in ops/s (ratios: higher = sqlsession faster):",
            "",
            *concurrent_table(results, dialect, True),
            "",
            "CPU time of the benchmark process per second of the mix (all its threads; 100% = one core "
            "busy: the client is the bottleneck; lower = waiting on the server):",
            "",
            *cpu_table(results, dialect, True),
            "",
        ]
    if results.get("scale"):
        out += ["## Scale", "", "sqlsession alone, median (p99) in µs, 512-byte values:", ""]
        out += [*scale_tables(results, True), ""]
    notes = _availability(results)
    if notes:
        out += ["## Not run / problems", "", *notes, ""]
    checks = targets(results)
    failed = sum(1 for c in checks if not c["ok"])
    out += [
        "## Targets",
        "",
        f"{len(checks) - failed} PASS, {failed} FAIL. Limits: every operation's median at most "
        f"{RAW_LIMIT_DEFAULT}x the raw driver's on PostgreSQL and MariaDB and {RAW_LIMIT['sqlite']}x on "
        "SQLite; sqlsession faster than sqlspec's and advanced-alchemy's stores; on PostgreSQL the mix with "
        f"{max(_tasks(results))} tasks at least {CONCURRENT_FACTOR:g}x the throughput of one task; "
        f"latency on the large table at most {FLAT_LIMIT}x that on the small one (my threshold for "
        "'flat'). Lines marked (extra) are comparisons, not limits.",
        "",
        *_target_lines(checks, True),
        "",
    ]
    return "\n".join(out)
