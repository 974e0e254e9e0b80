"""Helpers for tests that bring stacks up against the franka_bringup stand-in.

Every process runs with an environment made here: the franka_msgs stand-in (built once, outside
the repository) and a stand-in prefix for one franka_ros2 release on AMENT_PREFIX_PATH.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for extra in (HERE, ROOT / "launch"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import lps_stacks  # noqa: E402
from prefix import make_prefix, with_prefix  # noqa: E402


def _load_builder():
    # By path: tests/hw_fakes on sys.path would make its stand-ins (pyrealsense2) importable in
    # the test process, where other tests check that the real packages are absent.
    spec = importlib.util.spec_from_file_location("franka_msgs_build", ROOT / "tests/hw_fakes/franka_msgs_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


franka_msgs_build = _load_builder()

BRINGUP = HERE / "bringup.py"
RUNNER = ROOT / "scripts" / "launch_stack.py"


def standin_env(tmp: Path, tag: str | None, franka_msgs: bool = True,
                base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with release `tag`'s stand-in (None: controller_manager's spawner only)."""
    env = dict(os.environ if base is None else base, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    if franka_msgs:
        env = franka_msgs_build.environment(franka_msgs_build.ensure_built(), env)
    return with_prefix(env, make_prefix(tmp, tag or "v3.4.0", with_bringup=tag is not None))


def share_in(env: dict[str, str]):
    """find_share as the ament index of `env` answers it."""
    def find(package: str) -> str:
        for prefix in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
            if prefix and (Path(prefix) / "share/ament_index/resource_index/packages" / package).is_file():
                return str(Path(prefix) / "share" / package)
        raise lps_stacks.StackError(f"package {package!r} not found")
    return find


def include_arguments(env: dict[str, str], **given: str) -> dict[str, str]:
    """What the `real` stack passes to franka.launch.py for these launch arguments."""
    stack = lps_stacks.load().stack("real")
    _, (include,) = lps_stacks.resolve(stack, given, share_in(env))
    return include.arguments


def start_bringup(env: dict[str, str], tag: str, arguments: dict[str, str], log: Path,
                  delay_s: float = 0.0) -> subprocess.Popen:
    cmd = [sys.executable, str(BRINGUP), "--release", tag, "--startup-delay", str(delay_s),
           *(f"{k}:={v}" for k, v in arguments.items())]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


def start_stack(env: dict[str, str], stack: str, arguments: dict[str, str], log: Path,
                *options: str) -> subprocess.Popen:
    cmd = [sys.executable, str(RUNNER), stack, *options, *(f"{k}:={v}" for k, v in arguments.items())]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            cwd=ROOT)


def stop(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGINT, then wait up to `timeout`; None if it had to be killed (a hang)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None
