"""Dialogues are first-class (issue 28): speaker turns become a timeline where each utterance is an observation of
everyone present when it is said; joining and leaving change who is present; lower-case speakers are agents; a
question about what someone thinks is answered from what they heard. Hand-written dialogues with known answers."""

from __future__ import annotations

import pytest

from thoughttrace.tom.analysis import names_in, story_actors
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.dialogue import is_dialogue, parse_line, presence
from thoughttrace.tom.items import ToMItem
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood
from thoughttrace.tom.rules import without
from thoughttrace.tom.timeline import perceive, split_sentences

PLACES = ("mat", "drawer", "shelf")

#: Bob leaves before the key is moved; Carl speaks only after the move but was there from the start
LEAVE = ("ann: I put the key under the mat. Bob, can you fetch it later?\n"
         "Bob: Sure. I will take it from under the mat.\n"
         "Bob leaves.\n"
         "ann: Carl, I just moved the key to the drawer.\n"
         "Carl: Got it, the drawer.")
#: Dana joins after the key was put under the mat, and hears only the move
JOIN = ("Ann: I put the key under the mat.\n"
        "Bob: Thanks, under the mat then.\n"
        "[Dana joins]\n"
        "Ann: Hi Dana. Actually I moved the key to the drawer.\n"
        "Dana: Okay.")
#: Bob leaves, misses the move, comes back by speaking, and then hears the second move
RETURN = ("Ann: The key is under the mat.\n"
          "Bob: Okay.\n"
          "(Bob has left the call)\n"
          "Ann: I moved the key to the drawer.\n"
          "Carl: Noted.\n"
          "Bob: Sorry, I am back.\n"
          "Ann: Now the key is on the shelf.")


def _lines(story: str) -> list[str]:
    return split_sentences(story)


def test_each_turn_stays_one_line_with_its_speaker() -> None:
    lines = _lines(LEAVE)
    assert len(lines) == 5 and lines[0].startswith("ann: I put the key under the mat. Bob,")
    assert is_dialogue(lines) and not is_dialogue(["Ann walked in.", "Ann: hello."])


def test_presence_rules() -> None:
    # 1. present from the start unless one's first appearance is a joining; a leaver hears its own leaving, then no more
    assert presence(_lines(LEAVE), "Bob") == {0: True, 1: True, 2: True, 3: False, 4: False}
    assert presence(_lines(LEAVE), "Carl") == {0: True, 1: True, 2: True, 3: True, 4: True}
    # 2. a joining makes the joiner present from that line on
    assert presence(_lines(JOIN), "Dana") == {0: False, 1: False, 2: True, 3: True, 4: True}
    # 3.-4. a speaker is present when speaking: Bob is back at line 5 and hears line 6
    assert presence(_lines(RETURN), "Bob") == {0: True, 1: True, 2: True, 3: False, 4: False, 5: True, 6: True}
    # not a participant, or not a dialogue: the rule says nothing
    assert presence(_lines(LEAVE), "Eve") is None
    assert presence(["Ann entered the kitchen.", "Bob left."], "Ann") is None
    assert parse_line("Sam and Kim logged off.").people == ("sam", "kim")


def test_lower_case_speakers_are_agents() -> None:
    assert "ann" in story_actors(LEAVE)
    assert names_in("Where does Ann think the key is?", LEAVE) == ["ann"]
    assert names_in("Where does Bob think the key is?", LEAVE) == ["Bob"]


async def test_perception_follows_presence_without_any_model_call() -> None:
    per = await perceive(None, _lines(JOIN), "Dana", use_llm=False)
    assert per.observed == [2, 3, 4] and per.actions == [4]
    assert per.trace["dialogue"]["not_heard"] == [0, 1]
    off = await perceive(None, _lines(JOIN), "Dana", use_llm=False, rules=without("dialogue_presence"))
    assert off.observed is None  # without the rule and without a model, what Dana heard is unknown


def _heard(req: LikelihoodRequest) -> float:
    """A competent listener: a belief about the key is likely when the last place it heard the key at is that place
    (else the place it believed before), unlikely otherwise."""
    if "believes" not in req.variable:
        return 0.5
    facts = dict(req.facts)
    place = next((p for p in PLACES if p in req.value), None)
    heard = next((v for k, v in facts.items() if k.endswith("perceived")), "")
    named = sorted((p for p in PLACES if p in heard and "key" in heard), key=heard.rfind)
    where = named[-1] if named else next((p for p in PLACES if p in next(
        (v for k, v in facts.items() if k.endswith("believed before")), "")), None)
    if where is None:
        return 0.5
    return 0.9 if place == where else 0.1


CASES = [
    (LEAVE, "Where does Bob think the key is?", 0),   # left before the move
    (LEAVE, "Where does Carl think the key is?", 1),  # there all along
    (LEAVE, "Where does ann think the key is?", 1),   # the speaker, lower case
    (JOIN, "Where does Dana think the key is?", 1),   # joined before the move
    (JOIN, "Where does Bob think the key is?", 1),    # never left
    (RETURN, "Where does Bob think the key is?", 2),  # missed the drawer, came back for the shelf
    (RETURN, "Where does Carl think the key is?", 2),  # there from the start to the end
]


@pytest.mark.parametrize(("story", "question", "gold"), CASES)
async def test_what_someone_thinks_comes_from_what_they_heard(story: str, question: str, gold: int) -> None:
    choices = ["under the mat", "in the drawer", "on the shelf"]
    ans = await AutoToM(AutoToMConfig(llm_steps=False), likelihood=ScriptedLikelihood(_heard)).solve(
        None, story, question, choices)
    assert ans.error is None and ans.answer == gold, (ans.posterior, ans.trace.get("timeline"))


async def test_without_presence_bob_hears_the_move_he_was_not_there_for() -> None:
    """The same question with the rule off: no model and no presence, so each step's observation is latent and
    the answer is no longer what Bob heard."""
    choices = ["under the mat", "in the drawer", "on the shelf"]
    ans = await AutoToM(AutoToMConfig(llm_steps=False, rules=without("dialogue_presence")),
                        likelihood=ScriptedLikelihood(_heard)).solve(None, LEAVE, "Where does Bob think the key is?",
                                                                     choices)
    assert ans.answer != 0 or ans.is_tie


def test_a_dialogue_field_becomes_speaker_lines() -> None:
    item = ToMItem.model_validate({"id": "d1", "benchmark": "hand", "question": "Where does Bob think the key is?",
                                   "choices": ["mat", "drawer"], "answer": "A",
                                   "dialogue": [{"speaker": "ann", "text": "The key is under the mat."},
                                                {"speaker": "Bob", "text": "Okay."}, {"event": "Bob leaves."},
                                                {"speaker": "ann", "text": "I moved it to the drawer."}]})
    assert item.story.splitlines() == ["ann: The key is under the mat.", "Bob: Okay.", "Bob leaves.",
                                       "ann: I moved it to the drawer."]
    with pytest.raises(ValueError, match="dialogue turn 1 needs 'speaker' and 'text'"):
        ToMItem.model_validate({"id": "d2", "benchmark": "hand", "question": "q", "choices": ["a", "b"],
                                "dialogue": [{"speaker": "ann"}]})
