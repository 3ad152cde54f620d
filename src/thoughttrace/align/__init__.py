"""Thought-guided alignment: rewrites guided by users' reactions, preference pairs, DPO, arena judging.

Pipeline (each step a function here and a `thoughttrace align` command):
`rewrite_conversations` -> `pairs_from_rewrites` (or `import_pairs`) -> `train_dpo` ->
`answer_with_model` / `answer_with_adapter` -> `arun_games` -> `score_arena` -> `results_markdown`.
Heavy libraries (torch, transformers, trl) load only inside the training and adapter functions.
"""

from .answers import Answer, Question, answer_with_adapter, answer_with_model, load_answers, load_questions
from .arena import ArenaResult, arun_games, build_games, index_answers, results_markdown, score_arena
from .bt import BTFit, Games, bootstrap_bt, fit_bt, games_from_arrays
from .judge import Judgment, parse_verdict
from .pairs import Pair, PairReport, Provenance, filter_pairs, import_pairs, pairs_from_rewrites
from .records import FORMAT_VERSION, AlignError, LeakageError
from .rewrite import (
    GUIDES,
    Rewrite,
    RewriteSettings,
    build_prompt,
    check_no_leak,
    rewrite_conversations,
    select_targets,
)
from .style import style_counts
from .train import DPOSettings, load_config, train_dpo

__all__ = [
    "FORMAT_VERSION", "GUIDES", "AlignError", "Answer", "ArenaResult", "BTFit", "DPOSettings", "Games",
    "Judgment", "LeakageError", "Pair", "PairReport", "Provenance", "Question", "Rewrite", "RewriteSettings",
    "answer_with_adapter", "answer_with_model", "arun_games", "bootstrap_bt", "build_games", "build_prompt",
    "check_no_leak", "filter_pairs", "fit_bt", "games_from_arrays", "import_pairs", "index_answers",
    "load_answers", "load_config", "load_questions", "pairs_from_rewrites", "parse_verdict", "results_markdown",
    "rewrite_conversations", "score_arena", "select_targets", "style_counts", "train_dpo",
]
