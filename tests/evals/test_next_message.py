from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.data import read_conversations
from thoughttrace.evals import (
    ItemStore,
    Judge,
    LeakageError,
    NextMessageEval,
    load_metric,
    normalise_conditions,
)
from thoughttrace.evals import next_message as nm

ALL = ["history", "reaction", "reaction+reason"]


def test_conditions_alias_and_errors() -> None:
    assert normalise_conditions(["thoughts", "history", "reaction"]) == ["reaction", "history"]
    assert normalise_conditions([]) == ["history"]
    with pytest.raises(ValueError, match="choose from"):
        normalise_conditions(["future"])


def test_items_need_the_thoughts_their_condition_shows(examples_path: Path) -> None:
    convs = read_conversations(examples_path)
    items = nm.extract_items(convs, ALL)
    history = [i for i in items if i.condition == "history"]
    assert len(history) == sum(len(c.user_messages) - 1 for c in convs)
    assert all(i.reaction is None and i.reason is None for i in history)
    reaction = [i for i in items if i.condition == "reaction"]
    assert all(i.reaction and i.reason is None for i in reaction)
    upper = [i for i in items if i.condition == "reaction+reason"]
    # education-2's 5th user message has no reason: it has no upper-bound item
    assert len(upper) == len(reaction) - 1 and all(i.reason for i in upper)


async def test_every_prompt_is_free_of_the_target_and_its_reason(scripted: Any, examples_path: Path,
                                                                 tmp_path: Path, h: Any) -> None:
    convs = read_conversations(examples_path)
    model = scripted()
    ev = NextMessageEval(model, Judge(model, "message_similarity"), embeddings=None)
    stats = await ev.arun(convs, ItemStore(tmp_path / "items.jsonl"), ALL, concurrency=4)
    items = nm.extract_items(convs, ALL)
    assert stats.computed == len(items)
    prompts = [r for r in model.backend.requests if h.role_of_request(r) == "next_message"]
    assert len(prompts) == len(items)
    by_conv = {c.id: c for c in convs}
    checked = 0
    for item in items:
        conv = by_conv[item.conversation_id]
        target = conv.messages[item.index]
        visible = [m.content for m in conv.messages[: item.index]]
        built = nm.build_prompt(conv, item, ev.clip)
        assert built in [r["messages"] for r in prompts]
        text = h.prompt_text({"messages": built})
        allowed = visible + [t for t in (item.reaction, item.reason) if t]
        assert h.find_leaks(built, [target.content], allowed) == []
        reasons = [t.content for t in target.thoughts]
        if item.condition == "reaction+reason":
            assert all(r in text for r in reasons)  # positive control: this condition does show the reason
        else:
            assert h.find_leaks(built, reasons, visible + ([item.reaction] if item.reaction else [])) == []
        checked += 1
    assert checked == len(prompts)


async def test_a_leaking_condition_is_stopped(scripted: Any, synth: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = nm.render

    def leaky(messages: Any, clip: Any = None) -> str:
        return real(messages, clip) + "\nUser: user message number 1 about zebra1 topics in synth-1"

    monkeypatch.setattr(nm, "render", leaky)
    model = scripted()
    ev = NextMessageEval(model, None)
    with pytest.raises(LeakageError, match="history"):
        await ev.arun(synth, ItemStore(tmp_path / "items.jsonl"), ["history"])


async def test_reason_leak_is_stopped_in_reaction_condition(scripted: Any, synth: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky_extract(convs: Any, conds: Any) -> Any:
        items = real_extract(convs, conds)
        for it in items:  # a bug that copies the target's reason into the reaction slot
            it.reaction = (it.reaction or "") + " " + synth[0].messages[it.index].thoughts[0].content \
                if it.conversation_id == "synth-1" else it.reaction
        return items

    real_extract = nm.extract_items
    monkeypatch.setattr(nm, "extract_items", leaky_extract)
    ev = NextMessageEval(scripted(), None)
    with pytest.raises(LeakageError, match="reaction"):
        await ev.arun(synth, ItemStore(tmp_path / "items.jsonl"), ["reaction"])


async def test_gain_over_history_with_ci_and_upper_bound_label(scripted: Any, synth: Any, tmp_path: Path,
                                                               bow: Any) -> None:
    def fn(messages: Any, cfg: Any) -> str:
        text = "\n".join(m.content for m in messages)
        if "Score: N" in text:
            if "saw the reason" in text:
                return "close\nScore: 80"
            return "close\nScore: 60" if "saw the reaction" in text else "far\nScore: 30"
        from thoughttrace.evals import load_prompt  # noqa: F401

        if "private note on why" in text:
            return "A prediction that saw the reason."
        if "private note about the assistant's last answer" in text:
            return "A prediction that saw the reaction."
        return "A prediction from history only."

    model = scripted(fn=fn)
    ev = NextMessageEval(model, Judge(model, "message_similarity"), embeddings=load_metric(embedder=bow))
    store = ItemStore(tmp_path / "items.jsonl")
    await ev.arun(synth, store, ["history", "thoughts", "reaction+reason"])
    summary = nm.write_outputs(tmp_path, store, {}, {"conditions": ALL})
    rows = {r["condition"]: r for r in summary["overall"]}
    assert rows["history"]["judge"]["mean"] == 30 and rows["reaction"]["judge"]["mean"] == 60
    gains = {(g["condition"], g["metric"]): g for g in summary["gains"]}
    g = gains[("reaction", "score")]
    assert g["relative_gain"]["mean"] == pytest.approx(1.0) and g["n"] == 3 and not g["upper_bound"]
    assert gains[("reaction+reason", "score")]["upper_bound"]
    assert gains[("reaction+reason", "score")]["relative_gain"]["mean"] == pytest.approx(80 / 30 - 1)
    md = (tmp_path / "summary.md").read_text()
    assert "upper bound: leaks intent" in md and "Relative gain" in md
    assert json.loads((tmp_path / "summary.json").read_text())["format_version"] == 1


async def test_limit_keeps_conditions_paired(scripted: Any, synth: Any, tmp_path: Path) -> None:
    ev = NextMessageEval(scripted(), None)
    store = ItemStore(tmp_path / "items.jsonl")
    await ev.arun(synth, store, ALL, limit=1)
    recs = store.records()
    assert {r["condition"] for r in recs} == set(ALL) and len({r["message_id"] for r in recs}) == 1
