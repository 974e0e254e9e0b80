"""docker/Dockerfile.robot's franka_ros2 / libfranka pins against the launch's version check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "launch"))
import lps_stacks  # noqa: E402

PINS = ROOT / "docker" / "franka_pins.py"


def _arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", (ROOT / "docker/Dockerfile.robot").read_text(), re.M)
    assert m, f"Dockerfile.robot declares no default for {name}"
    return m.group(1)


def test_the_image_pins_a_release_the_real_stack_accepts():
    (include,) = lps_stacks.load().stack("real").includes
    assert include.requires.admits(_arg("FRANKA_ROS2_VERSION").lstrip("v"))
    assert "FRANKA_ROS2_VERSION" in include.requires.install and "LIBFRANKA_VERSION" in include.requires.install


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A franka_ros2 checkout's two files, in the form its releases write them."""
    repo = tmp_path / "franka_ros2"
    repo.mkdir()
    (repo / "CHANGELOG.rst").write_text(
        "Changelog for package franka_ros2\n\nv3.4.0 (2026-06-23)\n-------------------\n"
        "Requires libfranka >= 0.20.4 and franka_description >= 2.8.0 requires ROS 2 Jazzy\n\n"
        "v3.2.0 (2026-01-15)\n-------------------\nRequires libfranka >= 0.19.0 and franka_description\n")
    (repo / "dependency.repos").write_text(yaml.safe_dump({"repositories": {
        "franka_description": {"type": "git", "url": "https://example.invalid/fd.git", "version": "2.8.0"},
        "libfranka": {"type": "git", "url": "https://example.invalid/lf.git", "version": "0.20.5"}}}))
    return repo


def _run(version: str, repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PINS), version, str(repo)], capture_output=True, text=True,
                          timeout=60)


def test_libfranka_pin_is_written_for_vcs_import(checkout):
    out = _run("0.20.4", checkout)
    assert out.returncode == 0, out.stderr
    repos = yaml.safe_load((checkout / "dependency.repos").read_text())["repositories"]
    assert repos["libfranka"]["version"] == "0.20.4" and repos["franka_description"]["version"] == "2.8.0"


def test_a_libfranka_older_than_the_release_requires_is_refused(checkout):
    out = _run("0.19.0", checkout)  # enough for v3.2.0, not for the newest release in the file
    assert out.returncode == 1 and "older than libfranka 0.20.4" in out.stderr
    assert yaml.safe_load((checkout / "dependency.repos").read_text())["repositories"]["libfranka"]["version"] \
        == "0.20.5"
