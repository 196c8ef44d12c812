"""The console report, the chart and ``docs/benchmarks.md``.

The console report is for the developers: every table, then the targets' PASS/FAIL. The document is
for the users of sqlsession: what is measured and why, the results, the chart, how it was measured and
how to reproduce it; it has the same figures, labelled for them, and no targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .settings import _SERVERS, ALL_CONTENDERS, OPS, REDIS_URL_DEFAULT, dialect_url

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
# the two ways of making an SQLStore: the document gives their ratio to the raw driver side by side
WAYS = ("sqlsession", "sqlsession-engine")

# the document's names of the contenders (the console and the JSON keep the short ones)
LABELS = {
    "raw": "raw driver",
    "sqlsession": "SQLStore.with_url",
    "sqlsession-engine": "SQLStore(engine)",
}
# dialect -> (database, driver); the MySQL family is named after the server the run asked
DATABASES = {
    "sqlite": ("SQLite", "aiosqlite"),
    "asyncpg": ("PostgreSQL", "asyncpg"),
    "psycopg": ("PostgreSQL", "psycopg"),
    "asyncmy": ("MySQL/MariaDB", "asyncmy"),
}


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


def _label(name: str, markdown: bool) -> str:
    """A contender's name: the short one on the console, the document's in Markdown."""
    return LABELS.get(name, name) if markdown else name


def database(results: dict[str, Any], dialect: str) -> str:
    """``PostgreSQL (asyncpg)``, ``MariaDB (asyncmy)``...: the server and the driver of a dialect."""
    server, driver = DATABASES.get(dialect, (dialect, dialect))
    if dialect == "asyncmy":
        version = results["meta"].get("servers", {}).get("MariaDB/MySQL", "")
        if "mariadb" in version.lower():
            server = "MariaDB"
        elif version and not version.startswith("?"):
            server = "MySQL"
    return f"{server} ({driver})"


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
    headers = ["operation", "value", *(_label(name, markdown) for name in names)]
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
    headers = ["operation", "value", *(f"÷ {_label(n, True)}" if markdown else f"/{n}" for n in others)]
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


def concurrent_table(
    results: dict[str, Any], dialect: str, markdown: bool, *, values: bool = True, ratios: bool = True
) -> list[str]:
    """The mix's throughput (``values``) and sqlsession's over every other's (``ratios``)."""
    group = results["groups"][dialect]
    names = _present(group)
    others = [name for name in names if name != MAIN]
    headers = ["value", "tasks"]
    if values:
        headers += [_label(name, markdown) for name in names]
    if ratios:
        headers += [f"÷ {_label(n, True)}" if markdown else f"{MAIN}/{n}" for n in others]
    rows = []
    for size in _sizes(results):
        for tasks in _tasks(results):
            row = [size_label(size), str(tasks)]
            if values:
                row += [_fmt(_throughput(group, name, size, tasks)) for name in names]
            mine = _throughput(group, MAIN, size, tasks)
            for name in others if ratios else ():
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
    return _grid(["value", "tasks", *(_label(name, markdown) for name in names)], rows, markdown)


def scale_tables(results: dict[str, Any], markdown: bool) -> list[str]:
    scale = results.get("scale", {})
    if not scale:
        return []
    lines: list[str] = []
    first = "database" if markdown else "dialect"

    def where(dialect: str) -> str:
        return database(results, dialect) if markdown else dialect

    headers = [first, "operation"]
    counts: list[str] = []
    for part in scale.values():
        counts = list(part.get("rows", {}))
        if counts:
            break
    headers += [f"{int(n):,} rows" for n in counts]
    if len(counts) >= 2:
        headers.append("large ÷ small" if markdown else "large/small")
    rows = []
    for dialect, part in scale.items():
        if "error" in part:
            rows.append([where(dialect), f"error: {part['error']}", *(["-"] * (len(headers) - 2))])
            continue
        for op in OPS:
            row = [where(dialect), OP_LABELS[op]]
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
        first,
        "expired rows",
        "live rows",
        "deleted",
        "delete_expired() s",
        "get p50 / p99 before (µs)",
        "get p50 / p99 during (µs)",
        "gets during",
    ]
    if markdown:
        headers[4:] = [
            "time (s)",
            "get, before: median / p99 (µs)",
            "get, during: median / p99 (µs)",
            "gets timed during",
        ]
    rows = []
    for dialect, part in scale.items():
        info = part.get("delete_expired")
        if not info:
            continue
        before, during = info["baseline"], info["during"]
        loaded = part["rows"][str(info["rows"])]
        rows.append(
            [
                where(dialect),
                f"{int(loaded.get('expiring', loaded['filled'])):,}",
                f"{int(loaded.get('live', 0)):,}",
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
    """Bar chart of the mix throughput per database and store; ``None`` or why it was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError as error:
        return f"matplotlib is not installed ({error})"
    dialects = [d for d, g in results["groups"].items() if g.get("concurrent")]
    if not dialects:
        return "no throughput figures"
    sizes, tasks = _sizes(results), _tasks(results)
    names = [
        n for n in ALL_CONTENDERS if any(n in results["groups"][d].get("concurrent", {}) for d in dialects)
    ]
    ticks = [database(results, d).replace(" (", "\n(") for d in dialects]
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
                    label=_label(name, True),
                    color=colors(i),
                    edgecolor="black" if name == MAIN else None,
                )
                for x, value, dialect in zip(xs, values, dialects, strict=True):
                    status = results["groups"][dialect].get("contenders", {}).get(name, {}).get("status")
                    if not value and status in ("error", "unavailable"):
                        label = "failed" if status == "error" else "n/a"
                        ax.text(x, 0, label, rotation=90, fontsize=7, ha="center", va="bottom")
            ax.set_xticks(range(len(dialects)), ticks, fontsize=8)
            ax.set_title(
                f"session mix, {size_label(size)} values, {n_tasks} task{'s' if n_tasks > 1 else ''}"
            )
            ax.set_ylabel("operations per second")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
            ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(names), fontsize=9, frameon=False)
    fig.suptitle("sqlsession benchmark: session mix throughput per database and store (higher is better)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------------------------------
# docs/benchmarks.md: a page for the users of sqlsession


def _missing(group: dict[str, Any], name: str) -> str:
    """The cell of a contender without a figure: it failed, could not run here, or was not selected."""
    status = group.get("contenders", {}).get(name, {}).get("status")
    return {"error": "failed", "unavailable": "n/a"}.get(status or "", "-")


def _groups_with(results: dict[str, Any], shape: str) -> list[str]:
    return [d for d, g in results["groups"].items() if g.get("available", True) and g.get(shape)]


def _names_in(results: dict[str, Any], dialects: Sequence[str]) -> list[str]:
    """Every contender that ran in one of ``dialects`` or was tried there, in the column order."""
    groups = [results["groups"][d] for d in dialects]
    return [
        name
        for name in ALL_CONTENDERS
        if any(name in g.get("sequential", {}) or name in g.get("contenders", {}) for g in groups)
    ]


def summary_throughput(results: dict[str, Any]) -> list[str]:
    """The mix's ops/s of every store in every database; both SQLStores with their % of the raw driver."""
    dialects = _groups_with(results, "concurrent")
    names = _names_in(results, dialects)
    rows = []
    for dialect in dialects:
        group = results["groups"][dialect]
        for size in _sizes(results):
            for tasks in _tasks(results):
                raw = _throughput(group, "raw", size, tasks)
                row = [database(results, dialect), size_label(size), str(tasks)]
                for name in names:
                    value = _throughput(group, name, size, tasks)
                    if value is None:
                        row.append(_missing(group, name))
                    elif name in WAYS and raw:
                        row.append(f"{_fmt(value)} ({value / raw:.0%})")
                    else:
                        row.append(_fmt(value))
                rows.append(row)
    return _grid(["database", "value", "tasks", *(_label(n, True) for n in names)], rows, True)


def summary_latency(results: dict[str, Any], size: int) -> list[str]:
    """The median µs per call of every store in every database for values of ``size`` bytes; both
    SQLStores with their time as a multiple of the raw driver's."""
    dialects = _groups_with(results, "sequential")
    names = _names_in(results, dialects)
    rows = []
    for dialect in dialects:
        group = results["groups"][dialect]
        for op in OPS:
            raw = _median(group, "raw", op, size)
            row = [database(results, dialect), OP_LABELS[op]]
            for name in names:
                value = _median(group, name, op, size)
                if value is None:
                    row.append(_missing(group, name))
                elif name in WAYS and raw:
                    row.append(f"{_fmt(value)} ({value / raw:.2f}x)")
                else:
                    row.append(_fmt(value))
            rows.append(row)
    return _grid(["database", "operation", *(_label(n, True) for n in names)], rows, True)


def _one_line(text: str, limit: int = 300) -> str:
    """An error message on one line (its escaped newlines too), cut at ``limit`` characters."""
    text = " ".join(str(text).replace("\\n", " ").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def _problems(results: dict[str, Any]) -> list[str]:
    """Databases and stores without figures, or whose reads missed, in the document's words."""
    lines = []
    for dialect, group in results["groups"].items():
        where = database(results, dialect)
        if not group.get("available", True):
            lines.append(f"- {where}: not run: {_one_line(group.get('reason', '?'))}.")
            continue
        for name, info in group.get("contenders", {}).items():
            if info["status"] == "unavailable":
                lines.append(f"- {where}, {_label(name, True)}: not run here: {_one_line(info['detail'])}.")
            elif info["status"] != "ok":
                lines.append(f"- {where}, {_label(name, True)}: failed: `{_one_line(info['detail'])}`")
        for name, count in group.get("misses", {}).items():
            if count:
                lines.append(
                    f"- {where}, {_label(name, True)}: {count} reads did not return the value written."
                )
    for dialect, part in results.get("scale", {}).items():
        if "error" in part:
            where = database(results, dialect)
            lines.append(f"- {where}, large tables: failed: `{_one_line(part['error'])}`")
    return lines


def _servers_local(results: dict[str, Any]) -> bool:
    """Whether the run used a server (database or Redis), all of them on this machine's loopback address."""
    groups = results["groups"]
    hosts = [
        dialect_url(d).host or "127.0.0.1" for d, g in groups.items() if d != "sqlite" and g.get("sequential")
    ]
    if any(g.get("contenders", {}).get("RedisStore", {}).get("status") == "ok" for g in groups.values()):
        hosts.append(make_url(results["settings"]["redis_url"]).host or "127.0.0.1")
    return bool(hosts) and all(host in ("127.0.0.1", "localhost", "::1") for host in hosts)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def _revision(meta: dict[str, Any]) -> str:
    """The git commit of the run, in code type; uncommitted changes said after it."""
    commit, _, rest = str(meta["revision"]).partition(" + ")
    return f"`{commit}`" + (f" + {rest}" if rest else "")


def _noisy(meta: dict[str, Any]) -> bool:
    return float(meta.get("foreign_cores", 0.0)) > float(meta.get("foreign_limit", 0.1))


def _what(results: dict[str, Any]) -> list[str]:
    settings = results["settings"]
    sizes = _and([size_label(size) for size in _sizes(results)])
    tasks = _and([str(n) for n in _tasks(results)])
    rows = _and([f"{int(n):,}" for n in settings["rows"]])
    out = [
        "## What this measures and why",
        "",
        "`SQLStore` keeps Litestar's server-side data (sessions, the response cache, rate limits) in one SQL "
        "table. This page answers three questions: how much time does the store add to the database driver "
        "under it; does it matter whether the store makes its own engine or shares the application's; and "
        "how does it compare with the other stores a Litestar application can use. The stores, with the "
        "names used in the tables and the chart:",
        "",
        "- **raw driver**: the driver alone (aiosqlite, asyncpg, psycopg or asyncmy) running by hand the "
        "statements `SQLStore` runs, on the same kind of table. No store on that driver can be faster: the "
        "gap between it and `SQLStore` is what the store costs.",
        "- **SQLStore.with_url**: `SQLStore.with_url(url)`, the store on an engine of its own, which it sets "
        "up for itself (autocommit).",
        "- **SQLStore(engine)**: `SQLStore(create_async_engine(url))`, the store on an engine the "
        "application already has, left with SQLAlchemy's defaults.",
        "- **sqlspec**: sqlspec's Litestar store for the same driver.",
        "- **advanced-alchemy**: advanced-alchemy's `SQLAlchemyStore`, on an engine of the same driver.",
        "- **FileStore** and **RedisStore**: Litestar's own stores. They do not use the database; they "
        "appear in every database's tables as reference points.",
        "",
        "What is measured:",
        "",
        "- **Time per call**: each operation (`set`, `get`, `get` with `renew_for`, `exists`, `delete`) "
        f"alone, one call at a time, with {sizes} values.",
        "- **Throughput**: a session-like mix of calls (70% `get` with `renew_for`, 25% `set`, 5% `delete`) "
        f"from {tasks} concurrent tasks.",
    ]
    if results.get("scale"):
        out.append(
            f"- **Large tables**: `SQLStore.with_url` alone on tables of {rows} rows (does a call get slower "
            "as the table grows?), and `delete_expired()` removing the expired rows of the largest one while "
            "other tasks keep reading (does the clean-up hold the application up?)."
        )
    return [*out, ""]


def _scale_part(results: dict[str, Any]) -> list[str]:
    scale, settings = results.get("scale", {}), results["settings"]
    if not scale:
        return []
    value = next((p.get("value_bytes") for p in scale.values() if "value_bytes" in p), None)
    lines = scale_tables(results, True)
    split = lines.index("") if "" in lines else len(lines)
    out = [
        "### Large tables",
        "",
        "`SQLStore.with_url` alone: median (99th percentile) time of one call in microseconds"
        + (f", {size_label(value)} values," if value else "")
        + " on tables of different sizes, and the largest table's median ÷ the smallest's (1.00 = no slower "
        "on the large table):",
        "",
        *lines[:split],
        "",
    ]
    if len(lines) > split + 1:
        out += [
            f"`delete_expired()` on the largest table, with every row but the working keys expired, while "
            f"{settings['delete_get_tasks']} tasks `get` live keys ({settings['delete_get_rate']:,.0f} calls "
            "per second in all): the rows it deleted, how long it took, and the time of those `get` calls "
            "(median / 99th percentile) in the 2 s before it and while it ran:",
            "",
            *lines[split + 1 :],
            "",
        ]
    return out


def _results(results: dict[str, Any]) -> list[str]:
    out = ["## Results", ""]
    if _groups_with(results, "concurrent"):
        out += [
            "### Throughput",
            "",
            "Operations per second of the session mix (higher is better). In brackets: the throughput of "
            "each `SQLStore` as a percentage of the raw driver's on the same database.",
            "",
            *summary_throughput(results),
            "",
        ]
    if _groups_with(results, "sequential"):
        size = _sizes(results)[0]
        out += [
            "### Time per call",
            "",
            f"Median time of one call in microseconds (lower is better), {size_label(size)} values. In "
            "brackets: the time of each `SQLStore` as a multiple of the raw driver's (1.00x = no time added "
            "by the store). The other value sizes and the 99th percentiles are in "
            "[All figures](#all-figures).",
            "",
            *summary_latency(results, size),
            "",
        ]
    out += _scale_part(results)
    problems = _problems(results)
    if problems:
        out += [
            "### Stores that did not run",
            "",
            "A `failed` or `n/a` in a table means the store failed or could not run there:",
            "",
            *problems,
            "",
        ]
    return out


def _details(results: dict[str, Any]) -> list[str]:
    out = [
        "## All figures",
        "",
        "Every figure of the run, per database: both value sizes, the 99th percentiles, how each store "
        "compares with `SQLStore.with_url`, and the CPU the benchmark process used.",
        "",
    ]
    for dialect, group in results["groups"].items():
        if not group.get("available", True) or (not group.get("sequential") and not group.get("concurrent")):
            continue
        stores = "; ".join(
            f"**{_label(name, True)}**: {info['detail']}"
            for name, info in group.get("contenders", {}).items()
            if info["status"] == "ok"
        )
        out += [f"### {database(results, dialect)}", "", f"Stores: {stores}.", ""]
        if group.get("sequential"):
            out += [
                "Time of one call, median (99th percentile) in microseconds:",
                "",
                *sequential_table(results, dialect, True),
                "",
                "`SQLStore.with_url`'s median time ÷ each other store's (below 1.00: `SQLStore.with_url` is "
                "faster):",
                "",
                *ratio_table(results, dialect, True),
                "",
            ]
        if group.get("concurrent"):
            out += [
                "Session mix, operations per second:",
                "",
                *concurrent_table(results, dialect, True, ratios=False),
                "",
                "`SQLStore.with_url`'s throughput ÷ each other store's (above 1.00: `SQLStore.with_url` is "
                "faster):",
                "",
                *concurrent_table(results, dialect, True, values=False),
                "",
                "CPU time the benchmark process used per second of the mix (all its threads; 100% = one core "
                "busy, the client is the bottleneck; lower = waiting on the server):",
                "",
                *cpu_table(results, dialect, True),
                "",
            ]
    return out


def _how(results: dict[str, Any]) -> list[str]:
    meta, settings = results["meta"], results["settings"]
    m = meta["machine"]
    guest = f", {m['hypervisor']} guest" if m["hypervisor"] else ""
    servers = meta.get("servers", {})
    out = [
        "## How it was measured",
        "",
        f"- Run on {meta['started']}; it took {_duration(meta['duration_s'])}.",
        f"- sqlsession at git commit {_revision(meta)}.",
        f"- Command: `{meta['command']}`.",
        "",
        "### Machine",
        "",
        f"- CPU: {m['cpu']}, `nproc` = {m['nproc']} ({m['cores_per_socket']} cores per socket, "
        f"{m['threads_per_core']} thread per core{guest}); memory: {m['memory_gib']} GiB",
        f"- {m['os']}, Linux {m['kernel']}",
        f"- Python {m['python']}, SQLite library {m['sqlite']}, default asyncio event loop",
    ]
    if servers and _servers_local(results):
        out.append(
            "- The servers (databases, Redis) ran on the same machine as the benchmark: client and server "
            "share its cores."
        )
    out += [
        "",
        "### Versions and server settings",
        "",
        *_grid(["package", "version"], [[k, v] for k, v in meta["packages"].items()], True),
        "",
    ]
    if servers:
        out += [*_grid(["server", "version and settings"], [[k, v] for k, v in servers.items()], True), ""]
    out += [
        "### Method",
        "",
        "- Every store has a table of its own (SQLite: a file of its own; Redis: a namespace; FileStore: a "
        "folder).",
        "- **raw driver**: the same statements and parameters as `SQLStore` for that database, in autocommit "
        "(SQLite: WAL and `synchronous=NORMAL`, as `SQLStore.with_url` sets them), on one connection when "
        "one task runs.",
        "- **SQLStore(engine)**: SQLAlchemy's default pool (`pool_size=5, max_overflow=10`), not in "
        "autocommit.",
        "- **sqlspec**: the store for the driver (`AsyncpgStore`, `PsycopgAsyncStore`, `AsyncmyStore`, "
        "`AiosqliteStore`), its table made by its `create_table()`.",
        "- **advanced-alchemy**: `SQLAlchemyStore` with a model on `StoreModelMixin`, on an `AsyncEngine` of "
        "the same driver (SQLite: WAL and `synchronous=NORMAL` set on connect).",
        f"- Every SQL store but `SQLStore(engine)` has at most {settings['pool_size']} connections "
        f"(`SQLStore.with_url`: `pool_size={settings['pool_size']}, max_overflow=0`; the others' pools the "
        "same size).",
        "- Keys look like Litestar session IDs (64 hex characters); values are random bytes; `expires_in` "
        f"and `renew_for` are {settings['expires_in']} s.",
        "- Time per call: one task; in each round, for each operation and value size, each store in turn "
        f"(the order rotates every round) makes {settings['batch']} calls, each timed alone; "
        f"{settings['rounds']} rounds after a warm-up round, so {settings['batch'] * settings['rounds']:,} "
        "calls per figure. The stores alternate every few milliseconds, so that a burst of noise hits them "
        "all alike. `delete` removes rows that exist (written, untimed, just before).",
        f"- Throughput: the session mix on {settings['keys']:,} keys, with "
        f"{_and([str(t) for t in _tasks(results)])} tasks, {settings['seconds']} s per store per round, "
        f"{settings['conc_rounds']} round{'s' if settings['conc_rounds'] != 1 else ''}, the stores "
        "alternating; throughput = operations done ÷ time. With few cores shared by client and server, what "
        "concurrency can gain is bounded by the cores over the CPU time one operation costs the client plus "
        "the server (the CPU tables in [All figures](#all-figures) show the client's share).",
    ]
    if results.get("scale"):
        out.append(
            "- Large tables: `SQLStore.with_url` alone on tables of "
            f"{_and([f'{int(n):,}' for n in settings['rows']])} rows (filled server-side with "
            f"{settings['fill_value_bytes']}-byte values, then `VACUUM ANALYZE` / `ANALYZE`), measured "
            f"interleaved with {settings['scale_keys']} working keys; then `delete_expired()` on the largest "
            "table, its filler rows expired (the stores' clock is moved two days on)."
        )
    out += ["", *_noise(results), ""]
    return out


def _noise(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    before, after = meta["load_before"], meta["load_after"]
    foreign = float(meta.get("foreign_cores", 0.0))
    out = [
        "### Noise",
        "",
        f"- Load average (1, 5, 15 minutes) before the run: {', '.join(map(str, before['loadavg']))}; after: "
        f"{', '.join(map(str, after['loadavg']))}.",
        f"- Processes other than the benchmark and the database servers used {foreign * 100:.0f}% of a core "
        "on average during the run"
        + (
            ": other work was running on the machine (and the servers may have served other clients too), "
            "so the figures are noisier than on a quiet machine."
            if _noisy(meta)
            else "."
        )
        + (f" Busy processes at the start: {', '.join(before['busy'])}." if before["busy"] else ""),
    ]
    if meta.get("note"):
        out.append(f"- Note from the person who ran it: {meta['note']}")
    for dialect, group in results["groups"].items():
        if group.get("attempts", 1) > 1:
            out.append(
                f"- {database(results, dialect)}: measured {group['attempts']} times, as the earlier attempt "
                "was disturbed (server unreachable or several stores failing); the figures are the last "
                "attempt's."
            )
    return out


def _reproduce(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    dialects = list(results["groups"])
    servers = []
    if any(d in dialects for d in ("asyncpg", "psycopg")):
        env, default, _ = _SERVERS["asyncpg"]
        servers.append(f"- PostgreSQL at `{default}` (or the URL in `{env}`)")
    if "asyncmy" in dialects:
        env, default, _ = _SERVERS["asyncmy"]
        servers.append(f"- MariaDB or MySQL at `{default}` (or the URL in `{env}`)")
    if "RedisStore" in results["settings"]["contenders"]:
        servers.append(f"- Redis at `{REDIS_URL_DEFAULT}` (or the URL in `BENCH_REDIS_URL`)")
    out = [
        "## How to reproduce",
        "",
        "From a checkout of the sqlsession repository (the benchmark is in `bench/`, not in the package):",
        "",
        "```bash",
        "pip install -e '.[bench]'",
        "python -m bench",
        "```",
        "",
    ]
    if servers:
        out += [
            "It needs these servers (SQLite needs none); a database whose server does not answer is skipped, "
            "and the page says so:",
            "",
            *servers,
            "",
        ]
    out += [
        f"It rewrites `docs/benchmarks.md` and `docs/benchmarks.png`; this run took "
        f"{_duration(meta['duration_s'])}. Run it on a quiet machine. `python -m bench --help` lists "
        "the options (some databases or stores only, other counts, `--json` for the raw results); this page "
        f"came from `{meta['command']}`.",
        "",
    ]
    return out


def markdown(results: dict[str, Any], chart_name: str | None) -> str:
    """``docs/benchmarks.md``: a page for the users of sqlsession, every figure from ``results``."""
    meta = results["meta"]
    disturbed = _noisy(meta) or any(g.get("attempts", 1) > 1 for g in results["groups"].values())
    out: list[str] = [
        "# Benchmarks",
        "",
        "How fast sqlsession's `SQLStore` is, next to the database driver under it and to the other stores a "
        "Litestar application can use. Every figure on this page comes from one run of `python -m bench` on "
        f"{meta['started']}, at sqlsession commit {_revision(meta)}, on a machine with "
        f"{meta['machine']['nproc']} CPU cores (see [How it was measured](#how-it-was-measured)). Absolute "
        "figures depend on the machine; the ratios between stores carry over better."
        + (" The machine was not quiet during this run: see [Noise](#noise)." if disturbed else ""),
        "",
    ]
    if "--quick" in meta["command"].split():
        out += [
            "**This page comes from a quick run (`--quick`): tiny counts, to check that the benchmark works. "
            "Its figures are not meaningful.**",
            "",
        ]
    out += _what(results)
    out += _results(results)
    if chart_name:
        out += [
            "## Chart",
            "",
            f"![Session mix throughput per database and store]({chart_name})",
            "",
            "The [throughput table](#throughput) as bars: operations per second of the session mix, per "
            "database, value size and number of tasks (higher is better).",
            "",
        ]
    out += _how(results)
    out += _reproduce(results)
    out += _details(results)
    return "\n".join(out).rstrip("\n") + "\n"
