"""The runtime's controller over the MuJoCo task: one episode (`ControllerEpisode`) and the training env (`ControllerEnv`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lps_sim.tasks import FrankaTask
from lps_steering.core.controller import ControllerConfig, SteeringController
from lps_steering.core.policy import PolicyOutput

from lps_train.pick_place.layout import ACTION_DIM, CHUNK_LENGTH, EXECUTE_STEPS, make_pick_place

LIFT_HEIGHT = 0.02  # m of cube clearance that counts as lifted (for ControllerEnv's lift_bonus)


class _ChunkSlot:
    """Stands in for `SteeredPolicy` inside the controller: hands over the chunk the agent chose.

    Training decides each chunk outside the controller (a torch agent), but everything after that
    (absolute targets, interpolation, safety) must stay the controller's own code.
    """

    head_type = "external"

    def __init__(self) -> None:
        self.chunk: np.ndarray | None = None
        self.observation: np.ndarray | None = None

    def infer(self, observation: np.ndarray, images: Any = None) -> PolicyOutput:
        if self.chunk is None:
            raise RuntimeError("the controller asked for a chunk but none was supplied")
        if not np.allclose(observation, self.observation, rtol=0.0, atol=1e-9):
            raise RuntimeError("the controller replanned on another observation than the agent saw")
        actions, self.chunk = self.chunk, None
        return PolicyOutput(actions=actions, latent=np.zeros(0), delta_sq_norm=math.nan, guard_scale=math.nan,
                            latent_norm=math.nan, inference_ms=0.0)

    def reseed(self, seed: int) -> None:
        pass


@dataclass
class EpisodeResult:
    success: bool
    terminated: bool
    truncated: bool
    steps: int  # command periods
    chunks: int
    holds: int  # command periods the safety filter refused (HOLD)
    limited: int  # command periods the safety filter clipped (LIMITED)
    hold_reason: str = ""  # why the safety filter last held, if it ever did


class ControllerEpisode:
    """One task episode driven by a `SteeringController`, one command period at a time.

    `advance()` runs command periods until the controller is due to infer a new chunk (returning
    the raw observation it will infer from) or the episode ends (returning None).
    """

    def __init__(self, task: FrankaTask, controller: SteeringController) -> None:
        self.task, self.controller = task, controller
        self.dt = task.config.control_period_s

    def reset(self, seed: int, profile: str = "nominal") -> np.ndarray:
        self.controller.reset()
        self.obs = self.task.reset(seed, profile)
        self.now = 0.0
        self._feed()
        self.result = EpisodeResult(False, False, False, 0, 0, 0, 0)
        self.done = False
        self.shaped = 0.0
        return self.raw_observation()

    def _feed(self) -> None:
        # What the decoder's layout needs, as the node subscribes to it (derived sources excluded).
        for source in self.controller.required_sources:
            self.controller.observe(source, self.obs[source], self.now)

    def raw_observation(self) -> np.ndarray:
        return self.controller.observation(self.now)

    @property
    def needs_chunk(self) -> bool:
        return self.controller.needs_replan(self.now)

    def period(self) -> None:
        """One command period: controller cycle, then one task step."""
        c = self.controller
        cyc = c.step(self.now, self.obs["arm_joint_positions"])
        if cyc.replanned:
            self.result.chunks += 1
        if cyc.held:
            self.result.holds += 1
            self.result.hold_reason = cyc.safety_reason
        self.result.limited += int(cyc.limited)
        if not cyc.sendable:
            raise RuntimeError(f"controller produced no safe command: {cyc.safety_reason}")
        res = self.task.step(cyc.command, cyc.gripper)
        self.shaped += res.reward
        self.obs = res.observation
        self.now += self.dt
        self._feed()
        self.result.steps += 1
        if res.terminated or res.truncated:
            self.done = True
            self.result.success, self.result.terminated, self.result.truncated = (
                bool(res.success), bool(res.terminated), bool(res.truncated))

    def advance(self) -> np.ndarray | None:
        """Run until the next replan (return its raw observation) or the end (return None)."""
        while not self.done:
            self.period()
            if self.done:
                return None
            if self.needs_chunk:
                return self.raw_observation()
        return None


def controller_config(decoder_path: str | Path, head_path: str | Path | str = "", seed: int = 0,
                      **overrides: Any) -> ControllerConfig:
    """The runtime's defaults (policy_node.yaml) with execute_steps = 4 and no warm-up."""
    return ControllerConfig(decoder_path=str(decoder_path), head_path=str(head_path or ""),
                            execute_steps=EXECUTE_STEPS, seed=seed, warmup_runs=0, **overrides)


class ControllerEnv:
    """`ChunkEnv` over pick_place: one `step` = one chunk executed by the runtime's controller.

    Observations and chunks are raw units (wrap in `lps_train.envs.NormalizedEnv` for the agents). The
    reward is 1.0 when the task succeeds during the step (then the episode terminates), else 0;
    `info["shaped"]` carries the task's shaped reward summed over the step.

    Args:
        decoder_path: exported decoder .onnx: its manifest fixes the observation layout and the
            controller configures exactly as the node would (its ONNX session is not used here).
        profile: lps_sim randomisation profile.
    """

    action_dim, chunk_length = ACTION_DIM, CHUNK_LENGTH

    def __init__(self, decoder_path: str | Path, profile: str = "nominal", task: FrankaTask | None = None,
                 terminate_on_hold: bool = False, lift_bonus: float = 0.0) -> None:
        self.task = task if task is not None else make_pick_place()
        self.profile = profile
        if not 0.0 <= lift_bonus < 1.0:
            raise ValueError(f"`lift_bonus` must be in [0, 1) (success pays 1), got {lift_bonus}")
        # Base failures are mostly grasps that slip (the gripper closes a few cm too high); a
        # one-time reward when the cube first clears LIFT_HEIGHT puts a signal at the grasp
        # instead of 10-20 s later at the placement.
        self.lift_bonus = lift_bonus
        self._lift_paid = False
        # A hold resets chunk execution, so the controller asks for a new chunk one period later:
        # a policy stuck against a limit turns into thousands of 10 ms env steps. Ending the
        # episode there (reward 0) keeps env steps 0.4 s long and marks refused commands as failure.
        self.terminate_on_hold = terminate_on_hold
        self.controller = SteeringController(controller_config(decoder_path))
        self.controller.configure()
        manifest = self.controller.decoder.manifest
        self.observation_layout = tuple((e.name, e.source, e.size) for e in manifest.observation.entries)
        self.obs_dim = manifest.obs_dim
        self.slot = _ChunkSlot()
        self.controller.use_policy(self.slot)  # the agent, not the ONNX session, chooses chunks
        self.episode = ControllerEpisode(self.task, self.controller)
        self._obs: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._obs = self.episode.reset(int(seed or 0), self.profile)
        self._lift_paid = False
        return self._obs.copy()

    def step(self, action_chunk: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        if self._obs is None or self.episode.done:
            raise RuntimeError("call reset() before step() (and after an episode ended)")
        chunk = np.asarray(action_chunk, dtype=np.float64)
        if chunk.shape != (CHUNK_LENGTH, ACTION_DIM):
            raise ValueError(f"`action_chunk` must have shape ({CHUNK_LENGTH}, {ACTION_DIM}), got {chunk.shape}")
        self.slot.chunk, self.slot.observation = chunk, self._obs
        ep = self.episode
        ep.shaped = 0.0
        holds_before = ep.result.holds
        nxt = ep.advance()
        if self.slot.chunk is not None:
            raise RuntimeError("the controller did not take the chunk (it was holding)")
        held = ep.result.holds > holds_before
        done = nxt is None
        if done:
            nxt = ep.raw_observation()
        self._obs = nxt
        r = ep.result
        reward = 1.0 if (done and r.success) else 0.0
        if self.lift_bonus and not self._lift_paid and self.cube_lifted():
            self._lift_paid = True
            reward += self.lift_bonus
        info = {"terminated": bool(done and r.terminated), "truncated": bool(done and r.truncated),
                "success": bool(done and r.success), "shaped": ep.shaped, "holds": r.holds, "held": held}
        if held and self.terminate_on_hold and not done:
            done = True
            info["terminated"] = True
            ep.done = True
        return nxt.copy(), reward, done, info

    def cube_lifted(self) -> bool:
        return float(self.task.object_position()[2]) - self.task.cube_half > LIFT_HEIGHT
