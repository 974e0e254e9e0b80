"""The policy node's parameters: declarations, value checks, and what they become at configure.

Every parameter is declared here with its default and description (`ros2 param describe` shows
it). Two are live (`steering_head`, `noise_seed`); every other one is read at configure and
refused while the node is configured, `use_sim_time` included: switching the time source under a
running loop would blind the watchdog (its receipt times and the clock would stop being on the
same time line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from lps_steering.core import DEFAULT_GUARD, NO_HEAD, ControllerConfig

# Parameters read at configure; changing them needs cleanup + configure, so they are refused
# while the node is configured (the descriptor says so too).
_CONFIG_TIME = 'read at configure: change it while unconfigured (cleanup, set, configure)'


def _float(text: str, lo: float, hi: float, *, live: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=text if live else f'{text}; {_CONFIG_TIME}',
        floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])


def _int(text: str, lo: int, hi: int, *, live: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(description=text if live else f'{text}; {_CONFIG_TIME}',
                               integer_range=[IntegerRange(from_value=lo, to_value=hi, step=1)])


def _text(text: str, *, live: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(description=text if live else f'{text}; {_CONFIG_TIME}')


# name -> (default, descriptor). Order is the order of `ros2 param list`.
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    'decoder': ('', _text('path of the decoder .onnx (its manifest .json lies beside it)')),
    'steering_head': (NO_HEAD, _text(
        "path of the steering head .onnx, or 'none' for the frozen base policy. Settable while "
        'configured: the head is loaded and validated in the parameter call and installed '
        'between two control cycles; a refused head leaves the running one in place', live=True)),
    'policy_rate_hz': (0.0, _float(
        "rate of the actions inside a chunk (Hz); 0 = the decoder manifest's, otherwise it must "
        'equal it', 0.0, 1000.0)),
    'command_rate_hz': (100.0, _float('rate of control cycles and commands (Hz)', 1.0, 1000.0)),
    'execute_steps': (4, _int('actions of a chunk executed before the next inference', 1, 256)),
    'temporal_ensemble_decay': (0.0, _float(
        'temporal ensembling of overlapping chunks, weights exp(-m*i); 0 disables ensembling',
        0.0, 10.0)),
    'trigger': ('timer', _text(
        "'timer': fixed-rate loop on the node clock; 'observation': one cycle per joint state")),
    'robot_type': ('fr3', _text("'fr3' or 'panda': joint name prefix and limit table")),
    'joint_states_topic': ('joint_states', _text('sensor_msgs/JointState input')),
    'object_pose_topic': ('object_pose', _text('geometry_msgs/PoseStamped, if the model uses it')),
    'target_pose_topic': ('target_pose', _text('geometry_msgs/PoseStamped, if the model uses it')),
    'command_topic': ('fr3_arm_controller/joint_trajectory', _text(
        'trajectory_msgs/JointTrajectory output (one point per command)')),
    'gripper_command_topic': ('gripper_command', _text('std_msgs/Float64 gripper width output (m)')),
    'readiness_topic': ('', _text(
        "lps_msgs/RobotReadiness input from a hardware supervisor; '' = none (sim). When set, "
        'activation waits for a fresh `ready: true`, and a false or silent readiness holds')),
    'readiness_timeout_ms': (500.0, _float(
        'readiness older than this is stale: activation is refused, a running node holds (ms)',
        10.0, 60000.0)),
    # The core's default, so the guard is on unless a launch turns it off on purpose.
    'guard': (float(DEFAULT_GUARD), _float(
        'run-time trust-region guard for lpds heads (x trust_region_delta): a residual above '
        'guard * delta is scaled back onto that bound; 0 = off', 0.0, 100.0)),
    'noise_seed': (0, _int(
        'seed of the base noise generator. Settable while configured: the generator restarts from '
        'it at the next replan (the evaluator sets it to the episode seed before every episode)',
        0, 2**31 - 1, live=True)),
    'providers': (['CPUExecutionProvider'], _text('ONNX Runtime execution providers, in priority order')),
    'allow_provider_fallback': (False, _text('accept a session that runs on other providers than asked')),
    'intra_op_threads': (1, _int('ONNX Runtime intra-op threads per session', 1, 64)),
    'max_observation_age_ms': (200.0, _float('older observations make the cycle hold (ms)', 1.0, 10000.0)),
    'workspace_min': ([0.2, -0.6, 0.02], _text('lower corner (x, y, z) of the TCP box, base frame (m)')),
    'workspace_max': ([0.85, 0.6, 0.9], _text('upper corner (x, y, z) of the TCP box, base frame (m)')),
    'max_joint_step': (0.02, _float('largest change of a joint command per command period (rad)',
                                    1e-4, 0.2)),
    'jerk_scale': (0.5, _float(
        'fraction of the joint jerk limits the safety filter allows; commands then carry '
        'velocities and holds decelerate to rest. 0 = no jerk limit (holds stop dead)', 0.0, 1.0)),
    'watchdog_timeout_ms': (200.0, _float(
        'joint states that stop arriving, or whose header stamp stops advancing, for this long '
        'make the arm hold (ms); so does a /clock that stops advancing under sim time', 1.0, 10000.0)),
    'future_stamp_tolerance_ms': (100.0, _float(
        'a joint state stamped further ahead of the node clock than this holds (ms); not checked '
        'under sim time, where the node\'s clock lags the sim\'s by design', 0.0, 10000.0)),
    'auto_resume_after_stale': (False, _text(
        'release a hold caused only by staleness (silent or frozen joint states, readiness, the '
        'sim clock, an observation older than max_observation_age_ms such as the object position) '
        'by itself once inputs are fresh; false: every hold waits for ~/resume')),
    'startup_max_joint_state_age_ms': (500.0, _float(
        'activation is refused unless a joint state arrived within this time (ms)', 1.0, 10000.0)),
    'startup_timeout_s': (30.0, _float(
        'how long --autostart keeps retrying activation while joint states or readiness are '
        'missing (s); a lifecycle activate request waits at most 3 s of it', 0.0, 3600.0)),
    'publisher_check_hz': (2.0, _float(
        'rate of the check for other publishers on the joint-state input and the command '
        'topic (Hz); 0 = off', 0.0, 20.0)),
}
LIVE = frozenset({'steering_head', 'noise_seed'})


def check_value(name: str, value: Any, state: str) -> str:
    """Why `value` is refused for `name` in lifecycle `state`; empty string when it is accepted.

    What the descriptors cannot say (choices, vector sizes) and the configure-time rule.
    """
    if name == 'use_sim_time':
        if state != 'unconfigured':
            return (f'`use_sim_time` is read at configure and the node is {state}: cleanup first '
                    '(switching time sources under a running loop blinds the watchdog)')
        return ''
    if name not in PARAMETERS:
        return ''
    v = value
    reason = ''
    if name == 'trigger' and v not in ('timer', 'observation'):
        reason = f"`trigger` must be 'timer' or 'observation', got {v!r}"
    elif name == 'robot_type' and v not in ('fr3', 'panda'):
        reason = f"`robot_type` must be 'fr3' or 'panda', got {v!r}"
    elif name in ('workspace_min', 'workspace_max') and (
            len(v) != 3 or not all(math.isfinite(x) for x in v)):
        reason = f'`{name}` must be 3 finite numbers (x, y, z) in metres, got {list(v)}'
    elif name == 'providers' and (len(v) == 0 or not all(v)):
        reason = f'`providers` must be a non-empty list of provider names, got {list(v)}'
    elif name == 'steering_head' and not v:
        reason = "`steering_head` must be a path to a head .onnx or 'none', got ''"
    if not reason and name not in LIVE and state != 'unconfigured':
        reason = f'`{name}` is read at configure and the node is {state}: cleanup first'
    return reason


def controller_config(p: dict[str, Any]) -> ControllerConfig:
    """The core's configuration from the parameter values (raises ValueError with the reason)."""
    head = p['steering_head']
    return ControllerConfig(
        decoder_path=p['decoder'],
        head_path='' if head == NO_HEAD else head,
        robot=p['robot_type'],
        providers=tuple(p['providers']),
        allow_provider_fallback=p['allow_provider_fallback'],
        intra_op_threads=p['intra_op_threads'],
        command_rate_hz=p['command_rate_hz'],
        execute_steps=p['execute_steps'],
        temporal_ensembling=p['temporal_ensemble_decay'] > 0.0,
        ensemble_decay=p['temporal_ensemble_decay'],
        max_observation_age_s=p['max_observation_age_ms'] / 1e3,
        resume_after_stale=bool(p['auto_resume_after_stale']),
        guard=p['guard'],
        seed=p['noise_seed'],
        max_step_rad=p['max_joint_step'],
        jerk_scale=p['jerk_scale'],  # 0 = off: ControllerConfig reads it as None
        workspace_min=tuple(p['workspace_min']),
        workspace_max=tuple(p['workspace_max']),
    )


@dataclass(frozen=True)
class NodeSettings:
    """The node's own configure-time settings (the controller's are in `ControllerConfig`)."""

    period_s: float
    trigger: str
    sim_time: bool
    max_age_s: float
    watchdog_timeout_s: float
    future_tolerance_s: float
    auto_resume_after_stale: bool
    startup_age_s: float
    startup_timeout_s: float
    readiness_topic: str
    readiness_timeout_s: float
    joint_states_topic: str
    command_topic: str
    publisher_check_hz: float

    @classmethod
    def from_parameters(cls, p: dict[str, Any]) -> NodeSettings:
        return cls(
            period_s=1.0 / p['command_rate_hz'], trigger=p['trigger'], sim_time=bool(p['use_sim_time']),
            max_age_s=p['max_observation_age_ms'] / 1e3, watchdog_timeout_s=p['watchdog_timeout_ms'] / 1e3,
            future_tolerance_s=p['future_stamp_tolerance_ms'] / 1e3,
            auto_resume_after_stale=bool(p['auto_resume_after_stale']),
            startup_age_s=p['startup_max_joint_state_age_ms'] / 1e3, startup_timeout_s=p['startup_timeout_s'],
            readiness_topic=p['readiness_topic'], readiness_timeout_s=p['readiness_timeout_ms'] / 1e3,
            joint_states_topic=p['joint_states_topic'], command_topic=p['command_topic'],
            publisher_check_hz=p['publisher_check_hz'])
