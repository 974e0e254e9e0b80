"""Runtime core of lps-franka: plain Python over numpy and onnxruntime (never rclpy, never torch).

Modules: `manifest` (model artifact schema), `sessions` (ONNX Runtime sessions), `policy`
(`SteeredPolicy`), `observation`, `kinematics`, `chunking`, `safety`, `startup` (start-up
checks, joint-state watchdog), `controller` (`SteeringController`, the whole cycle the policy
node wraps).
"""

from .controller import ControllerConfig, CycleResult, SteeringController
from .manifest import Manifest, ManifestError, load_manifest, sha256_file
from .observation import MissingObservation, NonFiniteObservation, ObservationError, StaleObservation
from .policy import LoadedModel, PolicyOutput, SteeredPolicy, check_head_matches, load_model
from .safety import SAFETY_HOLD, SAFETY_LIMITED, SAFETY_OK, RobotLimits, SafetyFilter, SafetyResult
from .sessions import ProviderError, create_session
from .startup import StartupReport, StateWatchdog, run_startup_checks

__all__ = [
    "SAFETY_HOLD", "SAFETY_LIMITED", "SAFETY_OK", "ControllerConfig", "CycleResult", "LoadedModel",
    "Manifest", "ManifestError", "MissingObservation", "NonFiniteObservation", "ObservationError",
    "PolicyOutput", "ProviderError", "RobotLimits", "SafetyFilter", "SafetyResult", "StaleObservation",
    "StartupReport", "StateWatchdog", "SteeredPolicy", "SteeringController", "check_head_matches", "create_session", "load_manifest",
    "load_model", "run_startup_checks", "sha256_file",
]
