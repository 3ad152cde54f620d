from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.data import Conversation, read_conversations
from thoughttrace.evals import ItemStore, Judge, SimulatorEval, load_metric
from thoughttrace.evals import simulator_eval as se


def test_simulator_and_analyze_put_every_thought_in_the_same_stage() -> None:
    """eval simulator and analyze must agree cell by cell (they once binned 7 positions differently)."""
    from thoughttrace.analysis.shares import StageCurves

    msgs = []
    for k in range(7):
        msgs.append({"id": f"u{k}", "type": "user", "content": f"u{k}", "reasons": [{"content": "r", "label": f"L{k}"}]})
        msgs.append({"id": f"a{k}", "type": "assistant", "content": f"a{k}",
                     "reactions": [{"content": "x", "label": f"R{k}"}]})
    conv = Conversation.model_validate({"id": "c", "messages": msgs})
    curves = StageCurves(4)
    curves.add(conv)
    res = curves.result()
    d = se.describe([conv])
    for kind in ("reasons", "reactions"):
        for label, shares in d["stage_curves"][kind].items():
            stage_of_label = [i for i, v in enumerate(shares) if v]
            analyze_stage = [i for i, st in enumerate(res[kind]["stages"]) if st["counts"].get(label)]
            assert stage_of_label == analyze_stage, (kind, label)
    reasons = d["stage_curves"]["reasons"]
    # 7 user messages: positions 0, 1/6 .. 1 -> stages 0,1,1,2,2,3,3 (nearest of 0/33/67/100%, ties up)
    assert [next(i for i, v in enumerate(reasons[f"L{k}"]) if v) for k in range(7)] == [0, 1, 1, 2, 2, 3, 3]


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
