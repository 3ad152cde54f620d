"""`analyze`: every analysis in one streaming pass over the conversations, then figures and the report.

One pass feeds all accumulators (Table 1, type shares, stages, relations, text pairs), so memory grows
with the number of distinct labels, models and users, not with the file, except for the text pairs of
the semantic-shift analysis (capped by `max_pairs`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from thoughttrace import __version__
from thoughttrace.data import Conversation, ReadReport
from thoughttrace.data.intervals import SMALL_CELL
from thoughttrace.data.stats import StatsAccumulator

from . import figures as F
from .labels import LabelOverlay
from .overview import compare_lengths, overview_result
from .relations import RelationTurns
from .report import render_report
from .semantic import PAIR_LABELS, PairCollector, semantic_shift
from .shares import StageCurves, TypeShares

STATS_FORMAT_VERSION = 1


@dataclass
class AnalysisOptions:
    """What to compute. Defaults reproduce the release's analyses without any LLM call."""

    n_stages: int = 4
    stage_position: Literal["role", "conversation"] = "role"
    embeddings: bool = True
    embedding_model: str = "minilm"
    embedding_cache: bool | str = True
    max_pairs: int | None = 20000
    projection: Literal["auto", "umap", "pca"] = "auto"
    max_turn: int = 10
    seed: int = 0
    skip_invalid: bool = False
    figures: bool = True
    progress: bool = False
    title: str = "ThoughtTrace analysis"
    compare: dict[str, str] = field(default_factory=dict)


@dataclass
class AnalysisResult:
    stats: dict[str, Any]
    out_dir: Path
    report_path: Path
    stats_path: Path
    read_report: ReadReport


def _progress(it: Iterable[Conversation], enabled: bool) -> Iterable[Conversation]:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc="analyze", unit=" conv", mininterval=1.0)


def analyze_conversations(
    conversations: Iterable[Conversation],
    out_dir: str | Path,
    options: AnalysisOptions | None = None,
    *,
    labels: LabelOverlay | None = None,
    relation_source: Mapping[str, Any] | None = None,
    input_info: Mapping[str, Any] | None = None,
    read_report: ReadReport | None = None,
    usage: Mapping[str, Any] | None = None,
    embedder: Any = None,
) -> AnalysisResult:
    """Run every analysis over an iterable of conversations and write stats.json, figures and report.html.

    `embedder`: anything with `embed(texts) -> unit-length rows` (default: `get_embedder(options.embedding_model)`).
    """
    opts = options or AnalysisOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    overlay = labels or LabelOverlay()
    relations_map = overlay.relations()

    table = StatsAccumulator()
    types = TypeShares()
    stages = StageCurves(opts.n_stages, opts.stage_position)
    turns = RelationTurns(relations_map, opts.max_turn)
    pairs = PairCollector(opts.max_pairs, opts.seed) if opts.embeddings else None
    for conv in _progress(conversations, opts.progress):
        conv = overlay.apply(conv)
        table.add(conv)
        types.add(conv)
        stages.add(conv)
        if relations_map:
            turns.add(conv)
        if pairs is not None:
            pairs.add(conv)
    if not sum(table.lengths.values()):
        raise ValueError("no conversations to analyse: the input is empty (or every line was invalid)")

    compare = {name: compare_lengths(path) for name, path in opts.compare.items()}
    stats: dict[str, Any] = {
        "format_version": STATS_FORMAT_VERSION,
        "generator": f"thoughttrace {__version__}",
        "input": dict(input_info or {}),
        "options": {k: v for k, v in asdict(opts).items() if k not in ("progress",)},
        "overview": overview_result(table, compare),
        "thought_types": types.result(),
        "stages": stages.result(),
        "relations": {**turns.result(), "source": dict(relation_source or {})},
    }
    stats["warnings"] = []
    if read_report is not None:
        stats["input"].update({"lines": read_report.lines, "valid": read_report.valid,
                               "invalid": len(read_report.errors)})
        if read_report.errors:
            stats["warnings"].append(f"{len(read_report.errors)} invalid line(s) skipped (first: "
                                     f"{read_report.errors[0]})")
    if overlay:
        stats["input"]["label_overlay"] = {k: overlay.count(k) for k in ("reason", "reaction", "domain", "relation")}

    arrays: dict[str, Any] = {}
    if pairs is None:
        stats["semantic"] = {"available": False, "reason": "embeddings turned off (--no-embeddings)"}
    else:
        from thoughttrace.llm.embeddings import describe, get_embedder

        if embedder is None:
            embedder = get_embedder(opts.embedding_model, cache=opts.embedding_cache)
        numbers, arrays = semantic_shift(pairs, embedder, projection=opts.projection, seed=opts.seed,
                                         progress=opts.progress)
        model_info = describe(embedder) if hasattr(embedder, "fingerprint") else {
            "spec": str(getattr(embedder, "spec", type(embedder).__name__)), "fingerprint": "custom"}
        stats["semantic"] = {**numbers, "model": model_info}
    if usage:
        stats["usage"] = dict(usage)

    store = F.FigureStore(out)
    if opts.figures:
        _draw(stats, arrays, store)
    stats["figures"] = store.entries
    stats["elapsed_seconds"] = round(time.perf_counter() - started, 3)

    stats_path = out / "stats.json"
    stats_path.write_text(json.dumps(stats, indent=2, ensure_ascii=False, default=_json_default), encoding="utf-8")
    report_path = out / "report.html"
    report_path.write_text(render_report(stats, store.png_b64, opts.title), encoding="utf-8")
    return AnalysisResult(stats, out, report_path, stats_path, read_report or ReadReport())


def analyze_file(
    path: str | Path,
    out_dir: str | Path,
    options: AnalysisOptions | None = None,
    **kwargs: Any,
) -> AnalysisResult:
    """`analyze_conversations` over a JSONL file, streamed (strict unless options.skip_invalid)."""
    opts = options or AnalysisOptions()
    from thoughttrace.data.exporters import iter_any

    report = ReadReport()
    convs = iter_any(path, skip_invalid=opts.skip_invalid, report=report)
    info = {"path": str(path), **kwargs.pop("input_info", {})}
    return analyze_conversations(convs, out_dir, opts, input_info=info, read_report=report, **kwargs)


def _draw(stats: dict[str, Any], arrays: dict[str, Any], store: F.FigureStore) -> None:
    store.save(F.lengths_figure(stats["overview"]), "messages_per_conversation", "Messages per conversation",
               "overview", "Share of conversations by number of messages (turns)." +
               (" Compared with: " + ", ".join(stats["overview"]["compare"]) if stats["overview"]["compare"] else ""))
    tt = stats["thought_types"]
    store.save(F.shares_figure(tt["reasons"], "Reason types"), "reason_shares", "Reason type shares", "types",
               "Bars: this dataset; ticks: the release.")
    store.save(F.shares_figure(tt["reactions"], "Reaction types"), "reaction_shares", "Reaction type shares",
               "types", "Bars: this dataset; ticks: the release.")
    for kind in ("reasons", "reactions"):
        store.save(F.heatmap_figure(tt[kind], "by_model", f"{kind.capitalize()} by model"), f"{kind}_by_model",
                   f"{kind.capitalize()} by model", "types", "Share of each type within a model (%); each cell: share, then count/n of its row. "
                   f"Rows of fewer than {SMALL_CELL} thoughts are greyed and hatched.")
        store.save(F.heatmap_figure(tt[kind], "by_domain", f"{kind.capitalize()} by domain"), f"{kind}_by_domain",
                   f"{kind.capitalize()} by domain", "types", "Share of each type within a domain (%); each cell: share, then count/n of its row. "
                   f"Rows of fewer than {SMALL_CELL} thoughts are greyed and hatched.")
    st = stats["stages"]
    for kind in ("reasons", "reactions"):
        store.save(F.stages_figure(st, kind, f"{kind.capitalize()} over the conversation"), f"stages_{kind}",
                   f"{kind.capitalize()} over the conversation", "stages",
                   f"Shares at {', '.join(st['stage_names'])} of the conversation.")
    if stats["relations"].get("available") and stats["relations"]["by_turn"]:
        store.save(F.relations_figure(stats["relations"]), "relations_by_turn", "Turn relations by turn",
                   "relations", "End = the conversation ended before this turn.")
    if stats["semantic"].get("available"):
        store.save(F.distances_figure(arrays["distances"], PAIR_LABELS), "semantic_distances",
                   "Semantic distance by pair type", "semantic", "1 - cosine of sentence embeddings.")
        if arrays["coords"].shape[0]:
            store.save(F.projection_figure(arrays["coords"], arrays["coord_kinds"], PAIR_LABELS,
                                           stats["semantic"]["projection"]["method"]),
                       "semantic_projection", "Difference vectors in 2-D", "semantic",
                       stats["semantic"]["projection"]["note"] + ".")


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
