"""Build the franka_msgs stand-in (tests/hw_fakes/franka_msgs_standin) into a prefix outside the repository.

franka_msgs is not on PyPI, and a package named franka_msgs must never land in ros2_ws's install
space, where a user's real franka_ros2 would be shadowed by it. So it is built once per content
into `<tmp>/lps-franka-msgs-standin-<hash>/install`, under a file lock (two test processes may ask
at once), and handed to processes through `environment()`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

# Not named franka_msgs: a folder of that name on a path would import as a (namespace) package.
SOURCE = Path(__file__).resolve().parent / "franka_msgs_standin"


def _digest() -> str:
    h = hashlib.sha256()
    for path in sorted(SOURCE.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(SOURCE)).encode())
            h.update(path.read_bytes())
    h.update(sys.executable.encode())
    return h.hexdigest()[:16]


def ensure_built() -> Path:
    """The install prefix of the stand-in, built if it is not there yet (about 20-60 s)."""
    root = Path(tempfile.gettempdir()) / f"lps-franka-msgs-standin-{_digest()}"
    root.mkdir(exist_ok=True)
    install = root / "install"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "done").is_file():
            return install
        venv = Path(sys.prefix)
        env = dict(os.environ, AMENT_PREFIX_PATH=str(venv))
        cmd = ["colcon", "--log-base", str(root / "log"), "build", "--merge-install",
               "--base-paths", str(SOURCE), "--build-base", str(root / "build"),
               "--install-base", str(install),
               "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
        if out.returncode != 0:
            raise RuntimeError(f"building the franka_msgs stand-in failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        (root / "done").write_text("ok\n")
    return install


def environment(install: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: os.environ) with the stand-in importable and on the ament index."""
    env = dict(os.environ if base is None else base)
    pyver = f"python{sysconfig.get_python_version()}"
    site = [install / "lib" / pyver / "site-packages", install / "local" / "lib" / pyver / "dist-packages"]

    def prepend(key: str, *paths: Path) -> None:
        parts = [str(p) for p in paths] + ([env[key]] if env.get(key) else [])
        env[key] = os.pathsep.join(parts)

    prepend("PYTHONPATH", *[p for p in site if p.is_dir()])
    prepend("AMENT_PREFIX_PATH", install)
    prepend("LD_LIBRARY_PATH", install / "lib")
    return env
