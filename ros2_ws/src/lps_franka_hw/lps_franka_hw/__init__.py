"""Real-Franka deployment pieces of lps-franka.

Plain modules (no rclpy, testable without ROS): `gripper_logic`, `realsense_source`,
`perception`. ROS nodes: `gripper_bridge`, `realsense_node`, `perception_node`;
ROS helpers for the policy node: `recovery`.
The start-up checks and the joint-state watchdog are plain Python and live in the runtime core:
`lps_steering.core.startup`.
"""
