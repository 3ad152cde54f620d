from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.data import read_conversations
from thoughttrace.evals import ItemStore, Judge, LeakageError, ThoughtInferenceEval, find_leaks, load_metric
from thoughttrace.evals import thought_inference as ti


def test_items_cover_every_reason_and_reaction(examples_path: Path) -> None:
    convs = read_conversations(examples_path)
    items = ti.extract_items(convs)
    n_user = sum(1 for c in convs for m in c.messages if m.type == "user" and m.reasons)
    n_asst = sum(1 for c in convs for m in c.messages if m.type == "assistant" and m.reactions)
    assert len([i for i in items if i.kind == "reason"]) == n_user
    assert len([i for i in items if i.kind == "reaction"]) == n_asst
    with_next = ti.extract_items(convs, with_next_message=True)
    assert len(with_next) == len(items) + n_asst
    last = [i for i in with_next if i.condition == "context+next" and i.index == len(convs[0].messages) - 1]
    assert last and last[0].next_message == ti.NO_NEXT
    multi = [i for i in items if len(i.labels) == 3]
    assert multi and " / " in multi[0].reference


async def _run(model: Any, convs: Any, out: Path, **kw: Any) -> Any:
    judge = Judge(model)
    ev = ThoughtInferenceEval(model, judge, embeddings=load_metric(enabled=False, embedder=kw.pop("embedder", None)), **kw)
    store = ItemStore(out / "items.jsonl")
    stats = await ev.arun(convs, store, with_next_message=True, concurrency=3)
    return ev, store, stats


async def test_direct_inference_never_shows_a_thought(scripted: Any, synth: Any, tmp_path: Path, bow: Any, h: Any) -> None:
    model = scripted()
    _, store, stats = await _run(model, synth, tmp_path, embedder=bow)
    assert stats.computed == len(ti.extract_items(synth, True)) and stats.failed == 0
    prompts = [r for r in model.backend.requests if h.role_of_request(r) in ("infer_reason", "infer_reaction")]
    assert len(prompts) == stats.computed
    for req in prompts:
        # no thought of any conversation reaches an inference prompt (messages only)
        assert find_leaks(req["messages"], h.all_thoughts(synth), h.all_messages(synth)) == []
    recs = store.records()
    assert all(r["prediction"] and r["judge"]["mean"] == 3 and r["score"] == 3 for r in recs)
    assert all(r["embedding_cosine"] is not None for r in recs)
    # the reaction with next-message evidence shows the next message, the plain one does not
    nxt = [r for r in prompts if "After reading that answer" in h.prompt_text(r)]
    assert len(nxt) == sum(1 for r in recs if r["condition"] == "context+next")


async def test_a_leaking_prompt_builder_is_stopped(scripted: Any, synth: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_render = ti.render

    def leaky(messages: Any, clip: Any = None) -> str:
        return real_render(messages, clip) + "\n" + " ".join(t.content for m in messages for t in m.thoughts)

    monkeypatch.setattr(ti, "render", leaky)
    model = scripted()
    with pytest.raises(LeakageError):
        await _run(model, synth, tmp_path)


async def test_resume_after_interruption_makes_no_new_calls(scripted: Any, examples_path: Path, tmp_path: Path) -> None:
    convs = read_conversations(examples_path)
    cache = tmp_path / "cache.sqlite"
    first = scripted(cache=cache)
    _, store, stats = await _run(first, convs, tmp_path)
    total = stats.computed
    assert first.usage.report().calls > 0
    ti.write_outputs(tmp_path, store, {}, {})
    # interrupt: keep 5 complete records and half of the sixth
    lines = (tmp_path / "items.jsonl").read_text().splitlines()
    (tmp_path / "items.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    second = scripted(cache=cache)
    store2 = ItemStore(tmp_path / "items.jsonl")
    assert len(store2) == 5 and store2.dropped_lines == 1
    _, store3, stats2 = await _run(second, convs, tmp_path)
    report = second.usage.report()
    assert report.calls == 0 and report.cache_hits > 0
    assert stats2.skipped == 5 and stats2.computed == total - 5
    keys = [json.loads(x)["key"] for x in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == total


async def test_summary_files_have_versions_cis_and_types(scripted: Any, examples_path: Path, tmp_path: Path,
                                                          bow: Any) -> None:
    model = scripted()
    convs = read_conversations(examples_path)
    _, store, _ = await _run(model, convs, tmp_path, embedder=bow)
    summary = ti.write_outputs(tmp_path, store, {"scripted": model.usage.report().model_dump()}, {"x": 1})
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["format_version"] == 1 and data["usage"]["scripted"]["calls"] > 0
    kinds = {(r["kind"], r["condition"]) for r in summary["overall"]}
    assert kinds == {("reason", "context"), ("reaction", "context"), ("reaction", "context+next")}
    row = summary["overall"][0]
    assert row["judge"]["mean"] == 3 and row["judge"]["low"] is not None
    types = {r["thought_type"] for r in summary["by_thought_type"]}
    assert {"Social & Others", "Explicit Affirmation", "Task Motivation & Goal"} <= types
    md = (tmp_path / "summary.md").read_text()
    assert "| model | method | kind |" in md and "3.00 [" in md
    assert all(json.loads(x)["format_version"] == 1 for x in (tmp_path / "items.jsonl").read_text().splitlines())


class FakePosterior:
    def __init__(self, posterior: list[float]) -> None:
        self.posterior = posterior
        self.log_likelihoods = posterior
        self.best = max(range(len(posterior)), key=lambda i: posterior[i])
        self.ties = [0]


async def test_model_based_picks_the_map_hypothesis(scripted: Any, synth: Any, tmp_path: Path, h: Any) -> None:
    calls: list[dict[str, Any]] = []

    async def posterior_fn(model: Any, context: str, hypotheses: list[str], evidence: str, **kw: Any) -> Any:
        calls.append({"context": context, "hypotheses": hypotheses, "evidence": evidence, **kw})
        scores = [2.0 if "Task Continuation" in h or "Explicit Affirmation" in h else 1.0 for h in hypotheses]
        return FakePosterior([s / sum(scores) for s in scores])

    model = scripted()
    ev = ThoughtInferenceEval(model, Judge(model), method="model-based", posterior_fn=posterior_fn)
    store = ItemStore(tmp_path / "items.jsonl")
    await ev.arun(synth, store)
    recs = store.records()
    reasons = [r for r in recs if r["kind"] == "reason"]
    assert len(reasons[0]["candidates"]) == 7 and all(r["predicted_type"] == "Task Continuation" for r in reasons)
    assert [r["type_correct"] for r in reasons].count(True) == len(reasons) - 2  # the first reason of each is Motivation
    reactions = [r for r in recs if r["kind"] == "reaction"]
    assert len(reactions[0]["candidates"]) == 5 and all(r["type_correct"] for r in reactions)
    for c in calls:
        assert c["agent"] == "the user" and c["variable"] in ("reason", "reaction")
        assert find_leaks(c["context"] + c["evidence"], h.all_thoughts(synth), h.all_messages(synth)) == []
    # the reason's evidence is the message itself; the reaction's is the next message
    assert any("user message number 1" in c["evidence"] for c in calls if c["variable"] == "reason")
    assert any("user message number 1" in c["evidence"] for c in calls if c["variable"] == "reaction")
    summary, md = ti.summarise(recs, {}, {})
    assert summary["type_accuracy"] and "Thought type of the MAP hypothesis" in md



async def test_model_based_through_the_autotom_api(synth: Any, tmp_path: Path, h: Any) -> None:
    """The real `posterior_over_hypotheses` with a scripted likelihood: "Likely" only for one hypothesis type."""
    from thoughttrace.llm import get_model

    def liked(text: str) -> bool:
        return "about Context Grounding" in text or "about Scope Fit" in text

    def logprobs(messages: Any) -> dict[str, float]:
        text = "\n".join(m.content for m in messages)
        if "Answer with one letter" in text:  # a row (the default posterior mode): mass on the liked option's letter
            return {f" {k}": (0.9 if liked(t) else 0.02) for k, t in re.findall(r"^([A-Z])\. (.*)$", text, re.M)}
        return {"Likely": 0.9, "Unlikely": 0.1} if liked(text) else {"Likely": 0.1, "Unlikely": 0.9}

    model = get_model("scripted", cache=True, fn=h.default_fn, logprobs=logprobs)
    ev = ThoughtInferenceEval(model, None, method="model-based")
    store = ItemStore(tmp_path / "items.jsonl")
    stats = await ev.arun(synth, store, limit=4)
    assert stats.computed == 4
    for r in store.records():
        expected = "Context Grounding & Constraints" if r["kind"] == "reason" else "Scope Fit"
        assert r["predicted_type"] == expected and r["tied_candidates"] == 1
        best = max(r["candidates"], key=lambda c: c["posterior"])
        assert best["thought"] == r["prediction"] and abs(sum(c["posterior"] for c in r["candidates"]) - 1) < 1e-6
    lik_prompts = [q for q in model.backend.requests if q["kind"] == "next_token_logprobs"]
    assert lik_prompts
    for q in lik_prompts:
        assert h.find_leaks(q["messages"], h.all_thoughts(synth), h.all_messages(synth)) == []


async def test_a_leaking_hypothesis_prompt_is_stopped(scripted: Any, synth: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_render = ti.render

    def leaky(messages: Any, clip: Any = None) -> str:
        conv = synth[0]
        return real_render(messages, clip) + "\n" + " ".join(t.content for m in conv.messages for t in m.thoughts)

    async def never(*a: Any, **k: Any) -> Any:  # pragma: no cover - the guard fires first
        raise AssertionError("posterior must not be reached")

    monkeypatch.setattr(ti, "render", leaky)
    ev = ThoughtInferenceEval(scripted(), None, method="model-based", posterior_fn=never)
    with pytest.raises(LeakageError, match="hypothesis proposal"):
        await ev.arun(synth, ItemStore(tmp_path / "items.jsonl"), limit=1)
