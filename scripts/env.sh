# Source this (or use scripts/with-env) to get the project's environment: the venv, the colcon
# install space, and ROS settings that keep every DDS participant on this machine.
_lps_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$_lps_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_lps_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# colcon's setup scripts reference unset variables; relax nounset while sourcing.
_lps_nounset=$(set -o | awk '$1=="nounset"{print $2}'); set +u
# shellcheck disable=SC1091
source "$_lps_root/ros2_ws/install/setup.bash"
[ "$_lps_nounset" = on ] && set -u
# Discovery stays on loopback: these machines may talk to nothing else.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_HOME="${ROS_HOME:-$_lps_root/.ros}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-$MUJOCO_GL}"
export LPS_ROOT="$_lps_root"
unset _lps_root _lps_nounset
