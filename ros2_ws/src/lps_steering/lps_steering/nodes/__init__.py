"""Thin ROS 2 shells around ``lps_steering.core``: topics, parameters, timing, lifecycle."""
