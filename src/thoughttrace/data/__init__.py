"""The dataset core: schema, streaming I/O, validation, importers, exporters, statistics, taxonomy."""

from .io import (
    DatasetError,
    LineError,
    ReadReport,
    iter_conversations,
    read_conversations,
    validate_file,
    write_conversations,
)
from .schema import FORMAT_VERSION, Conversation, Message, Thought
from .stages import message_stages, stage_bin, stage_names
from .stats import DatasetStats, StatsAccumulator, compute_stats
from .synthetic import generate_conversations, write_synthetic
from .taxonomy import DOMAIN_LABELS, REACTION_LABELS, REASON_LABELS, Taxonomy, load_taxonomy

__all__ = [
    "DOMAIN_LABELS", "DatasetError", "FORMAT_VERSION", "Conversation", "LineError", "Message", "REACTION_LABELS",
    "REASON_LABELS", "ReadReport", "Taxonomy", "Thought", "iter_conversations", "load_taxonomy",
    "read_conversations", "validate_file", "write_conversations",
    "DatasetStats", "StatsAccumulator", "compute_stats", "generate_conversations", "message_stages", "stage_bin", "stage_names", "write_synthetic",
]
