"""Real-Franka deployment pieces of lps-franka; they plug into the policy node through its topics.

Plain modules (no rclpy, testable without ROS): `gripper_logic`, `realsense_source`,
`perception`, `robot_mode`. ROS nodes: `gripper_bridge`, `realsense_node`, `perception_node`,
`supervisor_node` (`franka_supervisor`: lps_msgs/RobotReadiness from franka's robot state, and
`~/recover`).
The start-up checks and the joint-state watchdog are plain Python and live in the runtime core:
`lps_steering.core.startup`.
"""
