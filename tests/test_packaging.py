"""The distributions: the wheel and the sdist built from this tree carry the licence, the typing marker
and the migration revision (what ``pip install sqlsession`` gives and what a downstream packager gets)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# the build backend's own hooks (hatchling is in the test extra), called in the project's root
_HOOKS = "import sys, hatchling.build as b; b.build_sdist(sys.argv[1]); b.build_wheel(sys.argv[1])"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist), both built from the source tree into a temporary directory."""
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-c", _HOOKS, str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def test_the_wheel_carries_the_licence_the_typing_marker_and_the_revision(dists: tuple[Path, Path]) -> None:
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "sqlsession/py.typed" in names
        assert "sqlsession/migrations/0001_create_store_table.py" in names
        licences = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        assert len(licences) == 1, sorted(names)
        assert archive.read(licences[0]) == (ROOT / "LICENSE").read_bytes()
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        headers = archive.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers
    assert "License-File: LICENSE" in headers


def test_the_sdist_carries_the_licence(dists: tuple[Path, Path]) -> None:
    _, sdist = dists
    with tarfile.open(sdist) as archive:
        by_name = {member.name.split("/", 1)[-1]: member for member in archive.getmembers()}
        assert "LICENSE" in by_name, sorted(by_name)
        extracted = archive.extractfile(by_name["LICENSE"])
        assert extracted is not None
        assert extracted.read() == (ROOT / "LICENSE").read_bytes()
    assert {"pyproject.toml", "README.md", "sqlsession/py.typed"} <= set(by_name)
    assert "sqlsession/migrations/0001_create_store_table.py" in by_name
