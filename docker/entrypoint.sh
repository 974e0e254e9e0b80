#!/usr/bin/env bash
# Entry point of the robot image: ROS, then franka_ros2, then this workspace, then the command.
set -eo pipefail
# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /opt/franka/install/setup.bash
# shellcheck disable=SC1091
source /opt/lps/ros2_ws/install/setup.bash
exec "$@"
