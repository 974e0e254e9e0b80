"""Stand-in of controller_manager's `spawner`: `spawner NAME [--controller-manager CM] [--ros-args ...]`.

Asks the stand-in controller manager (tests/franka_standin/bringup.py) to load, configure and
activate NAME through its `spawn` parameter, and exits as the real spawner does: 0 when the
controller is active, 1 with "Failed loading controller NAME" when the manager refused it, and 0
on Ctrl-C ("KeyboardInterrupt received! Exiting....", further signals ignored).
"""

from __future__ import annotations

import argparse
import signal
import sys

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters


def main(argv: list[str] | None = None) -> int:
    try:
        return _spawn(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("KeyboardInterrupt received! Exiting....", flush=True)
        return 0


def _spawn(argv: list[str]) -> int:
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    own = argv[:len(argv) - len(ros_args)]
    cli = argparse.ArgumentParser()
    cli.add_argument("controller_names", nargs="+")
    cli.add_argument("-c", "--controller-manager", default="controller_manager")
    cli.add_argument("--controller-manager-timeout", type=float, default=0.0)
    opts = cli.parse_args(own)
    rclpy.init(args=["spawner", *ros_args])
    node = rclpy.create_node("spawner_" + opts.controller_names[0])
    cm = opts.controller_manager
    if not cm.startswith("/"):
        ns = node.get_namespace().rstrip("/")
        cm = f"{ns}/{cm}"
    client = node.create_client(SetParameters, f"{cm}/set_parameters")
    try:
        timeout = opts.controller_manager_timeout or None
        while not client.wait_for_service(timeout_sec=1.0):
            if timeout is not None:
                timeout -= 1.0
                if timeout <= 0:
                    node.get_logger().fatal(f"Controller manager {cm} not available")
                    return 1
        for name in opts.controller_names:
            req = SetParameters.Request(parameters=[Parameter(name="spawn", value=ParameterValue(
                type=ParameterType.PARAMETER_STRING, string_value=name))])
            future = client.call_async(req)
            rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
            result = future.result()
            if result is None or not result.results[0].successful:
                node.get_logger().fatal(f"Failed loading controller {name}")
                return 1
            node.get_logger().info(f"Configured and activated {name}")
        return 0
    finally:
        # The work is done (or failed): a Ctrl-C during teardown must not turn it into a crash.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
