"""Low-effort flag thresholds that scripts/mutate.py found unprotected (collect/quality.py).

Why: each flag is a documented rule with a threshold (QualityRules); a researcher reads "short_note" as
"shorter than min_note_chars", so the boundary values are part of the promise: exactly at the threshold is
not flagged, one past it is. The rules are pure functions of the notes, tested here without a server.
"""

from __future__ import annotations

import pytest
from collect_helpers import study as make_study

from thoughttrace.collect.quality import Note, attention_failures, note_flags
from thoughttrace.collect.study import SurveyItem

STUDY = make_study()  # default rules: min_note_chars 8, 25 chars/s, keystroke ratio 0.3, repeat limit 2


def note(content: str, message: str = "an unrelated message", typing_ms: int | None = None,
         keystrokes: int | None = None) -> Note:
    return Note("reason", content, message, typing_ms, keystrokes)


def test_an_unanswered_attention_check_fails() -> None:
    item = SurveyItem(id="att", type="single", question="Pick Agree", options=["Agree", "No"], attention_check="Agree")
    assert attention_failures([item], {"att": None, "other": 1}) == ["att"]
    assert attention_failures([item], {"att": "Agree"}) == []


def test_messages_without_a_reason_count_as_empty_notes_one_each() -> None:
    assert note_flags(STUDY, [], unreasoned_messages=3) == {"empty_note": 3}
    assert note_flags(STUDY, [note("  !!! "), note("")]) == {"empty_note": 2}


def test_a_note_of_exactly_the_minimum_length_is_not_short() -> None:
    assert STUDY.quality.min_note_chars == 8
    assert note_flags(STUDY, [note("abcdefgh")])["short_note"] == 0
    assert note_flags(STUDY, [note("abcdefg")])["short_note"] == 1


def test_a_note_of_ten_characters_inside_the_message_is_copied() -> None:
    assert note_flags(STUDY, [note("tell me ab", "tell me about Lyon please")])["copied_note"] == 1
    assert note_flags(STUDY, [note("tell me a", "tell me about Lyon please")])["copied_note"] == 0  # 9: too short
    assert note_flags(STUDY, [note("Lyon", "lyon!")])["copied_note"] == 1  # the whole message, any length


def test_typing_exactly_at_the_speed_limit_is_not_too_fast() -> None:
    text = "x" * 25
    assert note_flags(STUDY, [note(text, typing_ms=1000)])["fast_typing"] == 0  # 25 chars/s: allowed
    assert note_flags(STUDY, [note(text + "x", typing_ms=1000)])["fast_typing"] == 1  # 26 chars/s


@pytest.mark.parametrize(("keystrokes", "flagged"), [(30, 0), (29, 1)])
def test_a_note_is_pasted_below_the_keystroke_ratio_even_with_no_timing(keystrokes: int, flagged: int) -> None:
    # 100 characters: 30 keystrokes is exactly the 0.3 ratio (typed), 29 is below it (pasted); no typing time
    assert note_flags(STUDY, [note("y" * 100, keystrokes=keystrokes)])["fast_typing"] == flagged


def test_a_message_sent_without_a_reason_is_one_empty_note_in_the_admin_list(app_maker) -> None:
    """The database path of the flags (quality_flags): a user message with no reason note at all counts once."""
    from collect_helpers import Participant, key

    client, _app, _ = app_maker(tasks_per_participant=1, require_reason=False)
    p = Participant(client(), PROLIFIC_PID="quiet1", STUDY_ID="s", SESSION_ID="a")
    p.start()
    p.consent()
    p.quiz()
    p.task()
    r = p.api(f"/api/c/{p.cid}/messages", {"content": "tell me about Lyon", "idempotency_key": key()})
    assert r.status_code == 201, r.text
    rows = {r["prolific_pid"]: r for r in client().get(
        "/admin/api/participants", headers={"Authorization": "Bearer admin-token-for-tests-0123"}).json()["participants"]}
    assert rows["quiet1"]["flags"] == {"empty_note": 1}
