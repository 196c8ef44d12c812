"""What the users of sqlsession read: the page ``docs/benchmarks.md`` (the run prints it too) and the
chart ``docs/benchmarks.png``, from the results of a run (``bench.run``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from . import contenders
from .contenders import ALL_CONTENDERS, OPS, dialect_url

OP_LABELS = {op: op for op in OPS} | {"get_renew": "get(renew_for)"}
LABELS = {"raw": "raw driver", "sqlsession": "SQLStore.with_url", "sqlsession-engine": "SQLStore(engine)"}
MAIN, WAYS = "sqlsession", ("sqlsession", "sqlsession-engine")  # the two ways of making an SQLStore
MISSING = {"error": "failed", "unavailable": "n/a"}  # what a table or the chart shows for a store by status
DATABASES = {"sqlite": "SQLite", "asyncpg": "PostgreSQL", "psycopg": "PostgreSQL", "asyncmy": "MySQL/MariaDB"}
# the page; a line of a template that starts with two spaces continues the line before
PAGE = """# Benchmarks

`SQLStore` next to the database driver under it and to the other stores a Litestar application can use: one
  run of `python -m bench` on {meta[started]}, sqlsession commit {revision}, on {m[nproc]} CPU cores (see
  [How it was measured](#how-it-was-measured)). Absolute figures depend on the machine; the ratios between
  stores carry over better.{notice}
{quick}
## What this measures and why

What `SQLStore` adds to the driver under it, with an engine of its own or the application's, next to the
  other stores. The stores, as the tables name them:

- **raw driver**: the driver alone (aiosqlite, asyncpg, psycopg or asyncmy) running by hand the statements of
  `SQLStore` on the same table: no store on that driver can be faster; the gap is what the store costs.
- **SQLStore.with_url**: `SQLStore.with_url(url)`, on an engine it sets up for itself (autocommit).
- **SQLStore(engine)**: `SQLStore(create_async_engine(url))`, on the application's engine, with
  SQLAlchemy's defaults.
- **sqlspec**, **advanced-alchemy**: their Litestar stores on the same driver; **FileStore**,
  **RedisStore**: Litestar's own stores, outside the database: reference points.

Measured: the **time per call** of `set`, `get`, `get` with `renew_for`, `exists` and `delete`, one at a
  time, with {sizes} values; the **throughput** of a session mix (70% `get` with `renew_for`, 25% `set`, 5%
  `delete`) from {tasks} concurrent tasks{what_scale}.

## Results

{results}{chart}## How it was measured

- Run on {meta[started]} ({duration}), sqlsession at git commit {revision}: `{meta[command]}`.

### Machine

- CPU: {m[cpu]}, `nproc` = {m[nproc]} ({m[cores_per_socket]} cores per socket, {m[threads_per_core]} thread
  per core{guest}); memory: {m[memory_gib]} GiB
- {m[os]}, Linux {m[kernel]}
- Python {m[python]}, SQLite library {m[sqlite]}, default asyncio event loop{local}

### Versions and server settings

{versions}### Method

- Each store has a table (SQLite: a file; Redis: a namespace; FileStore: a folder) of its own, each SQL store
  but `SQLStore(engine)` at most {s[pool_size]} connections; the raw driver runs in autocommit (SQLite: WAL,
  `synchronous=NORMAL`), on one connection when one task runs. Keys like Litestar's session IDs, random
  values, `expires_in` and `renew_for` of {s[expires_in]} s.
- Time per call: one task; per round, operation and value size, each store in turn (the order rotates)
  makes {s[batch]} calls, each timed alone; {s[rounds]} rounds after a warm-up: {calls:,} calls per figure.
- Throughput: the mix on {s[keys]:,} keys, {tasks} tasks, {s[seconds]} s per store per round,
  {s[conc_rounds]} round(s), the stores alternating.{method_scale}

### Noise

- Load average (1, 5, 15 minutes) before the run: {before}; after: {after}.
- Processes other than the benchmark and the database servers used {foreign:.0%} of a core on
  average{noisy}{busy}{note}

## How to reproduce

```bash
pip install -e '.[bench]'
python -m bench
```

From a checkout of the repository. It rewrites `docs/benchmarks.md` and `docs/benchmarks.png` (this run
  took {duration}); `python -m bench --help` lists the options. A database whose server does not answer is
  skipped. It needs these servers (SQLite needs none):

- PostgreSQL at `{c.POSTGRES}` (or the URL in `BENCH_POSTGRES_URL`)
- MariaDB or MySQL at `{c.MYSQL}` (or the URL in `BENCH_MYSQL_URL`)
- Redis at `{c.REDIS_URL_DEFAULT}` (or the URL in `BENCH_REDIS_URL`)

## All figures

Per database: both value sizes, the 99th percentiles, each store ÷ `SQLStore.with_url`, the client's CPU.

{figures}"""
QUICK = "\n**A quick run (`--quick`): tiny counts, to check that the benchmark works; no real figures.**\n"
WHAT_SCALE = """; **large tables**: `SQLStore.with_url` alone on
  tables of {rows} rows, and `delete_expired()` on the largest while other tasks keep reading"""
THROUGHPUT = """### Throughput\n\nOperations per second of the session mix (higher is better); in brackets,
  each `SQLStore`'s as a percentage of the raw driver's.\n\n"""
LATENCY = """### Time per call\n\nMedian microseconds per call (lower is better), {size} values; in brackets,
  each `SQLStore`'s as a multiple of the raw driver's. Other sizes and the 99th percentiles:
  [All figures](#all-figures).\n\n"""
SCALE = """### Large tables\n\n`SQLStore.with_url` alone, 512 B values: median (99th percentile) microseconds
  per call by table size, largest ÷ smallest ([why SQLite's varies](scaling.md#sqlite-and-table-size)):\n\n"""
CLEANUP = """`delete_expired()` on the largest table, all but the working keys expired, while
  {s[delete_get_tasks]} tasks `get` live keys ({s[delete_get_rate]:,.0f} calls/s in all): those `get` calls in
  the 2 s before it and while it ran:\n\n"""
CHART = "## Chart\n\n![Session mix throughput per database and store]({chart})\n\n"
LOCAL = "\n- The servers (databases, Redis) ran on the same machine: client and server share its cores."
METHOD_SCALE = """
- Large tables: filled server-side with {s[fill_value_bytes]}-byte values, then `VACUUM ANALYZE` /
  `ANALYZE`; {s[scale_keys]} working keys; for `delete_expired()`, the stores' clock moves two days on."""
NOISY = ": other work ran (the servers may have served other clients too); the figures are noisier."
# All figures, per database: each table's title, shape and the form of its figures (None: ÷ with_url's)
TITLES = """Time of one call, median (99th percentile) in microseconds:
|`SQLStore.with_url`'s median time ÷ each other store's (below 1.00: `SQLStore.with_url` is faster):
|Session mix, operations per second:
|`SQLStore.with_url`'s throughput ÷ each other store's (above 1.00: `SQLStore.with_url` is faster):
|CPU time of the benchmark process per second of the mix (100% = one core: the client is the bottleneck):"""
SHAPES = ("sequential", "sequential", "concurrent", "concurrent", "client_cpu")
FORMS = ("", None, "{:,.0f}", None, "{:.0%}")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n\n"


def size_label(size: int | str) -> str:
    return f"{int(size) // 1024} KiB" if int(size) and not int(size) % 1024 else f"{size} B"


def _fmt(value: Any, form: str = "{:,.0f}") -> str:
    """A figure in ``form``, a latency as median (p99); "-" if there is none."""
    if isinstance(value, dict):
        return f"{_fmt(value['median_us'])} ({_fmt(value['p99_us'])})"
    return "-" if value is None or math.isnan(value) else form.format(value)


def _number(value: Any) -> float | None:
    return value["median_us"] if isinstance(value, dict) else value


def _ratio(mine: Any, theirs: Any) -> str:
    mine, theirs = _number(mine), _number(theirs)
    return "-" if mine is None or not theirs else f"{mine / theirs:.2f}"


def _and(items: Any) -> str:
    *rest, last = [str(item) for item in items] or [""]
    return f"{', '.join(rest)} and {last}" if rest else last


def _one_line(text: str) -> str:
    """An error message on one line (its escaped newlines too), cut at 300 characters."""
    text = " ".join(str(text).replace("\\n", " ").split())
    return text if len(text) <= 300 else text[:299] + "…"


def database(results: dict[str, Any], dialect: str) -> str:
    """``PostgreSQL (asyncpg)``, ``MariaDB (asyncmy)``...: the server and the driver of a dialect."""
    server, asked = DATABASES.get(dialect, dialect), results["meta"]["servers"].get("MariaDB/MySQL", "")
    if dialect == "asyncmy" and asked and not asked.startswith("?"):
        server = "MariaDB" if "mariadb" in asked.lower() else "MySQL"
    return f"{server} ({'aiosqlite' if dialect == 'sqlite' else dialect})"


def _figure(group: dict[str, Any], shape: str, name: str, key: tuple[Any, Any]) -> Any:
    """A figure of an operation and a value size (sequential), or of a value size and tasks (the mix)."""
    return group.get(shape, {}).get(name, {}).get(str(key[0]), {}).get(str(key[1]))


def _keys(results: dict[str, Any], shape: str) -> list[tuple[list[str], tuple[Any, Any]]]:
    """The rows of a shape's table: their labels and the key of their figures."""
    sizes, tasks = results["settings"]["sizes"], results["settings"]["tasks"]
    if shape == "sequential":
        return [([OP_LABELS[op], size_label(z)], (op, z)) for op in OPS for z in sizes]
    return [([size_label(z), str(t)], (z, t)) for z in sizes for t in tasks]


def _groups(results: dict[str, Any], *shapes: str) -> dict[str, Any]:
    return {d: g for d, g in results["groups"].items() if any(g.get(shape) for shape in shapes)}


def _summary(results: dict[str, Any], shape: str, keys: list[Any], share: str, title: str) -> str:
    """``title`` and every store of every database, a row per key; both SQLStores also ÷ the raw driver's."""
    groups, rows = _groups(results, shape), []
    tried = [n for n in ALL_CONTENDERS if any(n in g["contenders"] for g in groups.values())]
    for (dialect, group), (labels, key) in [(g, k) for g in groups.items() for k in keys]:
        raw, row = _number(_figure(group, shape, "raw", key)), [database(results, dialect), *labels]
        for name in tried:
            value, status = _number(_figure(group, shape, name, key)), group["contenders"].get(name, {})
            versus = f" ({share.format(value / raw)})" if name in WAYS and raw and value is not None else ""
            missing = MISSING.get(status.get("status", ""), "-")
            row.append(missing if value is None else _fmt(value) + versus)  # missing: failed, n/a or not run
        rows.append(row)
    head = ["value", "tasks"] if shape == "concurrent" else ["operation"]
    return title + _table(["database", *head, *(LABELS.get(n, n) for n in tried)], rows) if groups else ""


def _scale(results: dict[str, Any]) -> str:
    """The scale part: sequential figures per table size; delete_expired() on the largest."""
    scale, rows, cleanup = results["scale"], [], []
    counts = next((list(part["rows"]) for part in scale.values() if part.get("rows")), [])
    head = ["database", "operation", *(f"{int(n):,} rows" for n in counts)]
    head += ["large ÷ small"] * (len(counts) > 1)
    for where, part in [(database(results, dialect), part) for dialect, part in scale.items()]:
        if "error" in part:
            rows.append([where, f"error: {part['error']}", *(["-"] * (len(head) - 2))])
        for op in OPS if "error" not in part else ():
            cells = [part["rows"][n].get("ops", {}).get(op) for n in counts]
            ratio = [_ratio(cells[-1], cells[0])] * (len(counts) > 1)
            rows.append([where, OP_LABELS[op], *map(_fmt, cells), *ratio])
        if info := part.get("delete_expired"):
            loaded, gets = part["rows"][str(info["rows"])], (info["baseline"], info["during"])
            counted = [f"{int(x):,}" for x in (loaded["expiring"], loaded["live"], info["deleted"])]
            times = [f"{_fmt(x['median_us'])} / {_fmt(x['p99_us'])}" for x in gets]
            cleanup.append([where, *counted, f"{info['seconds']:.2f}", *times, f"{int(gets[1]['n']):,}"])
    heads = "database|expired rows|live rows|deleted|time (s)|get, before: median / p99 (µs)"
    heads += "|get, during: median / p99 (µs)|gets timed during"
    out = SCALE + _table(head, rows)
    return out + CLEANUP.format(s=results["settings"]) + _table(heads.split("|"), cleanup) if cleanup else out


def _problems(results: dict[str, Any]) -> str:
    """Databases and stores without figures, or whose reads missed, in the page's words."""
    lines = []
    for dialect, group in results["groups"].items():
        where = database(results, dialect)
        if not group.get("available", True):
            lines.append(f"- {where}: not run: {_one_line(group.get('reason', '?'))}.")
        for name, info in group.get("contenders", {}).items():
            if info["status"] != "ok":
                how = "not run here: {}." if info["status"] == "unavailable" else "failed: `{}`"
                lines.append(f"- {where}, {LABELS.get(name, name)}: " + how.format(_one_line(info["detail"])))
        missed = [(LABELS.get(name, name), count) for name, count in group.get("misses", {}).items() if count]
        lines += [f"- {where}, {label}: {count} reads missed the value written." for label, count in missed]
    for where, part in [(database(results, d), part) for d, part in results.get("scale", {}).items()]:
        if "error" in part:
            lines.append(f"- {where}, large tables: failed: `{_one_line(part['error'])}`")
    intro = "### Stores that did not run\n\nA `failed` or `n/a` in a table:\n\n"
    return intro + "\n".join(lines) + "\n\n" if lines else ""


def _figures(results: dict[str, Any], dialect: str, group: dict[str, Any]) -> str:
    """Every figure of one database, and each store's ÷ `SQLStore.with_url`'s."""
    measured = group.get("sequential", {}) | group.get("concurrent", {})
    names, infos = [n for n in ALL_CONTENDERS if n in measured], group["contenders"].items()
    ok = "; ".join(f"**{LABELS.get(n, n)}**: {info['detail']}" for n, info in infos if info["status"] == "ok")
    out = f"### {database(results, dialect)}\n\nStores: {ok}.\n\n"
    for title, shape, form in zip(TITLES.split("\n|"), SHAPES, FORMS, strict=True):
        if group.get(shape):
            versus, rows = form is None, []
            shown = [n for n in names if n in group[shape] or shape != "client_cpu"]  # CPU: measured ones
            columns = [n for n in names if n != MAIN] if versus else shown
            for labels, key in _keys(results, shape):
                mine = _figure(group, shape, MAIN, key)
                cells = [_figure(group, shape, n, key) for n in columns]
                rows.append(labels + [_ratio(mine, c) if versus else _fmt(c, form) for c in cells])
            heads = ["operation", "value"] if shape == "sequential" else ["value", "tasks"]
            heads += [("÷ " if versus else "") + LABELS.get(n, n) for n in columns]
            out += title + "\n\n" + _table(heads, rows)
    return out


def markdown(results: dict[str, Any], chart_name: str | None) -> str:
    """``docs/benchmarks.md``: a page for the users of sqlsession, every figure from ``results``."""
    meta, s, scale, groups = results["meta"], results["settings"], results.get("scale"), results["groups"]
    (commit, _, dirty), seconds = str(meta["revision"]).partition(" + "), meta["duration_s"]
    noisy, busy = meta["foreign_cores"] > meta["foreign_limit"], meta["load_before"]["busy"]
    hosts = [dialect_url(d).host for d, g in groups.items() if d != "sqlite" and g.get("sequential")]
    if any(g.get("contenders", {}).get("RedisStore", {}).get("status") == "ok" for g in groups.values()):
        hosts.append(make_url(s["redis_url"]).host)
    local = hosts and all(host in (None, "127.0.0.1", "localhost", "::1") for host in hosts)
    out = _summary(results, "concurrent", _keys(results, "concurrent"), "{:.0%}", THROUGHPUT)
    for size in s["sizes"][:1]:  # the time per call: of the first size
        keys = [([OP_LABELS[op]], (op, size)) for op in OPS]
        out += _summary(results, "sequential", keys, "{:.2f}x", LATENCY.format(size=size_label(size)))
    v: dict[str, Any] = {"meta": meta, "m": meta["machine"], "s": s, "c": contenders}
    v |= {"sizes": _and(map(size_label, s["sizes"])), "tasks": _and(s["tasks"])}
    v["duration"] = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} minutes"
    v |= {"revision": f"`{commit}`" + (f" + {dirty}" if dirty else ""), "foreign": meta["foreign_cores"]}
    v |= {"calls": s["batch"] * s["rounds"], "quick": QUICK if "--quick" in meta["command"].split() else ""}
    v["what_scale"] = WHAT_SCALE.format(rows=_and(f"{int(n):,}" for n in s["rows"])) if scale else ""
    v["notice"] = " The machine was not quiet during this run: see [Noise](#noise)." if noisy else ""
    v["results"] = out + (_scale(results) if scale else "") + _problems(results)
    v |= {"chart": CHART.format(chart=chart_name) if chart_name else "", "noisy": NOISY if noisy else "."}
    v["guest"] = f", {meta['machine']['hypervisor']} guest" if meta["machine"]["hypervisor"] else ""
    v |= {"local": LOCAL if local else "", "method_scale": METHOD_SCALE.format(s=s) if scale else ""}
    v["versions"] = _table(["package", "version"], list(map(list, meta["packages"].items())))
    v["versions"] += _table(["server", "version and settings"], list(map(list, meta["servers"].items())))
    v["before"], v["after"] = (", ".join(map(str, meta[f"load_{x}"]["loadavg"])) for x in ("before", "after"))
    v["busy"] = f" Busy processes at the start: {', '.join(busy)}." if busy else ""
    v["note"] = f"\n- Note from the person who ran it: {meta['note']}" if meta["note"] else ""
    shown = _groups(results, "sequential", "concurrent")
    v["figures"] = "".join(_figures(results, dialect, group) for dialect, group in shown.items())
    return PAGE.format(**v).replace("\n  ", " ").rstrip("\n") + "\n"


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Bar chart of the mix throughput per database and store; ``None`` or why it was not drawn."""
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing to close
    except ImportError as error:
        return f"matplotlib is not installed ({error})"
    if not (groups := _groups(results, "concurrent")):
        return "no throughput figures"
    sizes, tasks = results["settings"]["sizes"], results["settings"]["tasks"]
    names = [n for n in ALL_CONTENDERS if any(n in g["concurrent"] for g in groups.values())]
    ticks = [database(results, d).replace(" (", "\n(") for d in groups]
    fig, width = Figure(figsize=(6.5 * len(sizes), 3.8 * len(tasks))), 0.8 / len(names)
    axes = fig.subplots(len(tasks), len(sizes), squeeze=False)
    for ax, (n_tasks, size) in zip(axes.flat, [(t, z) for t in tasks for z in sizes], strict=True):
        for i, name in enumerate(names):
            values = [_figure(g, "concurrent", name, (size, n_tasks)) or 0.0 for g in groups.values()]
            xs = [x + (i - (len(names) - 1) / 2) * width for x in range(len(groups))]
            edge, label = "black" if name == MAIN else None, LABELS.get(name, name)
            ax.bar(xs, values, width, label=label, color=colormaps["tab10"](i), edgecolor=edge)
            for x, value, group in zip(xs, values, groups.values(), strict=True):
                text = MISSING.get(group["contenders"].get(name, {}).get("status", ""))
                if not value and text:  # a bar of 0: say why
                    ax.text(x, 0, text, rotation=90, fontsize=7, ha="center", va="bottom")
        ax.set_xticks(range(len(groups)), ticks, fontsize=8)
        ax.set_title(f"session mix, {size_label(size)} values, {n_tasks} task" + "s" * (n_tasks > 1))
        ax.set_ylabel("operations per second")
        ax.yaxis.set_major_formatter("{x:,.0f}")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(names), fontsize=9, frameon=False)
    fig.suptitle("sqlsession benchmark: session mix throughput per database and store (higher is better)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    return None
