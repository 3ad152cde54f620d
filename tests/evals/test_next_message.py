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
    # the absolute difference is always there; the cosine gets no relative gain (not a ratio scale)
    assert g["difference"]["mean"] == pytest.approx(30.0) and g["history_mean"] == 30 and g["condition_mean"] == 60
    cos = gains[("reaction", "embedding_cosine")]
    assert cos["relative_gain"] is None and "not a ratio scale" in cos["relative_gain_note"]
    assert cos["difference"]["mean"] is not None
    md = (tmp_path / "summary.md").read_text()
    assert "upper bound: leaks intent" in md and "Difference from `history`" in md
    assert json.loads((tmp_path / "summary.json").read_text())["format_version"] == 1


async def test_limit_keeps_conditions_paired(scripted: Any, synth: Any, tmp_path: Path) -> None:
    ev = NextMessageEval(scripted(), None)
    store = ItemStore(tmp_path / "items.jsonl")
    await ev.arun(synth, store, ALL, limit=1)
    recs = store.records()
    assert {r["condition"] for r in recs} == set(ALL) and len({r["message_id"] for r in recs}) == 1


# ------------------------------------------------------------------ inferred-thought prediction


def _mutate_from(conv: Any, index: int) -> Any:
    """The same conversation with every message from `index` on and EVERY thought rewritten."""
    data = conv.model_dump()
    for j, m in enumerate(data["messages"]):
        if j >= index:
            m["content"] = f"CHANGED future text {j} okapi"
        for key in ("reasons", "reactions"):
            for t in m.get(key) or []:
                t["content"] = f"CHANGED thought okapi {j}"
    return type(conv).model_validate(data)


async def test_inferred_thoughts_depend_on_nothing_from_message_t_on(scripted: Any, synth: Any, h: Any) -> None:
    """The leakage guard's claim, proved: changing message t.. and all thoughts leaves step 1's prompts unchanged."""
    from thoughttrace.evals.inferred import ThoughtInferrer

    conv = synth[0]
    for index in (2, 4):
        seen: list[list[Any]] = []

        def fn(messages: Any, cfg: Any, seen: list[list[Any]] = seen) -> str:
            seen.append([m.content for m in messages])
            return h.default_fn(messages, cfg)

        model = scripted(fn=fn, cache=False)
        a = await ThoughtInferrer(model).infer(conv, index)
        first = list(seen)
        seen.clear()
        b = await ThoughtInferrer(model).infer(_mutate_from(conv, index), index)
        assert first == seen and a == b and len(first) == 2
        text = "\n".join("\n".join(p) for p in first)
        assert not h.find_leaks(text, [m.content for m in conv.messages[index:]] + h.all_thoughts([conv]))
        assert conv.messages[index - 1].content in text  # the last answer IS history


def test_the_inference_guard_rejects_a_prompt_with_the_target(synth: Any) -> None:
    from thoughttrace.evals.inferred import guard

    conv = synth[0]
    with pytest.raises(LeakageError):
        guard([{"role": "user", "content": "context " + conv.messages[2].content}], conv, 2, "test")
    with pytest.raises(LeakageError):
        guard("a note: " + conv.messages[1].reactions[0].content, conv, 2, "test")
    guard("context " + conv.messages[1].content, conv, 2, "test")  # history is fine


async def test_inferred_condition_shares_of_oracle_gain(scripted: Any, synth: Any, tmp_path: Path) -> None:
    def fn(messages: Any, cfg: Any) -> str:
        text = "\n".join(m.content for m in messages)
        if "Score: N" in text:
            if "saw the reason" in text:
                return "close\nScore: 80"
            if "saw the reaction" in text:
                return "close\nScore: 60"
            return "mid\nScore: 40" if "saw the inferred note" in text else "far\nScore: 30"
        if "The user is about to write their next message" in text:
            return "I want the inferred next step."
        if "What did the user think of the assistant's last answer?" in text:
            return "inferred: it was fine."
        if "I want the inferred next step" in text:
            return "A prediction that saw the inferred note."
        if "private note on why" in text:
            return "A prediction that saw the reason."
        if "private note about the assistant's last answer" in text:
            return "A prediction that saw the reaction."
        return "A prediction from history only."

    model = scripted(fn=fn, cache=False)
    ev = NextMessageEval(model, Judge(model, "message_similarity"), embeddings=None)
    store = ItemStore(tmp_path / "items.jsonl")
    await ev.arun(synth, store, ["history", "reaction", "reaction+reason", "inferred"])
    recs = [r for r in store.records() if r["condition"] == "inferred"]
    assert recs and all(r["inferred"]["reaction"] == "inferred: it was fine." for r in recs)
    summary = nm.write_outputs(tmp_path, store, {}, {})
    shares = {(r["oracle"], r["metric"]): r for r in summary["oracle_share"]}
    # inferred gains 10 of the reaction oracle's 30 and of the reaction+reason oracle's 50
    assert shares[("reaction", "score")]["share_of_oracle_gain"]["mean"] == pytest.approx(10 / 30)
    assert shares[("reaction+reason", "score")]["share_of_oracle_gain"]["mean"] == pytest.approx(10 / 50)
    gains = {(g["condition"], g["metric"]): g for g in summary["gains"]}
    assert gains[("inferred", "score")]["difference"]["mean"] == pytest.approx(10)
    assert "Share of the oracle's gain" in (tmp_path / "summary.md").read_text()


def test_share_is_null_with_reason_when_the_oracle_gains_nothing() -> None:
    recs = []
    for k in range(4):
        for cond, score in (("history", 30), ("reaction", 30), ("inferred", 35)):
            recs.append({"model": "m", "condition": cond, "conversation_id": "c", "message_id": f"m{k}",
                         "score": score + k})
    rows = nm.oracle_shares(recs, "score")
    assert rows[0]["share_of_oracle_gain"]["mean"] is None and "oracle gain is ~0" in rows[0]["reason"]
