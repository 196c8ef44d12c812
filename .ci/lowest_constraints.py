"""Print pip constraints that pin every direct runtime dependency to its lower bound.

Runtime dependencies: [project] dependencies, the extras that the ``all`` extra names (the
drivers), and the feature extras in ``FEATURE_EXTRAS`` (``encryption``); each must have a ``>=``
bound. Test tools are left to resolve to their latest versions.
Usage (Python 3.11+): python3 .ci/lowest_constraints.py [pyproject.toml] > constraints.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

# optional features whose packages the tests use (the test extra installs them) beside ``all``
FEATURE_EXTRAS = ("encryption",)
# name, [extras], version specifiers (before any ";" marker)
REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*([^;]*)")


def lowest(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    pending = [*project.get("dependencies", []), *extras.get("all", [])]
    for feature in FEATURE_EXTRAS:
        if feature not in extras:
            sys.exit(f"pyproject.toml has no extra {feature!r}")
        pending += extras[feature]
    own, seen = project["name"].lower().replace("_", "-"), {"all", *FEATURE_EXTRAS}
    pins: dict[str, str] = {}
    while pending:
        requirement = pending.pop(0)
        match = REQUIREMENT.match(requirement)
        if match is None:
            sys.exit(f"cannot parse the requirement {requirement!r}")
        name, names_extras, specifiers = match[1].lower().replace("_", "-"), match[2] or "", match[3]
        if name == own:  # "sqlsession[asyncpg,psycopg]": the requirements of those extras
            for extra in (e.strip() for e in names_extras.split(",")):
                if extra not in seen:
                    seen.add(extra)
                    pending += extras[extra]
            continue
        bound = re.search(r">=\s*([^,\s]+)", specifiers)
        if bound is None:
            sys.exit(f"{requirement!r} has no >= lower bound")
        pins[name] = bound[1]
    # a constraint takes no extras: "sqlalchemy[asyncio]>=X" is pinned as "sqlalchemy==X"
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "pyproject.toml"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    print("\n".join(lowest(path)))
