#!/usr/bin/env bash
# Idempotent set-up of everything lps-franka needs on a fresh machine:
#   1. a project-local virtual environment (.venv) with the pinned Python packages,
#   2. the fix for the ROS wheels' CMake files (they name the wheel builder's Python paths),
#   3. `colcon build` of the ROS workspace (lps_msgs, lps_steering, lps_sim).
# Each step leaves a stamp holding a hash of its inputs and is skipped when the stamp matches,
# so a second run redoes nothing. ORT=gpu installs onnxruntime-gpu instead of onnxruntime.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
ORT=${ORT:-cpu}
PY=${PYTHON:-python3}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# pip warns once per package about index folders of this machine's mirror that lack it: noise.
pip_q() { "$VENV/bin/pip" "$@" 2> >(grep -v '^WARNING: Location' >&2); }

# 1. virtual environment -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PY" -m venv "$VENV"
fi
req_hash=$(hash_of requirements/lock.txt requirements/torch.txt "requirements/ort-$ORT.txt" training/pyproject.toml)
if [ "$(cat "$VENV/.stamp-pip" 2>/dev/null)" != "$req_hash" ]; then
  step "installing pinned packages (onnxruntime: $ORT)"
  # torch first and alone, pinned: an unpinned resolution would pull GBs of CUDA wheels.
  pip_q install --quiet -r requirements/torch.txt
  other=cpu; [ "$ORT" = cpu ] && other=gpu
  pip_q uninstall --quiet -y "$(cut -d= -f1 "requirements/ort-$other.txt")" 2>/dev/null || true
  pip_q install --quiet -r requirements/lock.txt -r "requirements/ort-$ORT.txt"
  pip_q install --quiet --no-deps -e training
  echo "$req_hash" > "$VENV/.stamp-pip"
  rm -f "$VENV/.stamp-cmake"
fi

# 2. CMake path fix ----------------------------------------------------------------------------
if [ ! -f "$VENV/.stamp-cmake" ]; then
  step "pointing the ROS wheels' CMake files at this interpreter"
  "$VENV/bin/python" scripts/fix_rosidl_cmake.py "$VENV"
  touch "$VENV/.stamp-cmake"
fi

# 3. ROS workspace -----------------------------------------------------------------------------
ws_inputs=$(find ros2_ws/src sim -type f \( -name package.xml -o -name setup.py -o -name setup.cfg \
  -o -name CMakeLists.txt -o -name '*.msg' -o -name '*.srv' -o -name '*.action' \) | sort)
# shellcheck disable=SC2086
ws_hash=$(hash_of $ws_inputs; echo "$ws_inputs" | sha256sum | cut -c1-16)
ws_hash=$(echo "$ws_hash" | tr -d '\n')
if [ "$(cat ros2_ws/.stamp-build 2>/dev/null)" != "$ws_hash" ] || [ ! -f ros2_ws/install/setup.bash ]; then
  step "colcon build (ros2_ws/src, sim)"
  (
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV"
    cd ros2_ws
    colcon --log-base log build --symlink-install --base-paths src ../sim \
      --event-handlers console_cohesion- summary+ \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" >build.log 2>&1 \
      || { tail -50 build.log; exit 1; }
  )
  echo "$ws_hash" > ros2_ws/.stamp-build
fi
# 4. Franka model files (from a registry package, not committed; no-op when present) ----------
PYTHONPATH="$ROOT/sim" "$VENV/bin/python" -m lps_sim.assets >/dev/null
step "ready"
