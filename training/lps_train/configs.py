"""The `lps-train` commands' settings as typed dataclasses, and the named presets of the shipped runs.

Every field is a command-line option (`lps-train <command> --help` lists them with the text under
each field); nested algorithm configs are reached with a dot, e.g. `--lpds.delta 4.0`. A preset
(`--preset NAME`) replaces the defaults by the settings of a shipped run; options given beside it
override single fields. Every run writes the settings it ran with next to its outputs
(`<out>.config.json`), and checkpoints carry them too.

The presets are the runs behind `models/pick_place/`: `tests/test_train_presets.py` checks that each
reproduces the configuration its shipped manifest records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from lps_sim.experts import ExpertConfig

from lps_train.dsrl import DSRLConfig
from lps_train.flow import FlowConfig
from lps_train.lpds import LPDSConfig
from lps_train.lps import LPSConfig
from lps_train.meanflow import MeanFlowConfig
from lps_train.pick_place.demos import QUALITIES

DATA = "data/pick_place"
RUNS = "runs/pick_place"
MODELS = "models/pick_place"


@dataclass
class Collect:
    """Scripted demonstrations (or `--policy` rollouts of an exported model) -> .npz dataset."""

    preset: Literal["shipped-demos", "shipped-base-rollouts", "play-careless50", "play-sloppy"] | None = None
    """start from a shipped run's settings: the demonstrations of the shipped base, its 200
    rollouts that the LPS rounds start from, or the scripted play data of the offline LPS head
    (options given beside it still apply)"""
    task: str = ""
    """MuJoCo task (pick_place); empty: the toy `--env`"""
    env: str = "four_modes:symmetric"
    """toy env spec `four_modes:<variant>` (when no `--task`)"""
    policy: str = ""
    """pick_place: roll out this exported decoder (.onnx) instead of the scripted expert"""
    head: str = ""
    """with `--policy`: the steering head .onnx (empty: the frozen base policy)"""
    terminate_on_hold: bool = False
    """with `--policy`: a chunk the safety filter refuses ends the episode as a failure (terminal)"""
    quality: str = "noisy"
    """demonstration quality, a key of `lps_train.pick_place.demos.QUALITIES` (clean, noisy, sloppy,
    careful, mixed, sim_clean, sim_noisy): sets every `--expert.*` field; the fields given beside
    it override single settings"""
    expert: ExpertConfig = field(default_factory=lambda: QUALITIES["noisy"])
    """the scripted operator (pick_place demonstrations)"""
    observation: str = "state"
    """pick_place demonstrations: the observation layout, a key of
    `lps_train.pick_place.layout.OBSERVATION_LAYOUTS` (state; state_velocity adds the joint
    velocities)"""
    profile: str = "nominal"
    """randomisation profile of the task"""
    episodes: int = 400
    """episodes to record (seeds seed..seed+episodes-1)"""
    seed: int = 0
    """first episode seed"""
    out: str = ""
    """output .npz (default: data/<task>/demos_<quality>.npz, or data/<task>/rollouts.npz)"""


@dataclass
class TrainBase:
    """Fit a MeanFlow (one-step) or flow (K-step) decoder on demonstrations."""

    preset: Literal["shipped-meanflow", "shipped-flow"] | None = None
    """start from the settings of a shipped decoder's run"""
    demos: tuple[str, ...] = ()
    """dataset(s) of one task and observation layout, concatenated"""
    decoder: Literal["meanflow", "flow"] = "meanflow"
    """which decoder to fit (the matching `--meanflow.*` or `--flow.*` settings apply)"""
    no_normalize: bool = False
    """identity normalisation (units already about [-1, 1])"""
    successful_only: bool = False
    """fit only the episodes that succeeded"""
    out: str = ""
    """output checkpoint .pt (+ .csv, .png learning curves, .config.json)"""
    meanflow: MeanFlowConfig = field(default_factory=MeanFlowConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def algo_config(self) -> MeanFlowConfig | FlowConfig:
        return self.meanflow if self.decoder == "meanflow" else self.flow


CriticFeatures = Literal["none", "tcp", "tcp-target"]


@dataclass
class TrainHead:
    """Train a steering head (LPS offline, LP-DS or DSRL online) against a frozen decoder."""

    preset: Literal["shipped-lpds", "offline-lps", "shipped-lps", "shipped-dsrl", "paper-dsrl",
                    "paper-lpds"] | None = None
    """start from the settings of a shipped head's run (offline-lps: the LPS head trained on
    scripted data alone; shipped-lps: the first round of the rollout-augmented one, `lps-train
    lps-rounds` runs them all), or of LP-DS at the paper's settings (the comparison's row)"""
    algo: Literal["lps", "lpds", "dsrl"] = "lpds"
    """which head (the matching `--lps.*`, `--lpds.*` or `--dsrl.*` settings apply)"""
    decoder: str = ""
    """decoder checkpoint (.pt) from train-base or import-decoder"""
    decoder_onnx: str = ""
    """online pick_place: the exported decoder (.onnx + manifest) the controller runs"""
    task: str = ""
    """online algorithms: MuJoCo task (pick_place); empty: the toy `--env`"""
    env: str = ""
    """online algorithms: toy env spec `four_modes:<variant>`"""
    profile: str = "nominal"
    """randomisation profile of the training task"""
    terminate_on_hold: bool = False
    """online pick_place: end a training episode (reward 0) when the safety filter holds"""
    lift_bonus: float = 0.0
    """online pick_place: one-time reward when the cube first clears 2 cm (success pays 1)"""
    demos: tuple[str, ...] = ()
    """lps: the offline dataset(s), concatenated"""
    critic_features: CriticFeatures = "none"
    """lpds and lps on pick_place: also give the action critic the TCP position of each executed
    joint target relative to the cube (tcp) or to the cube and the place zone (tcp-target)
    (`lps_train.features`); the exported head is unchanged"""
    out: str = ""
    """output checkpoint .pt (+ .csv, .png learning curves, .config.json)"""
    save_head_every: int = 0
    """lps: also save the head every this many updates as <out>_u<updates>.pt, a checkpoint like the
    final one (export, evaluate) that records its update count, to see where along its training a
    head is good (0: none)"""
    lps: LPSConfig = field(default_factory=LPSConfig)
    lpds: LPDSConfig = field(default_factory=LPDSConfig)
    dsrl: DSRLConfig = field(default_factory=DSRLConfig)

    def algo_config(self) -> LPSConfig | LPDSConfig | DSRLConfig:
        return getattr(self, self.algo)

    def recorded_config(self) -> dict[str, Any]:
        """The `config` a head's checkpoint and manifest record: the algorithm's settings plus the
        options that change what it learns."""
        cfg = dataclasses.asdict(self.algo_config())
        if self.algo == "lpds":
            return cfg | {"trust_region_delta": self.lpds.delta, "critic_features": self.critic_features}
        if self.algo == "lps":
            return cfg | {"critic_features": self.critic_features}
        return cfg


@dataclass
class LpsRounds:
    """LPS in rounds: train, roll the head out in sim, add the rollouts to the data, train again.

    The offline data never shows what a deterministic latent actor gets wrong (stalls, drops,
    refused chunks); each round's head is rolled out for `rollout_episodes` training episodes (a
    refused chunk ending the episode) and the next round trains on all data so far plus these
    rollouts. Rounds do not improve monotonically, so the loop stops at the first round whose own
    rollouts do not succeed more often than the best round's so far, and keeps that best round. The
    choice never looks at evaluation seeds.
    """

    head: TrainHead = field(default_factory=lambda: PRESETS_TRAIN_HEAD["shipped-lps"])
    """the first round's training run (`--head.lps.seed`, `--head.demos`, ...)"""
    decoder_onnx: str = f"{MODELS}/decoder.onnx"
    """the exported decoder the heads are exported for and rolled out with"""
    max_rounds: int = 6
    """most rounds"""
    rollout_episodes: int = 200
    """rollouts of each round's head"""
    rollout_seed: int = 50_000
    """first rollout seed (training seeds: apart from the evaluation's 100000+)"""
    work_dir: str = RUNS
    """where each round's checkpoint and .onnx go"""
    data_dir: str = DATA
    """where each round's rollouts go"""
    out: str = f"{RUNS}/lps_rounds.pt"
    """the kept round's checkpoint is copied here (+ .rounds.json: every round's rollout success)"""


@dataclass
class Export:
    """Checkpoint -> .onnx (+ parity check against torch, + manifest for pick_place)."""

    checkpoint: str
    """decoder or head checkpoint (.pt)"""
    out: str
    """output .onnx (the manifest is written beside it as .json)"""
    decoder_onnx: str = ""
    """heads: the exported decoder they steer (default: the one recorded at training)"""


@dataclass
class ImportDecoder:
    """Exported decoder (.onnx + manifest) -> torch checkpoint, to train heads on a shipped decoder."""

    onnx: str
    """the exported decoder, e.g. models/pick_place/decoder.onnx"""
    like: str
    """a decoder checkpoint of the same architecture (train-base); only its structure is used"""
    out: str
    """output checkpoint .pt"""


@dataclass
class Evaluate:
    """Success of exported models through the runtime's SteeringController (no ROS)."""

    decoder: str = f"{MODELS}/decoder.onnx"
    """the exported decoder"""
    head: tuple[str, ...] = ("none", "lpds", "lpds_paper", "lps", "lps_rounds")
    """'none' (frozen base), a head name under <decoder dir>/heads/, or an .onnx path"""
    episodes: int = 100
    """episodes per head"""
    profile: str = "nominal"
    """randomisation profile"""
    seed: int = 100_000
    """first episode seed (episode k: seed + k)"""
    record: bool = False
    """write the results into the manifests' provenance.metrics"""
    out: str = ""
    """JSON file for the results (+ .config.json)"""
    png: str = ""
    """bar chart of the success rates with their Wilson intervals"""


@dataclass
class Convert:
    """Offline data of another format -> the trajectory dataset folder (docs/datasets.md)."""

    source: Literal["lerobot", "ogbench", "mcap", "pick-place"]
    """the input's format: a LeRobotDataset v3 folder, an OGBench .npz, the stack's MCAP recordings, or
    this project's pick_place demonstrations (`lps-train collect` without --policy)"""
    input: tuple[str, ...]
    """the input: a LeRobot folder, an .npz, .mcap files (one episode each), or pick_place demonstration
    .npz files (concatenated)"""
    out: str
    """the dataset folder to write"""
    task: str = ""
    """ogbench: the single-task env whose rewards to relabel (e.g. cube-single-singletask-task2-v0); empty:
    reward-free play data"""
    observation_keys: tuple[str, ...] = ("observation.state",)
    """lerobot: the vector features that make the observation, in order"""
    action_key: str = "action"
    """lerobot: the action feature"""
    decoder_onnx: str = ""
    """mcap: the exported decoder whose manifest names the observation layout to read off the topics
    (empty: the pick_place layout)"""
    namespace: str = ""
    """mcap: the namespace of the recorded topics"""


@dataclass
class TrainOffline:
    """LPS from a trajectory dataset alone: MeanFlow decoder and latent head -> ONNX + manifests.

    The defaults are the reference's OGBench settings: chunks of 5, two critics 4x256 with the minimum
    in the target, the latent actor 2x256 through a 4x512 MeanFlow decoder trained jointly, Adam 3e-4,
    batch 256, gamma 0.99, tau 0.005, 1M steps."""

    dataset: str = ""
    """the dataset folder (lps-train convert)"""
    out: str = ""
    """output folder: decoder.onnx, heads/lps.onnx (+ manifests), checkpoints, learning curves"""
    name: str = ""
    """manifest name prefix (default: the dataset folder's name)"""
    chunk_length: int = 5
    """actions per chunk H (the latent has H x action_dim values)"""
    normalize: bool = True
    """standardise observations and actions with the dataset's mean and std (the manifests carry them);
    off: the raw units (OGBench's are already about [-1, 1], as the reference uses them)"""
    decoder_training: Literal["joint", "frozen"] = "joint"
    """joint: the decoder's BC loss in the same update as critics and actor (the reference); frozen: the
    decoder fitted first for `--decoder-steps`, then critics and actor through it"""
    decoder_steps: int = 100_000
    """frozen decoder: its own gradient steps"""
    action_bound: float = 0.0
    """|a| <= this in the dataset's raw action units where the critics and the actor read decoded actions
    (0: unbounded); the reference clips OGBench's decoder outputs to the action space, [-1, 1]"""
    device: str = "cpu"
    """torch device the networks train on (e.g. cuda); the exported models run on ONNX Runtime as always"""
    decoder_checkpoint: str = ""
    """frozen decoder: reuse this decoder.pt (from an earlier train-offline on data with the same observations
    and actions, e.g. another task's relabelling of the same play data) instead of fitting one"""
    checkpoint_every: int = 0
    """lps: updates between checkpoints in <out>/resume.pt, which is also written once a frozen decoder is
    fitted and at the last update (0: none). The same command started again continues from it, and with more `--lps.steps` a
    finished run goes on: a long budget can run in stretches (a session, a borrowed GPU)"""
    algo: Literal["lps", "dsrl"] = "lps"
    """lps: LPS (`--lps.*`); dsrl: the noise-aliased DSRL baseline (`--dsrl.*`, variant na) through a
    frozen decoder (`--decoder-training frozen`), with no env steps"""
    dsrl_steps: int = 1_000_000
    """dsrl: gradient steps (the LPS reference's budget)"""
    lps: LPSConfig = field(default_factory=lambda: LPSConfig(steps=1_000_000, hidden=256, critic_layers=4,
                                                              actor_layers=2, log_every=1000))
    dsrl: DSRLConfig = field(default_factory=lambda: DSRLConfig(log_every=1000))
    meanflow: MeanFlowConfig = field(default_factory=lambda: MeanFlowConfig(hidden=512, layers=4, lr=3e-4,
                                                                            ema_decay=0.0))


# ---------------------------------------------------------------------------------------------
# The shipped runs (models/pick_place/**.json record them)
# ---------------------------------------------------------------------------------------------
PRESETS_COLLECT: dict[str, Collect] = {
    # Two operators: careful ones, and in 15% of the episodes a careless one who closes the gripper
    # 3 cm above the grasp point (docs/training.md, "The base decoder").
    "shipped-demos": Collect(
        preset="shipped-demos", task="pick_place", episodes=800, quality="careful",
        expert=dataclasses.replace(QUALITIES["careful"], early_close_prob=0.15, early_close=0.03),
        seed=0, out=f"{DATA}/demos_mixed15.npz"),
    "shipped-base-rollouts": Collect(
        preset="shipped-base-rollouts", task="pick_place", policy=f"{MODELS}/decoder.onnx", episodes=200,
        seed=40_000, terminate_on_hold=True, out=f"{DATA}/rollouts_hold.npz"),
    # Scripted operators who sometimes fail, for LPS with no learned policy in its data: careful ones of whom
    # half close 3 cm above the grasp point (46% succeed), and sloppy ones (docs/training.md, "LPS").
    "play-careless50": Collect(
        preset="play-careless50", task="pick_place", episodes=300, quality="careful",
        expert=dataclasses.replace(QUALITIES["careful"], early_close_prob=0.5, early_close=0.03),
        seed=20_000, out=f"{DATA}/play_careless50.npz"),
    "play-sloppy": Collect(
        preset="play-sloppy", task="pick_place", episodes=100, quality="sloppy", expert=QUALITIES["sloppy"],
        seed=30_000, out=f"{DATA}/play_sloppy.npz"),
}

_DECODER = dict(seed=0, steps=24_000, hidden=512, layers=3, lr=1e-3, ema_decay=0.998)
PRESETS_TRAIN_BASE: dict[str, TrainBase] = {
    "shipped-meanflow": TrainBase(preset="shipped-meanflow", demos=(f"{DATA}/demos_mixed15.npz",),
                                  decoder="meanflow", meanflow=MeanFlowConfig(**_DECODER),
                                  out=f"{RUNS}/mf_mixed15.pt"),
    "shipped-flow": TrainBase(preset="shipped-flow", demos=(f"{DATA}/demos_mixed15.npz",), decoder="flow",
                              flow=FlowConfig(**_DECODER), out=f"{RUNS}/flow_mixed15.pt"),
}

# The shipped LPS settings, shared by both shipped LPS heads (they differ in data and seed).
_LPS = dict(steps=5000, hidden=256, critic_layers=3, actor_layers=2, critic_steps=4, actor_q="min", critics=10)
PRESETS_TRAIN_HEAD: dict[str, TrainHead] = {
    # Q^A on the 4 executed actions of each chunk, faster critics, a hold ends the training episode;
    # delta 4 (docs/training.md, "LP-DS").
    "shipped-lpds": TrainHead(
        preset="shipped-lpds", algo="lpds", decoder=f"{RUNS}/mf_mixed15.pt", decoder_onnx=f"{MODELS}/decoder.onnx",
        task="pick_place", terminate_on_hold=True, out=f"{RUNS}/lpds.pt",
        lpds=LPDSConfig(seed=1, total_steps=40_000, delta=4.0, critic_steps=4, time_budget_s=1500.0,
                        critic_lr=1e-3, latent_critic_lr=1e-3, tau=0.01, gamma=0.98, project=False)),
    # Ten critics read by their minimum, which also see the TCP relative to the cube and the zone;
    # trained on the exported decoder's own weights (import-decoder) (docs/training.md, "LPS").
    "shipped-lps": TrainHead(
        preset="shipped-lps", algo="lps", decoder=f"{RUNS}/decoder_shipped.pt", critic_features="tcp-target",
        demos=(f"{DATA}/demos_mixed15.npz", f"{DATA}/rollouts_hold.npz"), out=f"{RUNS}/lps_s1_round1.pt",
        lps=LPSConfig(seed=1, **_LPS)),
    # The shipped LPS head: shipped-lps's settings on scripted data alone (the demonstrations and
    # the two play datasets), no environment step of a learned policy (docs/training.md, "LPS").
    "offline-lps": TrainHead(
        preset="offline-lps", algo="lps", decoder=f"{RUNS}/decoder_shipped.pt", critic_features="tcp-target",
        demos=(f"{DATA}/demos_mixed15.npz", f"{DATA}/play_careless50.npz", f"{DATA}/play_sloppy.npz"),
        out=f"{RUNS}/lps.pt", lps=LPSConfig(seed=0, **_LPS)),
    # DSRL-NA at its authors' settings but LP-DS's network width and warm-up, with LP-DS's env-step
    # budget and episode ending (docs/training.md, "DSRL").
    "shipped-dsrl": TrainHead(
        preset="shipped-dsrl", algo="dsrl", decoder=f"{RUNS}/decoder_shipped.pt", decoder_onnx=f"{MODELS}/decoder.onnx",
        task="pick_place", terminate_on_hold=True, out=f"{RUNS}/dsrl.pt",
        dsrl=DSRLConfig(seed=1, total_steps=17_800, hidden=256, torch_threads=2)),
    # shipped-dsrl with the authors' robomimic reward (`reward_offset: 1` per policy step, summed over
    # the 4 executed actions of a chunk as their multi-step wrapper does): a chunk costs 4 until the
    # success. Robomimic episodes end only in success or time-out; the charge for ending in failure
    # (a hold here) is this project's, so that the cost cannot be dodged by failing early. shipped-dsrl's 0/1 reward sat under an entropy bonus of about 40 per chunk and its
    # critic's values rose from 6 to 199 in 750 env steps (docs/training.md, "DSRL").
    "paper-dsrl": TrainHead(
        preset="paper-dsrl", algo="dsrl", decoder=f"{RUNS}/decoder_shipped.pt", decoder_onnx=f"{MODELS}/decoder.onnx",
        task="pick_place", terminate_on_hold=True, out=f"{RUNS}/dsrl_paper.pt",
        dsrl=DSRLConfig(seed=1, total_steps=17_800, hidden=256, torch_threads=2, reward_offset=4.0)),
    # LP-DS at the paper's settings (delta 0.35, one-step TD on the whole chunk), latents on the
    # decoder's sphere, with the shipped run's env-step budget and episode ending.
    "paper-lpds": TrainHead(
        preset="paper-lpds", algo="lpds", decoder=f"{RUNS}/decoder_shipped.pt", decoder_onnx=f"{MODELS}/decoder.onnx",
        task="pick_place", terminate_on_hold=True, out=f"{RUNS}/lpds_paper.pt",
        lpds=LPDSConfig(seed=1, total_steps=17_800)),
}

PRESETS: dict[str, dict[str, Any]] = {
    "collect": PRESETS_COLLECT, "train-base": PRESETS_TRAIN_BASE, "train-head": PRESETS_TRAIN_HEAD,
}
