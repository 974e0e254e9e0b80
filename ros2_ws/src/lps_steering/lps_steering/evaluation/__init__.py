"""Evaluation of steering heads through the real ROS path (sim bridge + policy node over DDS).

    python -m lps_steering.evaluation --config eval.yaml            # a running eval stack
    python -m lps_steering.evaluation --launch --decoder D --head lps=H --episodes 20

Modules: `config` (what runs), `stats` (Wilson intervals, paired comparisons, jerk, summaries),
`report` (markdown, PNG, rich table) and `power` (episodes needed) import no ROS; `ros_client` is
the one ROS client; `runner` ties them together.
"""

from .config import EvalConfig, load_config
from .stats import (
    EpisodeRecord,
    PairedComparison,
    RunSummary,
    mcnemar_p,
    mean_squared_jerk,
    paired_comparison,
    paired_difference_interval,
    phi_coefficient,
    separates,
    summarise,
    wilson_interval,
)

__all__ = ["EvalConfig", "EpisodeRecord", "PairedComparison", "RunSummary", "load_config", "mcnemar_p",
           "mean_squared_jerk", "paired_comparison", "paired_difference_interval", "phi_coefficient", "separates",
           "summarise", "wilson_interval"]
