"""Sentences, timesteps cut at the agent's actions, observations limited to what it perceived."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.tom.analysis import heuristic_parse
from thoughttrace.tom.timeline import NOTHING_NEW, PerceptionResult, build_timeline, split_sentences

from .scripted import STORY


def test_numbered_lines_and_prose() -> None:
    assert split_sentences(STORY)[4] == "Anne moved the ball to the box."
    assert split_sentences('Ann left. Bob said, "Hi." Then he sat.') == ["Ann left.", 'Bob said, "Hi."', "Then he sat."]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[A-Z][a-z]{1,8}( [a-z]{1,8}){0,4}\.", fullmatch=True), min_size=1, max_size=8))
def test_split_sentences_round_trips_prose_and_numbers(sentences: list[str]) -> None:
    assert split_sentences(" ".join(sentences)) == sentences
    if len(sentences) > 1:
        numbered = "\n".join(f"{i + 1} {s}" for i, s in enumerate(sentences))
        assert split_sentences(numbered) == sentences


def test_timeline_cuts_at_actions_and_filters_observations() -> None:
    sentences = split_sentences(STORY)
    steps = build_timeline(sentences, PerceptionResult(observed=[0, 1, 2, 3], actions=[0, 3]))
    assert [s.action for s in steps] == ["Sally entered the kitchen.", "Sally exited the kitchen.", None]
    assert steps[0].observation == NOTHING_NEW
    assert steps[1].observation == "Anne entered the kitchen. The ball is in the basket."
    assert steps[2].observation == NOTHING_NEW  # the move happened, Sally did not perceive it
    assert "moved the ball" in steps[2].state and steps[2].events == "Anne moved the ball to the box."
    unknown = build_timeline(sentences, PerceptionResult(observed=None, actions=[0, 3]))
    assert all(s.observation is None for s in unknown)


def test_quoted_actions_are_utterances() -> None:
    sentences = ["Ann walked in.", 'Ann said, "The key is in the drawer."', "Bob left."]
    steps = build_timeline(sentences, PerceptionResult(observed=[0, 1, 2], actions=[0, 1]))
    assert steps[1].utterance and steps[1].action is None


def test_omniscient_question_is_one_step() -> None:
    steps = build_timeline(split_sentences(STORY), None)
    assert len(steps) == 1 and "moved the ball" in (steps[0].observation or "")


def test_heuristic_parse_uses_general_cues() -> None:
    p = heuristic_parse(STORY, "Where does Anne think that Sally thinks the ball is?", ["basket", "box"])
    assert p.agents == ["Anne", "Sally"] and p.variable == "belief"
    p = heuristic_parse(STORY, "If Sally has been trying to get the ball, which is LEAST likely?",
                        ["Sally thinks the ball is in the box.", "Sally thinks the ball is in the basket."])
    assert p.least_likely and p.known[0].variable == "goal" and p.variable == "belief"
    assert heuristic_parse(STORY, "Where is the ball really?", ["basket", "box"]).variable == "state"
