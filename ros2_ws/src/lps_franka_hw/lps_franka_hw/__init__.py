"""Real-Franka deployment pieces of lps-franka.

Plain modules (no rclpy, testable without ROS): `gripper_logic`, `realsense_source`,
`perception`, `startup`. ROS nodes: `gripper_bridge`, `realsense_node`, `perception_node`;
ROS helpers for the policy node: `recovery`.
"""
