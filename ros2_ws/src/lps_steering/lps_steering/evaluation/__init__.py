"""Evaluation of steering heads through the real ROS path (sim bridge + policy node over DDS).

    python -m lps_steering.evaluation --config eval.yaml            # a running eval stack
    python -m lps_steering.evaluation --launch --decoder D --head lps=H --episodes 20

Modules: `config` (what runs), `stats` (Wilson intervals, jerk, summaries) and `report` (markdown,
PNG, rich table) import no ROS; `ros_client` is the one ROS client; `runner` ties them together.
"""

from .config import EvalConfig, load_config
from .stats import EpisodeRecord, RunSummary, mean_squared_jerk, summarise, wilson_interval

__all__ = ["EvalConfig", "EpisodeRecord", "RunSummary", "load_config", "mean_squared_jerk", "summarise",
           "wilson_interval"]
