"""franka_bringup's `franka.launch.py` interface per franka_ros2 release, as the releases declare it.

Read from frankarobotics/franka_ros2 at the tags named (franka_bringup/launch/franka.launch.py and
franka_bringup/package.xml). `version` is what the release's package.xml says, which is what an
installed copy reports through the ament index (v3.1.1's says 3.1.0). `arguments` maps every
argument the file declares to its default, in declaration order; `robot_state_broadcaster` says
when the file spawns franka_robot_state_broadcaster.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTROLLERS_DEFAULT = "$(find-pkg-share franka_bringup)/config/controllers.yaml"


@dataclass(frozen=True)
class Release:
    tag: str
    version: str
    arguments: dict[str, str]

    def spawns_robot_state_broadcaster(self, args: dict[str, str]) -> bool:
        """v3.2.x: unless use_fake_hardware; v3.3.0+: also only if load_franka_robot_state_broadcaster."""
        if args.get("use_fake_hardware", "false").lower() == "true":
            return False
        return args.get("load_franka_robot_state_broadcaster", "true").lower() == "true"


_V32 = {"robot_type": "", "arm_prefix": "", "namespace": "", "robot_ip": "172.16.0.3",
        "load_gripper": "false", "use_fake_hardware": "false", "fake_sensor_commands": "false",
        "joint_state_rate": "30", "controllers_yaml": CONTROLLERS_DEFAULT}
_V34 = {k: v for k, v in _V32.items() if k != "controllers_yaml"} | {
    "load_franka_robot_state_broadcaster": "true", "controllers_yaml": CONTROLLERS_DEFAULT}

RELEASES = {
    # Jazzy, supported: robot_type, namespace, joint_state_rate, controllers_yaml all declared.
    "v3.4.0": Release("v3.4.0", "3.4.0", _V34),
    "v3.2.0": Release("v3.2.0", "3.2.0", _V32),
    # Jazzy, refused: the robot type is `arm_id`, and `urdf_file` is declared.
    "v3.1.1": Release("v3.1.1", "3.1.0", {
        "arm_id": "", "arm_prefix": "", "namespace": "", "urdf_file": "fr3/fr3.urdf.xacro",
        "robot_ip": "172.16.0.3", "load_gripper": "false", "use_fake_hardware": "false",
        "fake_sensor_commands": "false", "joint_state_rate": "30",
        "controllers_yaml": CONTROLLERS_DEFAULT}),
    # Humble, the last of the frankaemika repository: no robot_type, namespace, controllers_yaml.
    "v0.1.13": Release("v0.1.13", "0.1.13", {
        "robot_ip": "", "use_rviz": "false", "use_fake_hardware": "false",
        "fake_sensor_commands": "false", "load_gripper": "true"}),
}
