"""Runtime core of lps-franka: plain Python over numpy and onnxruntime (never rclpy, never torch).

Modules: `robot` (joint names and limits per robot), `manifest` (model artifact schema),
`sessions` (ONNX Runtime sessions), `policy` (`SteeredPolicy`, head checks), `observation`,
`kinematics`, `chunking`, `measurement` (run-time plausibility of the measured joints), `safety`
(the command filter), `startup` (start-up checks, joint-state watchdog), `controller`
(`SteeringController`, the whole cycle the policy node wraps).
"""

from .controller import ControllerConfig, CycleResult, SteeringController
from .manifest import Manifest, ManifestError, load_manifest, sha256_file
from .measurement import MeasurementConfig, MeasurementMonitor, PlausibilityFault
from .observation import MissingObservation, NonFiniteObservation, ObservationError, StaleObservation
from .policy import (
    DEFAULT_GUARD,
    NO_HEAD,
    HeadRefused,
    LoadedModel,
    PolicyOutput,
    SteeredPolicy,
    check_head_matches,
    check_head_outputs,
    load_model,
)
from .robot import ARM_DOF, GRIPPER_MAX_WIDTH_M, ROBOTS, RobotLimits, arm_joint_names, finger_joint_names
from .safety import SAFETY_HOLD, SAFETY_LIMITED, SAFETY_OK, SafetyFilter, SafetyResult
from .sessions import ProviderError, create_session
from .startup import StartupReport, StateWatchdog, run_startup_checks

__all__ = [
    "ARM_DOF", "DEFAULT_GUARD", "GRIPPER_MAX_WIDTH_M", "NO_HEAD", "ROBOTS", "SAFETY_HOLD", "SAFETY_LIMITED",
    "SAFETY_OK", "ControllerConfig", "CycleResult", "HeadRefused", "LoadedModel", "Manifest", "ManifestError",
    "MeasurementConfig", "MeasurementMonitor", "MissingObservation", "NonFiniteObservation", "ObservationError",
    "PlausibilityFault", "PolicyOutput", "ProviderError", "RobotLimits", "SafetyFilter", "SafetyResult",
    "StaleObservation", "StartupReport", "StateWatchdog", "SteeredPolicy", "SteeringController",
    "arm_joint_names", "check_head_matches", "check_head_outputs", "create_session", "finger_joint_names",
    "load_manifest", "load_model", "run_startup_checks", "sha256_file",
]
