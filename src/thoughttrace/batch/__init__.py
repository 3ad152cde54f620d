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
    ShardJob,
    finished_shards,
    iter_records,
    run_batch,
    worker_error,
)
from .sources import ShardPlan, plan_shards, read_shard

__all__ = [
    "BATCH_FORMAT_VERSION", "ENGINES", "SHARD_FORMATS", "BatchError", "BatchResult", "ModelRecipe", "ShardJob",
    "ShardPlan", "finished_shards", "iter_records", "plan_shards", "read_shard", "run_batch", "worker_error",
]
