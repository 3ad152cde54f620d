"""What thoughts are worth: thought inference, next-message prediction and a user simulator, with judges.

Library entry points (the CLI `thoughttrace eval ...` / `thoughttrace simulate` wraps them):
- `Judge` (rubrics in `evals/rubrics/*.yaml`), `parse_score`, `load_rubric`;
- `ThoughtInferenceEval` (methods `direct`, `model-based`), `NextMessageEval` (conditions `history`,
  `reaction`, `reaction+reason`), `UserSimulator` / `simulate_many`, `SimulatorEval`, `Rejudge`;
- `ItemStore` (per-item JSONL, resumable) and `check_no_leakage` (the leakage guard).
"""

from .embedding import EmbeddingMetric, load_metric
from .judge import Judge, JudgeResult, parse_score
from .judge_agreement import Rejudge
from .leakage import LeakageError, check_no_leakage, find_leaks
from .next_message import CONDITIONS, NextMessageEval, normalise_conditions
from .resources import Rubric, available_rubrics, load_prompt, load_rubric
from .simulator import SimulationConfig, SimulationJob, UserSimulator, jobs_for, simulate_many
from .simulator_eval import SimulatorEval
from .stats import (
    SCALES,
    Agreement,
    Estimate,
    Scale,
    Share,
    agreement,
    bootstrap_ci,
    mean_ci,
    paired_difference,
    paired_relative_gain,
    share_of_gain,
    wilson_ci,
)
from .store import ItemStore, RunStats, run_items
from .thought_inference import ThoughtInferenceEval
from .transcript import ClipConfig

__all__ = [
    "CONDITIONS", "Agreement", "ClipConfig", "EmbeddingMetric", "Estimate", "ItemStore", "Judge", "JudgeResult",
    "LeakageError", "NextMessageEval", "Rejudge", "Rubric", "RunStats", "SimulationConfig", "SimulationJob",
    "SimulatorEval", "ThoughtInferenceEval", "UserSimulator", "agreement", "available_rubrics", "bootstrap_ci",
    "check_no_leakage", "find_leaks", "jobs_for", "load_metric", "load_prompt", "load_rubric", "mean_ci",
    "normalise_conditions", "paired_difference", "paired_relative_gain", "share_of_gain", "wilson_ci", "SCALES", "Scale", "Share", "parse_score", "run_items", "simulate_many",
]
