"""Test-wide set-up: ROS stays on loopback, in a domain of this run's own, logging under tmp."""

import os
import tempfile

# Before anything imports rclpy: discovery never leaves this machine, and parallel runs (or a
# developer's own ROS graph) do not see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Override, not setdefault: scripts/with-env exports a fixed domain for the demo and benchmarks.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="lps-ros-home-"))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("MUJOCO_GL", "egl")


# ---------------------------------------------------------------------------- model fixtures
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A tiny decoder (sphere latents) and lps/lpds/dsrl heads with manifests, written with the
    `onnx` helper API (no torch; `.decoder_module` / `.head_modules` build torch twins on demand).

    The lpds residual is scaled up (||Delta||^2 well above its trust region delta) so the
    run-time guard has something to bound.
    """
    from lps_train.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"), seed=0, lpds_scale=1.0)


@pytest.fixture(scope="session")
def tiny_models_gaussian(tmp_path_factory):
    """Same shapes as `tiny_models`, another seed, Gaussian latents: a decoder heads do not match."""
    from lps_train.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models_gaussian"), seed=1,
                             latent_geometry="gaussian", head_types=("lpds",))


@pytest.fixture(scope="session")
def load_check():
    """`load_check("trace_episodes")`: a script of training/checks/ as a module (they are scripts,
    not a package)."""
    import importlib.util
    from pathlib import Path

    checks = Path(__file__).resolve().parents[1] / "training" / "checks"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, checks / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
