from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.data import Conversation, read_conversations
from thoughttrace.evals import ItemStore, Judge, SimulatorEval, load_metric
from thoughttrace.evals import simulator_eval as se


def test_stage_of_uses_the_four_anchor_points() -> None:
    assert [se.stage_of(i, 10) for i in range(10)] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert se.stage_of(0, 1) == 0


def test_describe_counts_shares_and_curves(examples_path: Path) -> None:
    d = se.describe(read_conversations(examples_path))
    assert d["conversations"] == 3 and d["messages_per_conversation"]["mean"] == pytest.approx(28 / 3)
    reasons = d["thought_types"]["reasons"]
    assert reasons["labelled"] == 15 and reasons["unlabelled"] == 0
    assert sum(reasons["shares"].values()) == pytest.approx(1.0)
    assert reasons["shares"]["Task Continuation"] == pytest.approx(5 / 15)
    curve = d["stage_curves"]["reasons"]["Task Motivation & Goal"]
    assert len(curve) == 4 and all(v is None or 0 <= v <= 1 for v in curve)
    assert d["reaction_coverage"] == pytest.approx(1.0)


def _sim(cid: str, source: str | None) -> Conversation:
    return Conversation.model_validate({
        "id": cid, "messages": [
            {"id": "a", "type": "user", "content": "good morning artillery logistics", "reasons": [{"content": "why"}]},
            {"id": "b", "type": "assistant", "content": "hello", "reactions": [{"content": "fine"}]},
        ],
        "simulation": {"format_version": 1, "source_id": source, "end_reason": "user ended (x)"},
    })


async def test_side_by_side_with_realism_and_source_cosine(examples_path: Path, tmp_path: Path, bow: Any) -> None:
    real = read_conversations(examples_path)
    sim = [_sim("sim-education-2-0", "education-2"), _sim("sim-x", None)]

    def fn(messages: Any, cfg: Any) -> str:
        return "ok\nScore: 2" if "why" in messages[-1].content else "ok\nScore: 4"

    judge_model = __import__("thoughttrace.llm", fromlist=["get_model"]).get_model("scripted", cache=False, fn=fn)
    ev = SimulatorEval(Judge(judge_model, "realism"), load_metric(embedder=bow))
    store = ItemStore(tmp_path / "items.jsonl")
    stats = await ev.arun(real, sim, store)
    assert stats.computed == 5
    # realism has one text: no position swap, one call per conversation
    assert len(judge_model.backend.requests) == 5
    summary = se.write_outputs(tmp_path, real, sim, store, {}, {})
    sides = summary["sides"]
    assert sides["real"]["realism"]["mean"] == 4 and sides["simulated"]["realism"]["mean"] == 2
    assert sides["simulated"]["embedding_cosine_to_source"]["n"] == 1
    assert sides["simulated"]["thought_types"]["reasons"]["unlabelled"] == 2
    assert summary["simulated_end_reasons"] == {"user ended": 2}
    md = (tmp_path / "summary.md").read_text()
    assert "| metric | real | simulated |" in md and "judged realism" in md and "Task Continuation" in md
    assert json.loads((tmp_path / "summary.json").read_text())["format_version"] == 1
