"""Test-wide set-up: ROS stays on loopback, in a domain of this run's own, logging under tmp."""

import os
import tempfile

# Before anything imports rclpy: discovery never leaves this machine, and parallel runs (or a
# developer's own ROS graph) do not see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="lps-ros-home-"))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("MUJOCO_GL", "egl")
