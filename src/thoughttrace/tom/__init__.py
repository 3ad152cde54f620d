"""Model-based theory of mind: the AutoToM engine (Bayesian inverse planning over LLM-proposed hypotheses
with automated model discovery), baselines (direct, cot, simtom), benchmark loaders and a harness.

Public entry points: `solve` / `asolve` (one question, any method), `posterior_over_hypotheses` (api.py,
the stable API other parts build on), `get_method`, `harness.run_bench`.
"""

from .api import HypothesisPosterior, posterior_over_hypotheses
from .autotom import AutoToM, AutoToMConfig
from .methods import METHODS, asolve, get_method, solve
from .result import Answer

__all__ = [
    "METHODS", "Answer", "AutoToM", "AutoToMConfig", "HypothesisPosterior", "asolve", "get_method",
    "posterior_over_hypotheses", "solve",
]
