"""Smoke test of the benchmark harness (``python -m bench``): it runs, on SQLite with tiny counts, and
prints and writes its page (docs/benchmarks.md: what users read), its chart and its JSON.
Benchmarks are not tests: no timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.run import main

TINY = [
    "--quick",
    "--dialects",
    "sqlite",
    "--sizes",
    "512",
    "--batch",
    "5",
    "--rounds",
    "1",
    "--tasks",
    "1,4",
    "--seconds",
    "0.1",
    "--conc-rounds",
    "1",
    "--keys",
    "20",
    "--rows",
    "100,300",
]


def test_quick_run_prints_its_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([*TINY, "--docs-dir", str(tmp_path), "--json", str(tmp_path / "results.json")]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    group = results["groups"]["sqlite"]
    assert set(group["sequential"]["sqlsession"]) == {"set", "get", "get_renew", "exists", "delete"}
    assert group["sequential"]["raw"]["get"]["512"]["n"] == 5
    assert group["misses"]["sqlsession"] == 0
    for shape in ("concurrent", "client_cpu"):
        assert set(group[shape]["raw"]["512"]) == set(group[shape]["sqlsession-engine"]["512"]) == {"1", "4"}
    assert set(results["scale"]["sqlite"]["rows"]) == {"100", "300"}
    assert "seconds" in results["scale"]["sqlite"]["delete_expired"]

    document = (tmp_path / "benchmarks.md").read_text()
    assert capsys.readouterr().out == document + "\n"  # the run prints the page it writes
    assert document.startswith("# Benchmarks")
    # a page for users, in this order: what and why, the results, the chart, how, how to reproduce
    charted = results["meta"]["packages"].get("matplotlib", "not installed") != "not installed"
    sections = [line for line in document.splitlines() if line.startswith("## ")]
    assert sections == [
        "## What this measures and why",
        "## Results",
        *(["## Chart"] if charted else []),
        "## How it was measured",
        "## How to reproduce",
        "## All figures",
    ]
    subsections = [line for line in document.splitlines() if line.startswith("### ")]
    # stores whose library is not installed (the bench extra) are listed under their own heading
    missing = [name for name, info in group["contenders"].items() if info["status"] != "ok"]
    assert subsections == [
        "### Throughput",
        "### Time per call",
        "### Large tables",
        *(["### Stores that did not run"] if missing else []),
        "### Machine",
        "### Versions and server settings",
        "### Method",
        "### Noise",
        "### SQLite (aiosqlite)",
    ]
    for label in ("raw driver", "SQLStore.with_url", "SQLStore(engine)", "pip install -e '.[bench]'"):
        assert label in document
    for row in (
        "| SQLite (aiosqlite) | 512 B | 4 |",
        "| SQLite (aiosqlite) | get(renew_for) |",
        "| 100 rows |",
    ):
        assert row in document
    # both ways of making a store, next to the raw driver: in % of its throughput, x its time per call
    throughput = next(
        line for line in document.splitlines() if line.startswith("| SQLite (aiosqlite) | 512 B | 1 |")
    )
    assert throughput.count("%)") == 2
    latency = next(line for line in document.splitlines() if line.startswith("| SQLite (aiosqlite) | get |"))
    assert latency.count("x)") == 2
    assert results["meta"]["revision"].split()[0] in document
    # no developers' targets in it
    assert "PASS" not in document and "FAIL" not in document and "target" not in document.lower()
    if charted:
        assert (tmp_path / "benchmarks.png").stat().st_size > 0


def test_missing_libraries_are_reported_unavailable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # as if sqlspec, advanced-alchemy, redis and matplotlib were not installed (also when an earlier
    # test imported them: their submodules are hidden too)
    hidden = ("sqlspec", "advanced_alchemy", "redis", "litestar.stores.redis", "matplotlib")
    for module in [name for name in sys.modules if name.split(".")[0] in hidden] + list(hidden):
        monkeypatch.setitem(sys.modules, module, None)
    assert main([*TINY, "--rows", "0", "--docs-dir", str(tmp_path)]) == 0
    document = (tmp_path / "benchmarks.md").read_text()
    assert "### Stores that did not run" in document and "| n/a |" in document
    for name in ("sqlspec", "advanced-alchemy", "RedisStore"):
        assert f"- SQLite (aiosqlite), {name}: not run here: not installed" in document
    assert "### Time per call" in document and "### Large tables" not in document
    assert "## Chart" not in document
    assert not (tmp_path / "benchmarks.png").exists()
