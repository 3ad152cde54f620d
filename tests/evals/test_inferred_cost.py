"""Model-based inferred reactions (`evals.inferred`): one row over the candidates asked in both orders, one
structured proposal call, a request count per inferred message that is bounded and independent of the number
of turns, and the leakage guard on every prompt of the new path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from thoughttrace.data import load_taxonomy
from thoughttrace.evals import LeakageError
from thoughttrace.evals import inferred as inf
from thoughttrace.evals.inferred import ThoughtInferrer
from thoughttrace.evals.transcript import ClipConfig
from thoughttrace.llm import get_model

LABELS = [t.label for t in load_taxonomy().reactions]
STRUCTURED = "For EACH type, write one such note"


def _text(messages: Any) -> str:
    return "\n".join(m["content"] if isinstance(m, dict) else m.content for m in messages)


def _options(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln[:1].isupper() and ln[1:3] == ". "]


def _model(h: Any, structured: Any = None, liked: str = "Scope Fit") -> Any:
    """Scripted: the structured proposal answers `structured(text)` (default: every type as JSON); rows put
    their mass on the option of type `liked`, with a taste for letter A; statements like `liked` a little."""

    def fn(messages: Any, cfg: Any) -> str:
        text = _text(messages)
        if STRUCTURED in text:
            if structured is not None:
                return str(structured(text))
            return json.dumps({lab: f"I guess this is about {lab}." for lab in LABELS})
        return str(h.default_fn(messages, cfg))

    def logprobs(messages: Any) -> dict[str, float]:
        text = _text(messages)
        opts = _options(text)
        if opts:
            return {f" {ln[0]}": (0.6 if f"about {liked}." in ln else 0.08) * (2.0 if ln[0] == "A" else 1.0)
                    for ln in opts}
        return {"Likely": 0.55, "Unlikely": 0.45} if f"about {liked}." in text else {"Likely": 0.5, "Unlikely": 0.5}

    return get_model("scripted", cache=False, fn=fn, logprobs=logprobs)


def _kinds(model: Any) -> list[str]:
    return [q["kind"] for q in model.backend.requests]


async def test_the_row_path_is_used_and_both_orders_are_asked(synth: Any, h: Any) -> None:
    model = _model(h)
    out = await ThoughtInferrer(model, "model-based").infer(synth[0], 4)
    assert out.posterior_mode == "row" and out.reaction_type == "Scope Fit" and out.error is None
    assert out.proposal == {"mode": "structured", "attempts": 1, "per_type_fallback": []}
    rows = [_options(_text(q["messages"])) for q in model.backend.requests if q["kind"] == "next_token_logprobs"]
    assert len(rows) == 2 and [o[3:] for o in rows[1]] == [o[3:] for o in rows[0]][::-1]  # given, then reversed
    post = [c["posterior"] for c in out.candidates]
    assert len(post) == 5 and sum(post) == pytest.approx(1.0) and max(post) > 0.5  # separated, not ~0.2 each
    # 1 structured proposal + 2 row orders + 1 reason
    assert out.usage["requests"] == 4 == len(model.backend.requests)
    assert _kinds(model).count("generate") == 2
    # the largest single prompt, not the sum of the four
    assert 0 < out.usage["max_prompt_tokens"] < out.usage["prompt_tokens"]


async def test_statements_stay_available_and_are_flat_where_rows_separate(synth: Any, h: Any) -> None:
    model = _model(h)
    out = await ThoughtInferrer(model, "model-based", posterior_mode="statements").infer(synth[0], 4)
    assert out.posterior_mode == "statements" and _kinds(model).count("next_token_logprobs") == 5
    assert max(c["posterior"] for c in out.candidates) < 0.25  # independent statements: near uniform
    assert out.usage["requests"] == 7
    with pytest.raises(ValueError, match="posterior mode"):
        ThoughtInferrer(model, "model-based", posterior_mode="rows")  # type: ignore[arg-type]


async def test_invalid_json_is_fed_back_once_then_missing_types_are_proposed_one_by_one(synth: Any, h: Any) -> None:
    partial = {lab: f"I guess this is about {lab}." for lab in LABELS[:3]}
    model = _model(h, structured=lambda text: json.dumps(partial))
    out = await ThoughtInferrer(model, "model-based").infer(synth[0], 2)
    assert out.proposal is not None and out.proposal["attempts"] == 2 and out.proposal["per_type_fallback"] == LABELS[3:]
    retry = [q for q in model.backend.requests if q["kind"] == "generate" and STRUCTURED in _text(q["messages"])][1]
    assert f"missing or empty note for '{LABELS[3]}'" in retry["messages"][-1]["content"]
    assert [c["type"] for c in out.candidates] == LABELS  # the fallback filled the two missing types
    assert out.usage["requests"] == 2 + 2 + 2 + 1


@pytest.mark.parametrize("turns", [2, 10, 30])
async def test_requests_per_message_are_bounded_and_do_not_grow_with_turns(h: Any, turns: int) -> None:
    """A long conversation costs the same requests per inferred message, and its prompts stay within the clip
    limits: tokens at the last message of a 60-message conversation are no more than at message 30."""
    conv = h.synthetic_conversation("long", n_pairs=30)
    clip = ClipConfig(max_message_chars=200, max_chars=600)
    usage, chars = {}, {}
    for index in (turns, 58):
        model = _model(h)
        inferrer = ThoughtInferrer(model, "model-based", clip=clip)
        out = await inferrer.infer(conv, index)
        usage[index] = out.usage
        chars[index] = sum(len(_text(q["messages"])) for q in model.backend.requests)  # every request's prompt
        assert out.usage["requests"] == 4 and inferrer.max_requests <= 20
    if turns == 30:  # both clipped: the evidence and the context show at most max_chars each
        assert usage[58]["prompt_tokens"] <= usage[30]["prompt_tokens"] * 1.05
        assert chars[58] <= chars[30] * 1.05


async def test_the_worst_case_stays_within_the_ceiling(synth: Any, h: Any) -> None:
    """Every step failing (no JSON twice, empty per-type notes, empty reasons) still stops at the ceiling."""

    def fn(messages: Any, cfg: Any) -> str:
        return "not json at all" if STRUCTURED in _text(messages) else ""

    model = get_model("scripted", cache=False, fn=fn)
    inferrer = ThoughtInferrer(model, "model-based")
    out = await inferrer.infer(synth[0], 4)
    assert out.reaction == "" and out.error and "no candidate" in out.error
    assert out.usage["requests"] == len(model.backend.requests) <= inferrer.max_requests <= 20
    assert inferrer.max_requests == 2 + 5 + 2 + 2
    assert ThoughtInferrer(model, "model-based", posterior_mode="statements").max_requests == 2 + 5 + 5 + 2


async def test_the_guard_fires_on_a_thought_planted_in_the_structured_proposal(synth: Any, h: Any,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    conv = synth[0]
    real = inf.render

    def planted(messages: Any, clip: Any = None) -> str:
        return real(messages, clip) + "\n" + conv.messages[1].reactions[0].content

    monkeypatch.setattr(inf, "render", planted)
    model = _model(h)
    with pytest.raises(LeakageError, match=r"inferred reaction \(proposal\)"):
        await ThoughtInferrer(model, "model-based").infer(conv, 2)
    assert model.backend.requests == []  # refused before any request


async def test_the_guard_fires_on_a_thought_planted_in_the_evidence(synth: Any, h: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    conv = synth[0]

    def planted(c: Any, index: int, clip: Any) -> str:
        return "The user's messages so far were: " + conv.messages[2].reasons[0].content

    async def never(*a: Any, **k: Any) -> Any:  # pragma: no cover - the guard fires first
        raise AssertionError("the posterior must not see a leaking prompt")

    monkeypatch.setattr(inf, "evidence_text", planted)
    with pytest.raises(LeakageError, match="inverse planning"):
        await ThoughtInferrer(_model(h), "model-based", posterior_fn=never).infer(conv, 4)


def test_parse_proposals_names_the_problem() -> None:
    notes, problem = inf.parse_proposals('Sure! {"Scope Fit": "It was too broad."}', ["Scope Fit", "Other"])
    assert notes == {"Scope Fit": "It was too broad."} and problem == "missing or empty note for 'Other'"
    assert inf.parse_proposals("no braces", ["x"]) == ({}, "no JSON object found")
    assert inf.parse_proposals('{"x": "ok", "y": "extra"}', ["x"])[1] == "unknown key 'y' (use exactly the type names)"


def test_a_note_must_say_something_of_its_own() -> None:
    labels = ["Scope Fit", "Partial Satisfaction", "Presentation Style"]
    defs = {"Partial Satisfaction": "The answer helped, but with shortcomings."}
    reply = json.dumps({"Scope Fit": "It was far too long for me.", "Partial Satisfaction": "The answer helped, but "
                        "with shortcomings.", "Presentation Style": "It was far too long for me!"})
    notes, problem = inf.parse_proposals(reply, labels, defs)
    assert notes == {"Scope Fit": "It was far too long for me."}
    assert problem == "the note for 'Partial Satisfaction' repeats the type's name or definition; write what this user thought"
    _, problem2 = inf.parse_proposals(json.dumps({"Scope Fit": "a", "Presentation Style": "A."}), ["Scope Fit", "Presentation Style"])
    assert problem2 == "the notes for 'Scope Fit' and 'Presentation Style' are the same; write a different note for each type"
    assert inf.parse_proposals('{"Scope Fit": "It was too lo', ["Scope Fit"])[1].startswith("the JSON object was cut off")


async def test_duplicate_notes_are_fed_back_and_only_the_duplicates_are_proposed_again(synth: Any, h: Any) -> None:
    same = {lab: "I liked it." for lab in LABELS}
    model = _model(h, structured=lambda text: json.dumps(same))
    out = await ThoughtInferrer(model, "model-based").infer(synth[0], 2)
    assert out.proposal is not None and out.proposal["attempts"] == 2
    assert out.proposal["per_type_fallback"] == LABELS[1:]  # the first keeps "I liked it.", the rest differ by type
    assert [c["type"] for c in out.candidates] == LABELS and len({c["thought"] for c in out.candidates}) == 5


@pytest.mark.model
async def test_row_inference_with_the_embedded_model(examples_path: Any, tmp_path: Any) -> None:
    """The real model (SmolLM2-135M via llama.cpp): the row path runs end to end, its posterior is a distribution,
    and the message stays within the request ceiling. No accuracy claim for a 135M model."""
    from thoughttrace.data import read_conversations

    conv = read_conversations(examples_path)[0]
    model = get_model("local:smollm2", cache=tmp_path / "cache.sqlite")
    inferrer = ThoughtInferrer(model, "model-based", clip=ClipConfig(max_chars=1200, max_message_chars=300),
                               max_tokens=32)
    try:
        out = await inferrer.infer(conv, 2)
    finally:
        await model.aclose()
    assert out.posterior_mode == "row" and out.candidates
    assert sum(c["posterior"] for c in out.candidates) == pytest.approx(1.0)
    assert 2 <= out.usage["requests"] <= inferrer.max_requests <= 20
    if len(out.candidates) > 1:
        assert out.usage["requests_next_token_logprobs"] == 2  # one row, both orders


def test_the_clipped_history_keeps_the_most_recent_messages_in_order() -> None:
    from thoughttrace.evals.transcript import keep_recent

    kept, omitted = keep_recent(["m0 " * 10, "m1 " * 10, "m2 " * 10, "m3 " * 10], max_chars=70, sep=2)
    assert [k.split()[0] for k in kept] == ["m2", "m3"] and omitted == 2
    assert keep_recent(["x" * 100], max_chars=10, sep=2) == (["x" * 100], 0)  # the last one is always kept
