"""Model-based theory of mind: the AutoToM engine (Bayesian inverse planning over LLM-proposed hypotheses
with automated model discovery), baselines (direct, cot, simtom), benchmark loaders and a harness.

Public entry points: `solve` / `asolve` (one question, any method), `posterior_over_hypotheses` (api.py,
used by other parts), `get_method`, `run_bench` (harness.py).
"""

from .api import HypothesisPosterior, posterior_over_hypotheses

__all__ = ["HypothesisPosterior", "posterior_over_hypotheses"]
