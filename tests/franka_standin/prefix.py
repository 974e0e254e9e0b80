"""Install prefix with the franka_bringup (and controller_manager spawner) stand-in of one release.

Put on AMENT_PREFIX_PATH, it is what the ament index, $(find-pkg-share franka_bringup) and the
stack's version check see: franka_bringup with the release's package.xml version and a
franka.launch.py that declares exactly the release's arguments (for `ros2 launch`, where it is
installed: it runs bringup.py with them), and controller_manager's `spawner` executable. Made in
a test's temporary directory, never in a workspace.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from releases import RELEASES

HERE = Path(__file__).resolve().parent

_PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>{version}</version>
  <description>Test stand-in of {name} ({tag}).</description>
  <maintainer email="maintainers@lps-franka.invalid">lps-franka maintainers</maintainer>
  <license>Apache-2.0</license>
</package>
"""

_LAUNCH = '''"""Stand-in of franka_bringup/launch/franka.launch.py of franka_ros2 {tag}."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

ARGUMENTS = {arguments!r}


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default) for name, default in ARGUMENTS.items()]
    values = [[name + ":=", LaunchConfiguration(name)] for name in ARGUMENTS]
    return LaunchDescription(declared + [ExecuteProcess(
        cmd=[{python!r}, {bringup!r}, "--release", {tag!r}, *values], output="screen")])
'''


def make_prefix(root: Path, tag: str, with_bringup: bool = True) -> Path:
    """Write the stand-in prefix for release `tag` under `root`; returns the prefix."""
    release = RELEASES[tag]
    prefix = root / f"franka-{tag}"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    packages = {"controller_manager": "0.0.0"} | ({"franka_bringup": release.version} if with_bringup else {})
    for name, version in packages.items():
        (index / name).write_text("")
        share = prefix / "share" / name
        share.mkdir(parents=True, exist_ok=True)
        (share / "package.xml").write_text(_PACKAGE_XML.format(name=name, version=version, tag=tag))
    if with_bringup:
        launch = prefix / "share" / "franka_bringup" / "launch"
        launch.mkdir(exist_ok=True)
        (launch / "franka.launch.py").write_text(_LAUNCH.format(
            tag=tag, arguments=release.arguments, python=sys.executable, bringup=str(HERE / "bringup.py")))
    lib = prefix / "lib" / "controller_manager"
    lib.mkdir(parents=True, exist_ok=True)
    spawner = lib / "spawner"
    spawner.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\n"
                       "from spawner import main\nsys.exit(main())\n")
    spawner.chmod(0o755)
    return prefix


def with_prefix(env: dict[str, str], prefix: Path) -> dict[str, str]:
    out = dict(env)
    out["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), *filter(None, [env.get("AMENT_PREFIX_PATH")])])
    return out
