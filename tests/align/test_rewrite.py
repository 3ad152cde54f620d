"""Rewrite prompts: one skeleton for every guide, and no private thought outside the `thoughts` guide."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.align import (
    LeakageError,
    RewriteSettings,
    build_prompt,
    check_no_leak,
    rewrite_conversations,
)
from thoughttrace.align.rewrite import GUIDES, Target, private_thoughts, select_targets
from thoughttrace.data import read_conversations
from thoughttrace.llm import ChatMessage, get_model

from .conftest import NEXT_MESSAGE, REACTION, make_conversation


def _scripted():
    return get_model("scripted", cache=False, fn=lambda msgs, cfg: "Improved answer: Day 1: Colosseum, bus 1.50 EUR.")


def _prompt_texts(model) -> list[str]:
    return ["\n".join(m["content"] for m in r["messages"]) for r in model.backend.requests]


def test_select_targets_on_real_examples(examples_path):
    convs = read_conversations(examples_path)
    dissatisfied = select_targets(convs, "dissatisfied")
    # education-2 m5 and culture-2 m1 are Content Relevance with a following user turn; the Scope Fit
    # reaction on culture-2's last answer has no next message
    assert [(t.conversation.id, t.message.id) for t in dissatisfied] == [
        ("education-2", "education-2-m5"), ("culture-2", "culture-2-m1")]
    assert len(select_targets(convs, "dissatisfied", require_next_message=False)) == 3
    everything = select_targets(convs, "all", require_next_message=False)
    assert len(everything) == sum(len(c.assistant_messages) for c in convs)


def test_guides_differ_only_in_the_guidance_slot(conversation):
    prompts = {g: build_prompt(Target(conversation, 1), RewriteSettings(guide=g)) for g in GUIDES}
    systems = {p[0].content for p in prompts.values()}
    assert len(systems) == 1
    heads = {p[1].content.split("## What to improve")[0] for p in prompts.values()}
    assert len(heads) == 1
    tails = {g: p[1].content.split("## What to improve")[1] for g, p in prompts.items()}
    assert len(set(tails.values())) == 3
    assert REACTION in tails["thoughts"]
    assert NEXT_MESSAGE in tails["messages"]
    assert tails["none"].strip().endswith("Write the improved answer now.")


@pytest.mark.parametrize("guide", GUIDES)
def test_every_prompt_the_rewriter_received_is_leak_free(guide, examples_path, conversation):
    convs = [*read_conversations(examples_path), conversation]
    model = _scripted()
    rows = rewrite_conversations(convs, model, RewriteSettings(guide=guide, reactions="all"), progress=False)
    texts = {hashlib.sha256(t.encode()).hexdigest(): t for t in _prompt_texts(model)}
    assert len(texts) == len(rows) > 5
    by_id = {c.id: c for c in convs}
    for r in rows:
        text = texts[r.prompt_sha256]  # the exact prompt the rewriter received for this answer
        conv = by_id[r.conversation_id]
        own = [t.content.strip() for m in conv.messages if m.id == r.message_id for t in m.reactions or []]
        allowed = "\n".join(own) if guide == "thoughts" else ""
        visible = "\n".join(m.content for m in conv.messages)
        for thought in private_thoughts(conv):
            if thought in visible or thought in allowed:
                continue  # the same words are visible anyway, or this guide may see them
            assert thought not in text, f"{guide} prompt for {r.message_id} leaked {thought[:40]!r}"
        if guide == "thoughts":
            assert all(o in text for o in own)
        assert r.rewrite.startswith("Day 1")  # the label small models add is stripped
        assert r.guide == guide and r.rewriter == "scripted"


def test_reasons_never_reach_any_guide(conversation):
    model = _scripted()
    for guide in GUIDES:
        rewrite_conversations([conversation], model, RewriteSettings(guide=guide), progress=False)
    for text in _prompt_texts(model):
        assert "QUOKKA-REASON" not in text and "OTTER-REASON" not in text and "PANDA-REACTION" not in text


def test_guard_raises_on_a_leaked_reaction(conversation):
    target = Target(conversation, 1)
    bad = [ChatMessage(role="user", content=f"improve it. hint: {REACTION}")]
    for guide in ("messages", "none"):
        with pytest.raises(LeakageError):
            check_no_leak(target, guide, bad)
    check_no_leak(target, "thoughts", bad)  # allowed there
    with pytest.raises(LeakageError):  # another answer's reaction is never allowed
        check_no_leak(target, "thoughts", [ChatMessage(role="user", content="PANDA-REACTION fine")])


def test_guard_ignores_thoughts_that_repeat_visible_text():
    conv = make_conversation(reaction="Day 1: Colosseum.")  # the reaction quotes the answer
    target = Target(conv, 1)
    for guide in GUIDES:
        msgs = build_prompt(target, RewriteSettings(guide=guide))  # must not raise ...
        assert [m.role for m in msgs] == ["system", "user"]
        # ... although the thought's text IS in the prompt: as the answer being rewritten, which is visible
        assert "Day 1: Colosseum." in msgs[1].content and target.message.content in msgs[1].content
    # the same text as a thought nobody can see would be a leak: the guard is on, only visible text is allowed
    hidden = make_conversation(reaction="Only in my head: PANDA-7.")
    with pytest.raises(LeakageError):
        check_no_leak(Target(hidden, 1), "none", [ChatMessage(role="user", content="Only in my head: PANDA-7.")])


def test_a_rewrite_echoing_the_reaction_is_flagged(conversation):
    model = get_model("scripted", cache=False, fn=lambda msgs, cfg: f"Sure. As you said: {REACTION}.")
    (row,) = rewrite_conversations([conversation], model, RewriteSettings(guide="thoughts"), progress=False)
    assert row.quotes_thought
    (clean,) = rewrite_conversations([conversation], _scripted(), RewriteSettings(guide="thoughts"), progress=False)
    assert not clean.quotes_thought


def test_truncation_limits(conversation):
    settings = RewriteSettings(guide="none", max_history_chars=10, max_answer_chars=5)
    user = build_prompt(Target(conversation, 1), settings)[1].content
    assert "[...earlier conversation omitted...]" in user and "[...rest of the answer omitted...]" in user


@settings(max_examples=40, deadline=None)
@given(reaction=st.text(alphabet="QXZJKVW0123456789 ", min_size=6, max_size=60).filter(lambda s: len(s.strip()) >= 6))
def test_property_messages_and_none_prompts_never_contain_the_reaction(reaction):
    conv = make_conversation(reaction=reaction)
    for guide in ("messages", "none"):
        text = "\n".join(m.content for m in build_prompt(Target(conv, 1), RewriteSettings(guide=guide)))
        assert reaction.strip() not in text
    thoughts_text = build_prompt(Target(conv, 1), RewriteSettings(guide="thoughts"))[1].content
    assert reaction.strip() in thoughts_text


def test_all_turns_with_the_messages_guide_skips_answers_without_a_next_message(examples_path):
    convs = read_conversations(examples_path)
    model = _scripted()
    msgs = rewrite_conversations(convs, model, RewriteSettings(guide="messages", require_next_message=False),
                                 progress=False)
    nones = rewrite_conversations(convs, model, RewriteSettings(guide="none", require_next_message=False),
                                  progress=False)
    assert len(msgs) == 2 and len(nones) == 3
