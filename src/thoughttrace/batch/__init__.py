"""Batch jobs past one machine: shards of the input run on Ray Data workers (or inline), resumable.

Parts hand the engine a picklable `ShardJob`; the engine cuts the input into shards, runs them, writes one
output file per shard plus a done marker, and sums counts and usage. Imports only `data` and `llm`.
"""

from .engine import (
    BATCH_FORMAT_VERSION,
    ENGINES,
    SHARD_FORMATS,
    BatchError,
    BatchResult,
    ModelRecipe,
    Recipes,
    ShardJob,
    build_models,
    finished_shards,
    iter_records,
    run_batch,
    worker_error,
    write_merged,
)
from .sources import ShardPlan, plan_shards, read_lines, read_shard

__all__ = [
    "BATCH_FORMAT_VERSION", "ENGINES", "SHARD_FORMATS", "BatchError", "BatchResult", "ModelRecipe", "Recipes", "ShardJob",
    "ShardPlan", "build_models", "read_lines", "finished_shards", "iter_records", "plan_shards", "read_shard", "run_batch", "worker_error",
    "write_merged",
]
