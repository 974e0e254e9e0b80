"""Baseline peer for the benchmarks: answers each JointState with a JointTrajectory at once.

No policy, no safety filter: what remains is the DDS round trip and rclpy's own cost, the floor
that the policy node is compared against (bench_node_loop.py, bench_bridge_lockstep.py).
"""

import rclpy
from builtin_interfaces.msg import Duration
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


def main() -> None:
    rclpy.init()
    node = rclpy.create_node('echo')
    out = JointTrajectory(joint_names=[f'fr3_joint{i}' for i in range(1, 8)],
                          points=[JointTrajectoryPoint(time_from_start=Duration(nanosec=10_000_000))])
    pub = node.create_publisher(JointTrajectory, 'fr3_arm_controller/joint_trajectory', 10)

    def on_state(msg: JointState) -> None:
        out.points[0].positions = msg.position[:7]
        pub.publish(out)

    node.create_subscription(JointState, 'joint_states', on_state, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except BaseException:  # SIGINT / SIGTERM from the benchmark ends it
        pass


if __name__ == '__main__':
    main()
