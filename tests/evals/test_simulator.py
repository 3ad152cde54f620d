from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thoughttrace.data import read_conversations, validate_file
from thoughttrace.evals import ItemStore, SimulationConfig, UserSimulator, jobs_for, simulate_many
from thoughttrace.evals.simulator import UserReaction, UserTurn, parse_json_object, persona_of, task_of
from thoughttrace.llm import ParseError, get_model


def user_fn(end_after: int = 99, bad_turn: bool = False, bad_reaction: bool = False) -> Any:
    state = {"turns": 0}

    def fn(messages: Any, cfg: Any) -> str:
        text = messages[-1].content
        if "Decide what you send next" in text or (bad_turn and "could not be used" in text):
            if bad_turn:
                return "Sure! Here is my message: hello"
            state["turns"] += 1
            k = state["turns"]
            return json.dumps({"reason": f"private why {k} (sample {cfg.sample_index})", "message": f"hello number {k}"})
        if bad_reaction:
            return "I liked it"
        decision = "end" if state["turns"] >= end_after else "Continue"
        return f'Sure: {{"reaction": "private take {state["turns"]}", "decision": "{decision}"}}'

    return fn


def models(fn: Any) -> tuple[Any, Any]:
    user = get_model("scripted:user", cache=False, fn=fn)
    assistant = get_model("scripted:assistant", cache=False, outputs=["Here is an answer."])
    return user, assistant


async def test_turns_reasons_reactions_and_user_ending() -> None:
    user, assistant = models(user_fn(end_after=2))
    conv = await UserSimulator(user, assistant, SimulationConfig(turns=5)).simulate("plan a trip", conversation_id="s1")
    assert [m.type for m in conv.messages] == ["user", "assistant"] * 2
    assert conv.messages[0].reasons[0].content.startswith("private why 1")
    assert conv.messages[1].reactions[0].content == "private take 1"
    assert conv.messages[2].content == "hello number 2" and conv.messages[3].reactions
    sim = conv.simulation  # type: ignore[attr-defined]
    assert sim["end_reason"] == "user ended" and sim["user_model"] == "scripted:user"
    assert conv.task_summary == "plan a trip" and conv.model_name == "scripted:assistant"
    # the assistant never sees a private note
    for req in assistant.backend.requests:
        text = json.dumps(req["messages"])
        assert "private" not in text and [m["role"] for m in req["messages"]][-1] == "user"
    # the user's own earlier notes are in the user's view
    assert any("[your reason: private why 1" in json.dumps(r["messages"]) for r in user.backend.requests)


async def test_turn_limit() -> None:
    user, assistant = models(user_fn())
    conv = await UserSimulator(user, assistant, SimulationConfig(turns=3)).simulate("t", conversation_id="s2")
    assert len(conv.user_messages) == 3 and conv.simulation["end_reason"] == "turn limit"  # type: ignore[attr-defined]


async def test_unparseable_reaction_retries_then_ends_the_conversation() -> None:
    user, assistant = models(user_fn(bad_reaction=True))
    conv = await UserSimulator(user, assistant, SimulationConfig(turns=3, max_retries=1)).simulate(
        "t", conversation_id="s3")
    assert len(conv.messages) == 2 and conv.messages[1].reactions is None
    assert conv.simulation["end_reason"].startswith("unparseable reaction")  # type: ignore[attr-defined]
    retry = user.backend.requests[2]["messages"]
    assert retry[-2]["content"] == "I liked it" and "could not be used" in retry[-1]["content"]


async def test_unparseable_first_turn_gives_an_empty_conversation() -> None:
    user, assistant = models(user_fn(bad_turn=True))
    conv = await UserSimulator(user, assistant, SimulationConfig(max_retries=2)).simulate("t", conversation_id="s4")
    assert conv.messages == [] and len(user.backend.requests) == 3 and not assistant.backend.requests


@given(st.text(max_size=40), st.text(min_size=1, max_size=40).filter(str.strip),
       st.text(min_size=1, max_size=40).filter(str.strip))
def test_parse_json_object_round_trips(prefix: str, reason: str, message: str) -> None:
    blob = json.dumps({"reason": reason, "message": message})
    prefix = prefix.replace("{", "").replace("}", "")
    got = parse_json_object(f"{prefix}{blob}", UserTurn)
    assert got.reason == reason.strip() and got.message == message.strip()


def test_parse_json_object_errors_keep_the_raw_text() -> None:
    with pytest.raises(ParseError) as err:
        parse_json_object('{"reaction": "ok", "decision": "maybe"}', UserReaction)
    assert "decision" in str(err.value) and err.value.raw.startswith("{")
    with pytest.raises(ParseError, match="no JSON"):
        parse_json_object("nothing here", UserReaction)
    with pytest.raises(ParseError, match="invalid JSON"):
        parse_json_object("{not json}", UserReaction)


async def test_simulate_many_writes_the_released_schema_and_resumes(examples_path: Path, tmp_path: Path) -> None:
    sources = read_conversations(examples_path)
    jobs = jobs_for(["write a poem"], per_task=2, sources=sources)
    assert [j.conversation_id for j in jobs][:3] == ["sim-task0-0", "sim-task0-1", "sim-education-2-0"]
    assert jobs[2].task == "Artillery history research (Education & Knowledge)" and jobs[2].source_id == "education-2"
    out = tmp_path / "sim.jsonl"
    user = get_model("scripted:user", cache=tmp_path / "c.sqlite", fn=user_fn(end_after=1))
    assistant = get_model("scripted:assistant", cache=tmp_path / "c.sqlite", outputs=["An answer."])
    sim = UserSimulator(user, assistant, SimulationConfig(turns=2))
    stats = await simulate_many(sim, jobs, ItemStore(out, key_field="id"), sources=sources, concurrency=2)
    assert stats.computed == len(jobs) == 8
    report = validate_file(out)
    assert report.ok and report.valid == 8
    convs = read_conversations(out)
    assert all(c.simulation["format_version"] == 1 for c in convs)  # type: ignore[attr-defined]
    assert {c.domain for c in convs if c.id.startswith("sim-health")} == {"Health & Relationships"}
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    user2 = get_model("scripted:user", cache=tmp_path / "c.sqlite", fn=user_fn(end_after=1))
    assistant2 = get_model("scripted:assistant", cache=tmp_path / "c.sqlite", outputs=["An answer."])
    stats2 = await simulate_many(UserSimulator(user2, assistant2, SimulationConfig(turns=2)), jobs,
                                 ItemStore(out, key_field="id"), sources=sources)
    assert stats2.skipped == 3 and stats2.computed == 5
    assert user2.usage.report().calls == 0 and assistant2.usage.report().calls == 0
    assert len(read_conversations(out)) == 8


def test_task_and_persona_from_real_conversations() -> None:
    from thoughttrace.data import Conversation

    c = Conversation.model_validate({"id": "x", "task_summary": "Find a recipe", "task_expectation": "quick ideas",
                                     "survey_answers": {"age": "30", "occupation": "nurse", "feedback": "n/a"},
                                     "messages": []})
    assert task_of(c) == "Find a recipe Expected: quick ideas"
    assert persona_of(c) == "age: 30; occupation: nurse"
    assert task_of(Conversation.model_validate({"id": "y", "messages": []})) is None


def test_placeholder_echoes_are_rejected_so_the_retry_asks_again() -> None:
    with pytest.raises(ParseError, match="placeholder"):
        parse_json_object('{"reason": "<why you send it>", "message": "hi"}', UserTurn)
    with pytest.raises(ParseError, match="placeholder"):
        parse_json_object('{"reaction": "...", "decision": "end"}', UserReaction)


async def test_the_assistant_prompt_guard_really_checks_the_notes() -> None:
    """A guard that checks nothing would let a note through; here a note reaches the assistant's prompt
    through its system prompt (a prompt-assembly bug) and the guard must stop the call."""
    from thoughttrace.data import Message
    from thoughttrace.evals import LeakageError

    user, assistant = models(user_fn())
    msgs = [Message.model_validate({"id": "u0", "type": "user", "content": "hello there",
                                    "reasons": [{"content": "my secret plan about the heist"}]})]
    leaky = UserSimulator(user, assistant, SimulationConfig(assistant_system="Note: my secret plan about the heist"))
    with pytest.raises(LeakageError, match="must not see"):
        await leaky._assistant_reply(msgs)
    assert assistant.backend.requests == []  # stopped before the call
    ok = UserSimulator(user, assistant, SimulationConfig(assistant_system="Be helpful."))
    assert await ok._assistant_reply(msgs) == "Here is an answer."
