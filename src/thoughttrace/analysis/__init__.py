"""Statistics, stage curves, turn relations, semantic shift, figures and the HTML report.

`analyze_file(path, out_dir, AnalysisOptions(...))` reproduces the release's analyses on any dataset in
the ThoughtTrace schema; the parts (`TypeShares`, `StageCurves`, `RelationTurns`, `PairCollector`) are
streaming accumulators usable on their own.
"""

from .labels import LabelOverlay, load_label_records
from .pipeline import (
    STATS_FORMAT_VERSION,
    AnalysisOptions,
    AnalysisResult,
    analyze_conversations,
    analyze_file,
)
from .relations import RELATION_LABELS, RelationTurns
from .semantic import PairCollector, semantic_shift
from .shares import StageCurves, TypeShares

__all__ = [
    "RELATION_LABELS", "STATS_FORMAT_VERSION", "AnalysisOptions", "AnalysisResult", "LabelOverlay", "PairCollector",
    "RelationTurns", "StageCurves", "TypeShares", "analyze_conversations", "analyze_file", "load_label_records",
    "semantic_shift",
]
