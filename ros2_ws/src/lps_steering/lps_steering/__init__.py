"""lps-franka steering: the runtime core (``lps_steering.core``) and ROS nodes (``lps_steering.nodes``)."""
