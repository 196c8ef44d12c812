"""What the users of sqlsession read: the page ``docs/benchmarks.md`` (the run prints it too) and the
chart ``docs/benchmarks.png``, from the results of a run (``bench.run``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .contenders import ALL_CONTENDERS, OPS, REDIS_URL_DEFAULT, SERVERS, dialect_url

OP_LABELS = {op: op for op in OPS} | {"get_renew": "get(renew_for)"}
# the page's names of the contenders (the JSON keeps the short ones)
LABELS = {"raw": "raw driver", "sqlsession": "SQLStore.with_url", "sqlsession-engine": "SQLStore(engine)"}
MAIN, WAYS = "sqlsession", ("sqlsession", "sqlsession-engine")  # the ways of making an SQLStore
DATABASES = {"sqlite": "SQLite", "asyncpg": "PostgreSQL", "psycopg": "PostgreSQL", "asyncmy": "MySQL/MariaDB"}
Group = dict[str, Any]

# the page; in the templates, a line that starts with two spaces continues the line before
PAGE = """# Benchmarks

How fast sqlsession's `SQLStore` is, next to the database driver under it and to the other stores a Litestar
  application can use: one run of `python -m bench` on {meta[started]}, at sqlsession commit {revision}, on a
  machine with {m[nproc]} CPU cores (see [How it was measured](#how-it-was-measured)). Absolute figures depend
  on the machine; the ratios between stores carry over better.{notice}
{quick}
## What this measures and why

How much time `SQLStore` adds to the driver under it; whether it matters that it makes its own engine or
  shares the application's; how it compares with the other stores. The stores, as the tables name them:

- **raw driver**: the driver alone (aiosqlite, asyncpg, psycopg or asyncmy) running by hand the statements
  `SQLStore` runs, on the same table: no store on that driver can be faster; the gap is what the store costs.
- **SQLStore.with_url**: `SQLStore.with_url(url)`, on an engine it makes for itself (autocommit).
- **SQLStore(engine)**: `SQLStore(create_async_engine(url))`, on the application's engine, with
  SQLAlchemy's defaults.
- **sqlspec** and **advanced-alchemy**: their Litestar stores, on the same driver.
- **FileStore** and **RedisStore**: Litestar's own stores, outside the database: reference points.

Measured: the **time per call** of each operation (`set`, `get`, `get` with `renew_for`, `exists`,
  `delete`), one at a time, with {sizes} values; the **throughput** of a session-like mix (70% `get` with
  `renew_for`, 25% `set`, 5% `delete`) from {tasks} concurrent tasks{what_scale}.

## Results
"""
QUICK = """
**A quick run (`--quick`): tiny counts, to check that the benchmark works; the figures mean nothing.**
"""
WHAT_SCALE = """; **large tables**: `SQLStore.with_url` alone on
  tables of {rows} rows, and `delete_expired()` on the largest while other tasks keep reading"""
THROUGHPUT = """### Throughput

Operations per second of the session mix (higher is better); in brackets, each `SQLStore`'s as a percentage
  of the raw driver's on the same database.
"""
LATENCY = """### Time per call

Median time of one call in microseconds (lower is better), {size} values; in brackets, each `SQLStore`'s as a
  multiple of the raw driver's. The other sizes and the 99th percentiles: [All figures](#all-figures).
"""
SCALE = """### Large tables

`SQLStore.with_url` alone, 512 B values: median (99th percentile) microseconds per call on tables of each
  size, and the largest table's median ÷ the smallest's (1.00 = no slower):
"""
CLEANUP = """`delete_expired()` on the largest table, every row but the working keys expired, while
  {s[delete_get_tasks]} tasks `get` live keys ({s[delete_get_rate]:,.0f} calls per second in all): the rows
  deleted, the time, and those `get` calls (median / 99th percentile) in the 2 s before it and while it ran:
"""
PROBLEMS = """### Stores that did not run

A `failed` or `n/a` in a table:
"""
CHART = """## Chart

![Session mix throughput per database and store]({chart})

The [throughput table](#throughput) as bars (higher is better).
"""
HOW = """## How it was measured

- Run on {meta[started]} ({duration}), sqlsession at git commit {revision}: `{meta[command]}`.

### Machine

- CPU: {m[cpu]}, `nproc` = {m[nproc]} ({m[cores_per_socket]} cores per socket, {m[threads_per_core]} thread
  per core{guest}); memory: {m[memory_gib]} GiB
- {m[os]}, Linux {m[kernel]}
- Python {m[python]}, SQLite library {m[sqlite]}, default asyncio event loop{local}

### Versions and server settings
"""
LOCAL = """
- The servers (databases, Redis) ran on the same machine as the benchmark: client and server share its
  cores."""
METHOD = """### Method

- Every store has a table (SQLite: a file; Redis: a namespace; FileStore: a folder) of its own, and every SQL
  store but `SQLStore(engine)` (SQLAlchemy's default pool, not in autocommit) at most {s[pool_size]}
  connections. The raw driver runs the statements of `SQLStore` in autocommit (SQLite: WAL and
  `synchronous=NORMAL`, as `SQLStore.with_url` sets them), on one connection when one task runs. sqlspec's
  store made its table by its `create_table()`; advanced-alchemy's runs on a model on `StoreModelMixin`.
- Keys like Litestar's session IDs (64 hex characters), random values, `expires_in` and `renew_for` of
  {s[expires_in]} s.
- Time per call: one task; in each round, per operation and value size, each store in turn (the order
  rotates every round) makes {s[batch]} calls, each timed alone; {s[rounds]} rounds after a warm-up round:
  {calls:,} calls per figure. `delete` removes rows written, untimed, just before.
- Throughput: the mix on {s[keys]:,} keys, {tasks} tasks, {s[seconds]} s per store per round,
  {s[conc_rounds]} round(s), the stores alternating. With few cores shared by client and server, concurrency
  gains at most the cores over the CPU time of one operation (client and server; the CPU tables in
  [All figures](#all-figures) show the client's share).{method_scale}

### Noise

- Load average (1, 5, 15 minutes) before the run: {before}; after: {after}.
- Processes other than the benchmark and the database servers used {foreign:.0%} of a core on
  average{noisy}{busy}{note}

## How to reproduce

```bash
pip install -e '.[bench]'
python -m bench
```

From a checkout of the repository (the benchmark is in `bench/`, not in the package). It rewrites
  `docs/benchmarks.md` and `docs/benchmarks.png` (this run took {duration}); `python -m bench --help` lists
  the options. A database whose server does not answer is skipped.{needs}

## All figures

Per database: both value sizes, the 99th percentiles, each store ÷ `SQLStore.with_url`, the client's CPU.
"""
METHOD_SCALE = """
- Large tables: filled server-side with {s[fill_value_bytes]}-byte values, then `VACUUM ANALYZE` /
  `ANALYZE`; {s[scale_keys]} working keys; for `delete_expired()`, the stores' clock moves two days on."""
NOISY = """: other work ran on the machine (and the servers may have served other clients), so the figures are
  noisier than on a quiet one."""
TITLES = """Time of one call, median (99th percentile) in microseconds:
|`SQLStore.with_url`'s median time ÷ each other store's (below 1.00: `SQLStore.with_url` is faster):
|Session mix, operations per second:
|`SQLStore.with_url`'s throughput ÷ each other store's (above 1.00: `SQLStore.with_url` is faster):
|CPU time of the benchmark process per second of the mix (100% = one core: the client is the bottleneck):"""


def _text(template: str, **values: Any) -> list[str]:
    return template.format(**values).replace("\n  ", " ").split("\n")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def size_label(size: int | str) -> str:
    size = int(size)
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"


def _lat(cell: dict[str, float] | None) -> str:
    return "-" if cell is None else f"{_fmt(cell['median_us'])} ({_fmt(cell['p99_us'])})"


def _ratio(mine: float | None, theirs: float | None) -> str:
    return "-" if mine is None or not theirs else f"{mine / theirs:.2f}"


def _and(items: Iterable[Any]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    *rest, last = [str(item) for item in items] or [""]
    return f"{', '.join(rest)} and {last}" if rest else last


def _one_line(text: str, limit: int = 300) -> str:
    """An error message on one line (its escaped newlines too), cut at ``limit`` characters."""
    text = " ".join(str(text).replace("\\n", " ").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _label(name: str) -> str:
    return LABELS.get(name, name)


def database(results: dict[str, Any], dialect: str) -> str:
    """``PostgreSQL (asyncpg)``, ``MariaDB (asyncmy)``...: the server and the driver of a dialect."""
    server, asked = DATABASES.get(dialect, dialect), results["meta"]["servers"].get("MariaDB/MySQL", "")
    if dialect == "asyncmy" and asked and not asked.startswith("?"):
        server = "MariaDB" if "mariadb" in asked.lower() else "MySQL"
    return f"{server} ({'aiosqlite' if dialect == 'sqlite' else dialect})"


def _median(group: Group, name: str, op: str, size: int | str) -> float | None:
    cell = group.get("sequential", {}).get(name, {}).get(op, {}).get(str(size))
    return None if cell is None else float(cell["median_us"])


def _per_s(group: Group, name: str, size: int | str, tasks: int | str, key: str = "concurrent") -> Any:
    """The mix's operations per second (``key="client_cpu"``: the client's CPU per second), or None."""
    return group.get(key, {}).get(name, {}).get(str(size), {}).get(str(tasks))


def _groups_with(results: dict[str, Any], shape: str) -> list[str]:
    return [d for d, g in results["groups"].items() if g.get("available", True) and g.get(shape)]


def _summary(
    results: dict[str, Any], shape: str, keys: list[Any], figure: Callable[..., Any], share: str
) -> Any:
    """Every store in every database, a row per key; both SQLStores with their figure ÷ the raw driver's."""
    dialects = _groups_with(results, shape)
    groups = [results["groups"][d] for d in dialects]
    names = [
        n for n in ALL_CONTENDERS if any(n in g.get("sequential", {}) or n in g["contenders"] for g in groups)
    ]
    rows = []
    for dialect, group in zip(dialects, groups, strict=True):
        for labels, key in keys[1:]:
            raw, row = figure(group, "raw", *key), [database(results, dialect), *labels]
            for name in names:
                value, status = figure(group, name, *key), group["contenders"].get(name, {}).get("status")
                if value is None:  # it failed, could not run here, or was not selected
                    row.append({"error": "failed", "unavailable": "n/a"}.get(status or "", "-"))
                else:
                    row.append(
                        _fmt(value) + (f" ({share.format(value / raw)})" if name in WAYS and raw else "")
                    )
            rows.append(row)
    return _table(["database", *keys[0], *map(_label, names)], rows)


def _scale_tables(results: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The scale part: sequential figures per table size; delete_expired() on the largest."""
    scale = results["scale"]
    counts = next((list(part["rows"]) for part in scale.values() if part.get("rows")), [])
    head = ["database", "operation", *(f"{int(n):,} rows" for n in counts)]
    head += ["large ÷ small"] if len(counts) >= 2 else []
    rows, cleanup = [], []
    for dialect, part in scale.items():
        where = database(results, dialect)
        if "error" in part:
            rows.append([where, f"error: {part['error']}", *(["-"] * (len(head) - 2))])
        for op in OPS if "error" not in part else ():
            cells = [part["rows"][n].get("ops", {}).get(op) for n in counts]
            row = [where, OP_LABELS[op], *map(_lat, cells)]
            if len(counts) >= 2:  # "-" if either is missing
                row.append(_ratio(cells[-1] and cells[-1]["median_us"], cells[0] and cells[0]["median_us"]))
            rows.append(row)
        if info := part.get("delete_expired"):
            loaded, gets = part["rows"][str(info["rows"])], (info["baseline"], info["during"])
            counted = [f"{int(x):,}" for x in (loaded["expiring"], loaded["live"], info["deleted"])]
            times = [f"{_fmt(x['median_us'])} / {_fmt(x['p99_us'])}" for x in gets]
            cleanup.append([where, *counted, f"{info['seconds']:.2f}", *times, f"{int(gets[1]['n']):,}"])
    heads = "database|expired rows|live rows|deleted|time (s)|get, before: median / p99 (µs)"
    heads += "|get, during: median / p99 (µs)|gets timed during"
    return _table(head, rows), _table(heads.split("|"), cleanup) if cleanup else []


def _problems(results: dict[str, Any]) -> list[str]:
    """Databases and stores without figures, or whose reads missed, in the page's words."""
    lines = []
    for dialect, group in results["groups"].items():
        where = database(results, dialect)
        if not group.get("available", True):
            lines.append(f"- {where}: not run: {_one_line(group.get('reason', '?'))}.")
        for name, info in group.get("contenders", {}).items():
            if info["status"] == "unavailable":
                lines.append(f"- {where}, {_label(name)}: not run here: {_one_line(info['detail'])}.")
            elif info["status"] != "ok":
                lines.append(f"- {where}, {_label(name)}: failed: `{_one_line(info['detail'])}`")
        for name, count in group.get("misses", {}).items():
            if count:
                lines.append(f"- {where}, {_label(name)}: {count} reads did not return the value written.")
    for dialect, part in results.get("scale", {}).items():
        if "error" in part:
            lines.append(
                f"- {database(results, dialect)}, large tables: failed: `{_one_line(part['error'])}`"
            )
    return lines


def _servers_local(results: dict[str, Any]) -> bool:
    """Whether the run used a server (database or Redis), all of them on this machine's loopback address."""
    groups = results["groups"]
    hosts = [dialect_url(d).host for d, g in groups.items() if d != "sqlite" and g.get("sequential")]
    if any(g.get("contenders", {}).get("RedisStore", {}).get("status") == "ok" for g in groups.values()):
        hosts.append(make_url(results["settings"]["redis_url"]).host)
    return bool(hosts) and all(host in (None, "127.0.0.1", "localhost", "::1") for host in hosts)


def _figures(results: dict[str, Any], dialect: str, group: Group, titles: list[list[str]]) -> list[str]:
    """Every figure of one database, with each store's ÷ `SQLStore.with_url`'s."""
    seq, cpu, sizes, tasks = group.get("sequential", {}), group.get("client_cpu", {}), *_counts(results)
    names = [n for n in ALL_CONTENDERS if n in seq or n in group.get("concurrent", {})]
    others, vs = [n for n in names if n != MAIN], [f"÷ {_label(n)}" for n in names if n != MAIN]
    ok = [f"**{_label(n)}**: {i['detail']}" for n, i in group["contenders"].items() if i["status"] == "ok"]
    out = [f"### {database(results, dialect)}", "", f"Stores: {'; '.join(ok)}.", ""]
    if seq:
        keys = [(op, z, [OP_LABELS[op], size_label(z)]) for op in OPS for z in sizes]
        lat = [
            [*first, *(_lat(seq.get(n, {}).get(op, {}).get(str(z))) for n in names)] for op, z, first in keys
        ]
        out += titles[0] + _table(["operation", "value", *map(_label, names)], lat)
        mine = [(first, _median(group, MAIN, op, z), op, z) for op, z, first in keys]
        ratio = [[*first, *(_ratio(m, _median(group, n, op, z)) for n in others)] for first, m, op, z in mine]
        out += titles[1] + _table(["operation", "value", *vs], ratio)
    if group.get("concurrent"):
        keys = [(z, t, [size_label(z), str(t)]) for z in sizes for t in tasks]
        mix = [[*first, *(_fmt(_per_s(group, n, z, t)) for n in names)] for z, t, first in keys]
        out += titles[2] + _table(["value", "tasks", *map(_label, names)], mix)
        mine = [(first, _per_s(group, MAIN, z, t), z, t) for z, t, first in keys]
        ratio = [[*first, *(_ratio(m, _per_s(group, n, z, t)) for n in others)] for first, m, z, t in mine]
        out += titles[3] + _table(["value", "tasks", *vs], ratio)
        used = [n for n in names if n in cpu]
        share = [
            [*first, *(_share(_per_s(group, n, z, t, "client_cpu")) for n in used)] for z, t, first in keys
        ]
        out += titles[4] + _table(["value", "tasks", *map(_label, used)], share)
    return out


def _counts(results: dict[str, Any]) -> tuple[list[int], list[int]]:
    """The value sizes and the numbers of tasks of the run."""
    return [int(size) for size in results["settings"]["sizes"]], [
        int(t) for t in results["settings"]["tasks"]
    ]


def markdown(results: dict[str, Any], chart_name: str | None) -> str:
    """``docs/benchmarks.md``: a page for the users of sqlsession, every figure from ``results``."""
    meta, s, (sizes, tasks), scale = (
        results["meta"],
        results["settings"],
        _counts(results),
        results.get("scale"),
    )
    foreign, (before, after) = meta["foreign_cores"], (meta["load_before"], meta["load_after"])
    commit, _, dirty = str(meta["revision"]).partition(" + ")
    v: dict[str, Any] = {"meta": meta, "m": meta["machine"], "s": s, "tasks": _and(tasks)}
    v |= {"revision": f"`{commit}`" + (f" + {dirty}" if dirty else ""), "sizes": _and(map(size_label, sizes))}
    v |= {
        "duration": f"{meta['duration_s']:.0f} s"
        if meta["duration_s"] < 90
        else f"{meta['duration_s'] / 60:.0f} minutes"
    }
    v["what_scale"] = WHAT_SCALE.format(rows=_and(f"{int(n):,}" for n in s["rows"])) if scale else ""
    v["quick"] = QUICK if "--quick" in meta["command"].split() else ""
    v["notice"] = (
        " The machine was not quiet during this run: see [Noise](#noise)."
        if foreign > meta["foreign_limit"]
        else ""
    )
    out = _text(PAGE, **v)
    if _groups_with(results, "concurrent"):
        keys = [["value", "tasks"], *(([size_label(z), str(t)], (z, t)) for z in sizes for t in tasks)]
        out += _text(THROUGHPUT) + _summary(results, "concurrent", keys, _per_s, "{:.0%}")
    if _groups_with(results, "sequential"):
        keys = [["operation"], *(([OP_LABELS[op]], (op, sizes[0])) for op in OPS)]
        out += _text(LATENCY, size=size_label(sizes[0])) + _summary(
            results, "sequential", keys, _median, "{:.2f}x"
        )
    if scale:
        ops, cleanup = _scale_tables(results)
        out += _text(SCALE) + ops + (_text(CLEANUP, s=s) + cleanup if cleanup else [])
    if problems := _problems(results):
        out += [*_text(PROBLEMS), *problems, ""]
    out += _text(CHART, chart=chart_name) if chart_name else []
    v["guest"] = f", {v['m']['hypervisor']} guest" if v["m"]["hypervisor"] else ""
    v["local"] = LOCAL if meta["servers"] and _servers_local(results) else ""
    out += _text(HOW, **v) + _table(["package", "version"], meta["packages"].items())
    out += _table(["server", "version and settings"], meta["servers"].items()) if meta["servers"] else []
    v |= {"before": ", ".join(map(str, before["loadavg"])), "after": ", ".join(map(str, after["loadavg"]))}
    v |= {"calls": s["batch"] * s["rounds"], "foreign": foreign, "noisy": NOISY if v["notice"] else "."}
    v["busy"] = f" Busy processes at the start: {', '.join(before['busy'])}." if before["busy"] else ""
    v["note"] = f"\n- Note from the person who ran it: {meta['note']}" if meta["note"] else ""
    v["method_scale"] = METHOD_SCALE.format(s=s) if scale else ""
    needs = [f"- PostgreSQL at `{SERVERS['asyncpg'][1]}` (or the URL in `BENCH_POSTGRES_URL`)"]
    needs = needs if {"asyncpg", "psycopg"} & set(results["groups"]) else []
    if "asyncmy" in results["groups"]:
        needs.append(f"- MariaDB or MySQL at `{SERVERS['asyncmy'][1]}` (or the URL in `BENCH_MYSQL_URL`)")
    if "RedisStore" in s["contenders"]:
        needs.append(f"- Redis at `{REDIS_URL_DEFAULT}` (or the URL in `BENCH_REDIS_URL`)")
    v["needs"] = " It needs these servers (SQLite needs none):\n\n" + "\n".join(needs) if needs else ""
    out += _text(METHOD, **v)
    titles = [[title, ""] for title in TITLES.split("\n|")]
    for dialect, group in results["groups"].items():
        if group.get("available", True) and (group.get("sequential") or group.get("concurrent")):
            out += _figures(results, dialect, group, titles)
    return "\n".join(out).rstrip("\n") + "\n"


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Bar chart of the mix throughput per database and store; ``None`` or why it was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError as error:
        return f"matplotlib is not installed ({error})"
    if not (dialects := _groups_with(results, "concurrent")):
        return "no throughput figures"
    groups, (sizes, tasks) = [results["groups"][d] for d in dialects], _counts(results)
    names = [n for n in ALL_CONTENDERS if any(n in g["concurrent"] for g in groups)]
    ticks = [database(results, d).replace(" (", "\n(") for d in dialects]
    fig, axes = plt.subplots(
        len(tasks), len(sizes), figsize=(6.5 * len(sizes), 3.8 * len(tasks)), squeeze=False
    )
    width = 0.8 / len(names)
    for (row, n_tasks), (col, size) in [(r, c) for r in enumerate(tasks) for c in enumerate(sizes)]:
        ax = axes[row][col]
        for i, name in enumerate(names):
            values = [_per_s(g, name, size, n_tasks) or 0.0 for g in groups]
            xs = [x + (i - (len(names) - 1) / 2) * width for x in range(len(dialects))]
            edge = "black" if name == MAIN else None
            ax.bar(xs, values, width, label=_label(name), color=plt.get_cmap("tab10")(i), edgecolor=edge)
            for x, value, group in zip(xs, values, groups, strict=True):
                status = group["contenders"].get(name, {}).get("status")
                if not value and status in ("error", "unavailable"):
                    text = "failed" if status == "error" else "n/a"
                    ax.text(x, 0, text, rotation=90, fontsize=7, ha="center", va="bottom")
        ax.set_xticks(range(len(dialects)), ticks, fontsize=8)
        ax.set_title(f"session mix, {size_label(size)} values, {n_tasks} task{'s' if n_tasks > 1 else ''}")
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
