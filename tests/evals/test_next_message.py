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
    await ev.arun(synth, store, ALL, limit=len(ALL))  # limit counts items: one message under every condition
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
    assert gains[("inferred (direct)", "score")]["difference"]["mean"] == pytest.approx(10)
    assert "Share of the oracle's gain" in (tmp_path / "summary.md").read_text()


def test_share_is_null_with_reason_when_the_oracle_gains_nothing() -> None:
    recs = []
    for k in range(4):
        for cond, score in (("history", 30), ("reaction", 30), ("inferred", 35)):
            recs.append({"model": "m", "condition": cond, "conversation_id": "c", "message_id": f"m{k}",
                         "score": score + k})
    rows = nm.oracle_shares(recs, "score")
    assert rows[0]["share_of_oracle_gain"]["mean"] is None and "oracle gain is ~0" in rows[0]["reason"]


# ------------------------------------------------------------------ inferred thoughts, model-based (AutoToM posterior)


def _likely_for(label: str) -> Any:
    """A scripted likelihood: the AutoToM prompt scores "Likely" only for the candidate of reaction type `label`."""

    def logprobs(messages: Any) -> dict[str, float]:
        text = "\n".join(m.content for m in messages)
        if "Answer with one letter" in text:  # a row over the candidates (the default posterior mode)
            options = [ln for ln in text.splitlines() if ln[:1].isupper() and ln[1:3] == ". "]
            return {f" {ln[0]}": (0.9 if f"about {label}." in ln else 0.02) for ln in options}
        return {"Likely": 0.9, "Unlikely": 0.1} if f"about {label}." in text else {"Likely": 0.2, "Unlikely": 0.8}

    return logprobs


@pytest.mark.parametrize("label", ["Scope Fit", "Presentation Style"])
async def test_model_based_feeds_the_posteriors_choice_to_the_prediction(synth: Any, tmp_path: Path, h: Any,
                                                                         label: str) -> None:
    """Through the real `posterior_over_hypotheses`: the MAP candidate (which the likelihood decides, not the
    taxonomy's order) is the inferred reaction, the reason step sees it, and the prediction prompt shows it
    and no other candidate."""
    from thoughttrace.llm import get_model

    model = get_model("scripted", cache=False, fn=h.default_fn, logprobs=_likely_for(label))
    ev = NextMessageEval(model, None, embeddings=None, infer_method="model-based")
    store = ItemStore(tmp_path / "items.jsonl")
    await ev.arun(synth, store, ["inferred"])
    recs = store.records()
    assert len(recs) == sum(len(c.user_messages) - 1 for c in synth)
    chosen = f"I guess this is about {label}."  # generate_text drops the "Note:" label
    for r in recs:
        inf = r["inferred"]
        assert inf["method"] == "model-based" and inf["error"] is None
        assert inf["reaction_type"] == label and inf["reaction"] == chosen
        post = {c["type"]: c["posterior"] for c in inf["candidates"]}
        assert len(post) == 5 and abs(sum(post.values()) - 1) < 1e-6
        assert post[label] == max(post.values()) and sorted(post.values())[-2] < post[label]
        assert r["key"].split("|")[1] == "inferred:model-based"
    reqs = [q for q in model.backend.requests if q["kind"] == "generate"]
    predictions = [q for q in reqs if h.role_of_request(q) == "next_message"]
    reasons = [q for q in reqs if h.role_of_request(q) == "infer_upcoming_reason"]
    assert len(predictions) == len(reasons) == len(recs)
    others = [f"about {t}." for t in ("Explicit Affirmation", "Content Relevance", "Presentation Style", "Scope Fit",
                                     "Partial Satisfaction") if t != label]
    for q in predictions + reasons:
        text = h.prompt_text(q)
        assert chosen in text and not any(o in text for o in others)
    # one row per target, asked in both orders: the posterior really was computed
    assert len([q for q in model.backend.requests if q["kind"] == "next_token_logprobs"]) == 2 * len(recs)


async def test_model_based_inference_depends_on_nothing_from_message_t_on(synth: Any, h: Any) -> None:
    """The leakage claim for the model-based method: with every message from t on and every thought
    rewritten, every request of step 1 (proposals, AutoToM likelihoods, reason) is byte-identical."""
    from thoughttrace.evals.inferred import ThoughtInferrer
    from thoughttrace.llm import get_model

    conv = synth[0]
    for index in (2, 4):
        runs = []
        for c in (conv, _mutate_from(conv, index)):
            model = get_model("scripted", cache=False, fn=h.default_fn, logprobs=_likely_for("Scope Fit"))
            out = await ThoughtInferrer(model, "model-based").infer(c, index)
            runs.append((out, [json.dumps(q, sort_keys=True) for q in model.backend.requests]))
        (a, reqs_a), (b, reqs_b) = runs
        assert a == b and reqs_a == reqs_b
        kinds = [json.loads(q)["kind"] for q in reqs_a]
        # a row in both orders; the structured proposal (not JSON here: 2 attempts) + 5 per-type + reason
        assert kinds.count("next_token_logprobs") == 2 and kinds.count("generate") == 8
        text = "\n".join(reqs_a)
        assert not h.find_leaks(text, [m.content for m in conv.messages[index:]] + h.all_thoughts([conv]))
        assert conv.messages[index - 1].content in text


async def test_model_based_inference_stops_a_leak_into_the_posterior(synth: Any, monkeypatch: pytest.MonkeyPatch,
                                                                     h: Any) -> None:
    """A bug that put the target message into the AutoToM evidence is refused before the posterior runs."""
    from thoughttrace.evals import inferred

    conv = synth[0]
    real = inferred.render

    def leaky(messages: Any, clip: Any = None) -> str:
        return real(messages, clip) + "\n" + conv.messages[2].content

    async def never(*a: Any, **k: Any) -> Any:  # pragma: no cover - the guard fires first
        raise AssertionError("the posterior must not see a leaking prompt")

    monkeypatch.setattr(inferred, "render", leaky)
    model = get_model_scripted(h)
    with pytest.raises(LeakageError):
        await inferred.ThoughtInferrer(model, "model-based", posterior_fn=never).infer(conv, 2)


def get_model_scripted(h: Any) -> Any:
    from thoughttrace.llm import get_model

    return get_model("scripted", cache=False, fn=h.default_fn)


def test_direct_and_model_based_inferences_in_one_folder_are_reported_apart(tmp_path: Path) -> None:
    """Both methods' records of the same messages share a folder (their keys differ): each gets its own rows."""
    recs = []
    for k in range(6):
        base = {"model": "m", "conversation_id": "c", "message_id": f"m{k}"}
        recs += [{**base, "condition": "history", "score": 30.0 + k}, {**base, "condition": "reaction", "score": 60.0 + k},
                 {**base, "condition": "inferred", "inferred": {"method": "direct"}, "score": 40.0 + k},
                 {**base, "condition": "inferred", "inferred": {"method": "model-based"}, "score": 50.0 + k}]
    summary, md = nm.summarise(recs, {}, {})
    overall = {r["condition"]: r for r in summary["overall"]}
    assert overall["inferred (direct)"]["n"] == overall["inferred (model-based)"]["n"] == 6
    gains = {g["condition"]: g["difference"]["mean"] for g in summary["gains"] if g["metric"] == "score"}
    assert gains["inferred (direct)"] == pytest.approx(10) and gains["inferred (model-based)"] == pytest.approx(20)
    shares = {r["inferred"]: r["share_of_oracle_gain"]["mean"] for r in summary["oracle_share"]}
    assert shares == {"inferred (direct)": pytest.approx(1 / 3), "inferred (model-based)": pytest.approx(2 / 3)}
    assert "| inferred (model-based) |" in md


def test_gains_pair_by_conversation_and_message_not_message_id_alone() -> None:
    # message ids repeat across conversations (m0, m1 in each); each target is its own pair
    recs = []
    for conv, shift in (("c1", 0), ("c2", 40)):
        for k in range(2):
            recs.append({"model": "m", "condition": "history", "conversation_id": conv, "message_id": f"m{k}",
                         "score": 10 + shift + k})
            recs.append({"model": "m", "condition": "reaction", "conversation_id": conv, "message_id": f"m{k}",
                         "score": 20 + shift + 3 * k})
    (row,) = [r for r in nm.gains(recs, "score") if r["condition"] == "reaction"]
    assert row["n"] == 4
    assert row["history_mean"] == pytest.approx((10 + 11 + 50 + 51) / 4)
    assert row["condition_mean"] == pytest.approx((20 + 23 + 60 + 63) / 4)
    assert row["difference"]["mean"] == pytest.approx((10 + 12 + 10 + 12) / 4)
