"""Pin the libfranka a franka_ros2 checkout is built with, refusing a pair that does not go together.

    python3 docker/franka_pins.py LIBFRANKA_VERSION path/to/franka_ros2

franka_ros2's CHANGELOG.rst opens each release with "Requires libfranka >= X" and its
dependency.repos names the libfranka that `vcs import` fetches. This rewrites that version to
LIBFRANKA_VERSION (so the Docker build argument decides it) after checking it is at least the
newest release's requirement; exit 1 with the reason otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml


def parse(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.strip().lstrip("v").split("."))


def required_libfranka(changelog: str) -> str | None:
    """The requirement of the newest release: the first "Requires libfranka >= X" line."""
    m = re.search(r"Requires libfranka >= ([0-9]+(?:\.[0-9]+)*)", changelog)
    return m.group(1) if m else None


def pin(version: str, repo: Path) -> str:
    need = required_libfranka((repo / "CHANGELOG.rst").read_text())
    if need is not None and parse(version) < parse(need):
        raise SystemExit(f"LIBFRANKA_VERSION {version} is older than libfranka {need}, which this "
                         f"franka_ros2 release requires (its CHANGELOG.rst); use {need} or newer")
    path = repo / "dependency.repos"
    repos = yaml.safe_load(path.read_text())
    repos["repositories"]["libfranka"]["version"] = version
    path.write_text(yaml.safe_dump(repos, sort_keys=False))
    return need or "(no requirement stated)"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    need = pin(sys.argv[1], Path(sys.argv[2]))
    print(f"libfranka {sys.argv[1]} (the release requires >= {need})")
