"""MuJoCo Franka simulation for lps-franka: scene, tasks, experts, randomisation, ROS bridge."""
