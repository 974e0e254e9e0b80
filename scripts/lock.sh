#!/usr/bin/env bash
# Re-pin requirements/lock.txt: resolve requirements/base.in (plus the pinned torch) in a scratch
# venv and freeze it. The ROS wheels freeze twice, as `ros-rclpy` and as an inner `rclpy`;
# only the PyPI project names can be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet -r requirements/torch.txt
"$tmp/venv/bin/pip" install --quiet -r requirements/base.in -r requirements/ort-cpu.txt
"$tmp/venv/bin/pip" freeze --exclude-editable >"$tmp/freeze.txt"
python3 - "$tmp/freeze.txt" <<'PY'
import sys

pins = {}
for line in open(sys.argv[1]):
    name, _, version = line.strip().partition("==")
    if version and not name.lower().startswith(("torch", "onnxruntime")):
        pins[name.lower().replace("_", "-")] = f"{name}=={version}"
# The ROS wheels also register an inner egg-info (`rclpy` beside `ros-rclpy`): keep the PyPI name.
out = [pin for norm, pin in pins.items() if f"ros-{norm}" not in pins]
open("requirements/lock.txt", "w").write("\n".join(sorted(out, key=str.lower)) + "\n")
print(f"pinned {len(out)} packages into requirements/lock.txt")
PY
