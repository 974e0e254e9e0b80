"""Derive the Python packages a Docker image installs from the project's pinned lists.

There is no hand-kept runtime requirements file to drift: the robot image installs the
dependency closure of a few runtime roots, each at the version `requirements/lock.txt` (or
`requirements/ort-gpu.txt`) pins. The closure is walked through the package metadata of the
project environment, which `scripts/bootstrap.sh` installs from exactly those lists, so run this
with `scripts/with-env`:

    scripts/with-env python docker/runtime_requirements.py robot            # pins, one a line
    scripts/with-env python docker/runtime_requirements.py robot --apt      # what apt provides
    scripts/with-env python docker/runtime_requirements.py robot --write    # refresh the Dockerfile

`--write` rewrites the block between the `runtime-requirements` markers in
`docker/Dockerfile.robot`; `tests/test_docker_lint.py` fails whenever that block and this
derivation disagree (for example after `make lock` moved a pin).

The sim image needs no derivation: it runs `scripts/bootstrap.sh`, which installs the whole of
lock.txt + torch.txt + ort-cpu.txt, the same as a developer machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
BEGIN = "# BEGIN runtime-requirements"
END = "# END runtime-requirements"


@dataclass(frozen=True)
class ImageSpec:
    """What one image needs from the pinned lists."""

    dockerfile: str
    """Dockerfile (relative to the repository) whose marked block installs the derived pins."""
    python: str
    """Python version of the image's interpreter (major.minor): markers and Requires-Python are
    evaluated for it, so a pin that cannot install there is refused here, not during a build."""
    roots: tuple[str, ...]
    """Top-level packages the image's code imports; their dependencies are found, not listed."""
    pinned_lists: tuple[str, ...]
    """Pinned lists the versions come from (relative to the repository), first match wins."""
    from_apt: dict[str, str] = field(default_factory=dict)
    """Packages the base distribution provides through apt, and the apt package name. In a ROS
    image the apt ROS packages' C extensions are compiled against the distribution's numpy 1.x,
    which NumPy 2 cannot load; installing numpy from the lock would break every message with
    an array field. The image installs these apt packages instead."""
    metadata_alias: dict[str, str] = field(default_factory=dict)
    """Package -> package whose installed metadata stands in for it (same project, same version,
    same Requires-Dist; the GPU build of onnxruntime is not installed on CPU machines)."""
    no_metadata: tuple[str, ...] = ()
    """Pinned packages that ship no Python dependencies and are not installed in the project
    environment (robot hardware only), so their metadata cannot be read here."""


IMAGES: dict[str, ImageSpec] = {
    "robot": ImageSpec(
        dockerfile="docker/Dockerfile.robot",
        python="3.12",  # Ubuntu 24.04, ROS 2 Jazzy
        # lps_steering.core imports numpy, onnxruntime and yaml; the nodes import rclpy and the
        # message packages, which apt provides; pyrealsense2 is for camera checks on the robot.
        roots=("onnxruntime-gpu", "numpy", "PyYAML", "pyrealsense2"),
        pinned_lists=("requirements/ort-gpu.txt", "requirements/lock.txt", "docker/robot-pins.txt"),
        from_apt={"numpy": "python3-numpy", "pyyaml": "python3-yaml"},
        metadata_alias={"onnxruntime-gpu": "onnxruntime"},
        no_metadata=("pyrealsense2",),
    ),
}


class DerivationError(RuntimeError):
    """The pinned lists cannot give the image a consistent, installable set."""


def read_pins(path: Path) -> dict[str, tuple[str, str]]:
    """`name==version` lines of a pinned list -> {canonical name: (spelling, version)}."""
    pins: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise DerivationError(f"{path.name}:{number}: expected `name==version`, got {line!r}")
        key = canonicalize_name(req.name)
        if key in pins and pins[key][1] != specs[0].version:
            raise DerivationError(f"{path.name}:{number}: {req.name} pinned twice "
                                  f"({pins[key][1]} and {specs[0].version})")
        pins[key] = (req.name, specs[0].version)
    return pins


def _marker_env(python: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def derive(image: str, repo: Path = REPO, python: str | None = None) -> tuple[list[str], list[str]]:
    """Return (pip pins `name==version` sorted, apt package names) for `image`.

    `python` overrides the image's interpreter version (to ask "would this work on ...?").
    """
    spec = IMAGES[image]
    python = python or spec.python
    pins: dict[str, tuple[str, str]] = {}
    for rel in spec.pinned_lists:
        for key, value in read_pins(repo / rel).items():
            pins.setdefault(key, value)
    env = _marker_env(python)
    apt = {canonicalize_name(k): v for k, v in spec.from_apt.items()}
    alias = {canonicalize_name(k): v for k, v in spec.metadata_alias.items()}
    leaves = {canonicalize_name(n) for n in spec.no_metadata}

    closure: dict[str, str] = {}
    todo = [canonicalize_name(r) for r in spec.roots]
    while todo:
        key = todo.pop()
        if key in closure:
            continue
        if key.startswith("ros-"):
            raise DerivationError(f"{image}: {key} is a ROS wheel; in a ROS image apt provides ROS")
        if key not in pins:
            raise DerivationError(f"{image}: {key} is needed but no pinned list pins it "
                                  f"(looked in {', '.join(spec.pinned_lists)})")
        name, version = pins[key]
        closure[key] = version
        if key in leaves:
            continue
        meta_name = alias.get(key, name)
        try:
            dist = md.distribution(meta_name)
        except md.PackageNotFoundError:
            raise DerivationError(f"{image}: {meta_name} is not installed in this environment; "
                                  "run `make setup` and use scripts/with-env") from None
        if dist.version != version:
            raise DerivationError(f"{image}: environment has {meta_name}=={dist.version}, but the "
                                  f"pinned lists say {name}=={version}; run `make setup`")
        requires_python = dist.metadata.get("Requires-Python")
        if key not in apt and requires_python and not SpecifierSet(requires_python).contains(
                Version(python), prereleases=True):
            raise DerivationError(f"{image}: {name}=={version} requires Python {requires_python}, "
                                  f"the image has Python {python}")
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not Marker(str(req.marker)).evaluate(env):
                continue
            dep = canonicalize_name(req.name)
            if dep in pins and not req.specifier.contains(pins[dep][1], prereleases=True):
                raise DerivationError(f"{image}: {name} needs {req}, pinned {pins[dep][0]}=={pins[dep][1]}")
            todo.append(dep)

    pip = sorted(f"{pins[k][0]}=={v}" for k, v in closure.items() if k not in apt)
    apt_names = sorted(apt[k] for k in closure if k in apt)
    return pip, apt_names


def render_block(pins: list[str]) -> str:
    """The Dockerfile block that installs exactly `pins`, and nothing they might pull in."""
    lines = [BEGIN + " (docker/runtime_requirements.py robot --write; do not edit by hand)",
             "RUN python3 -m pip install --no-cache-dir --no-deps --break-system-packages \\"]
    lines += [f"        {pin} \\" for pin in pins[:-1]] + [f"        {pins[-1]}", END]
    return "\n".join(lines)


_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)


def write_block(dockerfile: Path, pins: list[str]) -> bool:
    """Replace the marked block; return whether the file changed."""
    text = dockerfile.read_text()
    if not _BLOCK.search(text):
        raise DerivationError(f"{dockerfile}: no `{BEGIN}` ... `{END}` block to rewrite")
    new = _BLOCK.sub(lambda _: render_block(pins), text, count=1)
    if new != text:
        dockerfile.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", choices=sorted(IMAGES))
    parser.add_argument("--apt", action="store_true", help="print the apt packages instead")
    parser.add_argument("--write", action="store_true", help="rewrite the image's Dockerfile block")
    parser.add_argument("--python", help="evaluate for this Python (major.minor) instead")
    args = parser.parse_args(argv)
    try:
        pins, apt = derive(args.image, python=args.python)
        if args.write:
            path = REPO / IMAGES[args.image].dockerfile
            print(f"{path.relative_to(REPO)}: {'updated' if write_block(path, pins) else 'already up to date'}")
            return 0
    except DerivationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("\n".join(apt if args.apt else pins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
