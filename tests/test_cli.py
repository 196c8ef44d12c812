"""``python -m sqlsession``: failures are one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sqlsession.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sqlsession", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["stats", "delete-expired"])
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///{tmp}/empty.db", "run the migrations"),
        ("postgresql://postgres:s3cretpw@127.0.0.1:1/test", "Connect call failed"),
        ("mysql://nobody:s3cretpw@127.0.0.1:1/test", "Can't connect"),
        ("not a url", "Could not parse"),
        ("nosuchdb://x/y", "Can't load plugin"),
    ],
)
def test_failures_are_one_line_and_a_non_zero_exit(
    tmp_path: Path, command: str, url: str, message: str
) -> None:
    result = run(command, "--url", url.format(tmp=tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert "s3cretpw" not in result.stderr


def test_invalid_table_name_is_an_error(tmp_path: Path) -> None:
    result = run("stats", "--url", f"sqlite:///{tmp_path}/x.db", "--table", "x;drop table y")
    assert result.returncode == 1
    assert "invalid table name" in result.stderr


def test_usage_errors_exit_with_2() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["stats"])  # --url is required
    assert exited.value.code == 2
