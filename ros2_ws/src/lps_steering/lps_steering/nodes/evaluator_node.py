"""``evaluator``: the evaluation runner behind the ``run_evaluation`` action (lps_msgs/RunEvaluation).

One goal = N seeded episodes of one head under one profile, through the eval stack it runs beside
(sim bridge in lock-step, policy node triggered by observations). The episodes are driven by
`lps_steering.evaluation.ros_client.EvaluationClient`, the same code as the CLI, so results are
the same whichever way a run is asked for. Feedback after every episode; goals run one at a time.
"""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import Any

import rclpy
from lps_msgs.action import RunEvaluation
from lps_msgs.msg import EpisodeResult
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from lps_steering.evaluation.config import NO_HEAD, EvalConfig
from lps_steering.evaluation.ros_client import EvaluationClient, EvaluationError
from lps_steering.evaluation.stats import EpisodeRecord, summarise

PARAMETERS: dict[str, tuple[Any, str]] = {
    'policy_node': ('policy_node', 'name of the policy node, in this node\'s namespace'),
    'task': ('pick_place', 'task of goals that leave `task` empty'),
    'stall_timeout_s': (60.0, 'wall seconds without task_status progress before a goal is aborted'),
}


def episode_msg(e: EpisodeRecord, task: str) -> EpisodeResult:
    return EpisodeResult(
        episode_id=e.episode_id, seed=e.seed, task=task, profile=e.profile, head_id=e.head_id,
        success=e.success, steps=e.steps, time_to_success=e.time_to_success, mean_jerk=e.mean_sq_jerk,
        inference_ms_p50=_pct(e.inference_ms, 50), inference_ms_p99=_pct(e.inference_ms, 99),
        delta_sq_norm_mean=sum(e.delta_sq_norm) / len(e.delta_sq_norm) if e.delta_sq_norm else math.nan,
        termination=e.termination)


def _pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else math.nan


class EvaluatorNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('evaluator', **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        self._busy = threading.Lock()
        self._server = ActionServer(self, RunEvaluation, 'run_evaluation', self._execute,
                                    goal_callback=self._on_goal, cancel_callback=lambda _g: CancelResponse.ACCEPT)

    def _on_goal(self, goal: RunEvaluation.Goal) -> GoalResponse:
        if goal.num_episodes < 1:
            self.get_logger().error(f'goal refused: `num_episodes` must be >= 1, got {goal.num_episodes}')
            return GoalResponse.REJECT
        head = goal.steering_head
        if head not in ('', NO_HEAD) and not Path(head).is_file():
            self.get_logger().error(f'goal refused: `steering_head` {head!r} is not a file')
            return GoalResponse.REJECT
        if self._busy.locked():
            self.get_logger().error('goal refused: an evaluation is running')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, handle: Any) -> RunEvaluation.Result:
        goal, result = handle.request, RunEvaluation.Result()
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        task = goal.task or p['task']
        head = goal.steering_head
        config = EvalConfig(
            heads={'goal': head or NO_HEAD}, profiles=[goal.profile or 'nominal'], episodes=goal.num_episodes,
            seed=goal.seed, task=task, episode_timeout_s=float(goal.episode_timeout_s),
            namespace=self.get_namespace(), policy_node=p['policy_node'], stall_timeout_s=p['stall_timeout_s'])
        records: list[EpisodeRecord] = []
        with self._busy:
            try:
                with EvaluationClient(config) as client:
                    client.prepare()
                    dt = client.command_period()
                    if head:  # empty: keep the head the node runs
                        client.set_head(config.head_path('goal'))
                    for i in range(goal.num_episodes):
                        if handle.is_cancel_requested:
                            handle.canceled()
                            result.message = f'canceled after {len(records)} episodes'
                            return self._fill(result, records, task)
                        records.append(client.run_episode(head or 'current', config.profiles[0],
                                                          goal.seed + i, dt))
                        done = records[-1]
                        ok = sum(r.success for r in records)
                        handle.publish_feedback(RunEvaluation.Feedback(
                            episodes_done=len(records), successes=ok, success_rate=ok / len(records),
                            last_episode=episode_msg(done, task)))
            except (EvaluationError, ValueError) as exc:
                self.get_logger().error(f'evaluation aborted: {exc}')
                handle.abort()
                result.message = str(exc)
                return self._fill(result, records, task)
        handle.succeed()
        result.success = True
        result.message = f'{len(records)} episodes'
        return self._fill(result, records, task)

    @staticmethod
    def _fill(result: RunEvaluation.Result, records: list[EpisodeRecord], task: str) -> RunEvaluation.Result:
        result.episodes = len(records)
        result.episodes_detail = [episode_msg(r, task) for r in records]
        if records:
            s = summarise(records[0].head, records[0].profile, records)
            result.successes, result.success_rate = s.successes, s.rate
            result.wilson_low, result.wilson_high = s.wilson_low, s.wilson_high
        return result


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=sys.argv if args is None else args)
    node = EvaluatorNode()
    # Two threads: a long goal must not block cancel requests and parameter services.
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
