from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.evals import Judge, available_rubrics, load_rubric, parse_score
from thoughttrace.llm import ParseError, get_model


@given(st.integers(min_value=1, max_value=5), st.text(max_size=80), st.sampled_from(["Score: {}", "score:{}",
       "**Score: {}**", "Score: {}/5", "SCORE = {}"]))
@settings(max_examples=80, deadline=None)
def test_parse_score_reads_the_final_line(value: int, preamble: str, form: str) -> None:
    text = f"{preamble}\n{form.format(value)}\n\n"
    assert parse_score(text, 1, 5) == value


@given(st.integers().filter(lambda v: v < 0 or v > 100))
def test_parse_score_rejects_out_of_scale(value: int) -> None:
    with pytest.raises(ParseError) as err:
        parse_score(f"ok\nScore: {value}", 0, 100)
    assert err.value.raw.endswith(str(value))


@given(st.text(max_size=200).filter(lambda t: "score" not in t.lower()))
@settings(max_examples=80, deadline=None)
def test_parse_score_rejects_anything_without_a_score_line(text: str) -> None:
    with pytest.raises(ParseError):
        parse_score(text, 1, 5)


def test_parse_score_is_strict_about_position_and_integers() -> None:
    with pytest.raises(ParseError):
        parse_score("Score: 4\nbecause it is close", 1, 5)  # not the last line
    with pytest.raises(ParseError):
        parse_score("Score: 3.5", 1, 5)
    assert parse_score("Score: 4.0", 1, 5) == 4


def test_rubrics_are_data_files_with_consistent_scales() -> None:
    assert {"thought_similarity", "message_similarity", "realism"} <= set(available_rubrics())
    assert load_rubric("thought_similarity").scale.max == 5
    r = load_rubric("message_similarity")
    assert (r.scale.min, r.scale.max) == (0, 100)
    prompt = r.render("AAA", "BBB")[1]["content"]
    assert "AAA" in prompt and "BBB" in prompt and "from 0 to 100" in prompt
    with pytest.raises(ValueError, match="no rubric named"):
        load_rubric("nope")


async def test_retry_feeds_the_error_back_then_succeeds() -> None:
    m = get_model("scripted", cache=False, outputs=["I think they are similar", "Similar.\nScore: 3"])
    res = await Judge(m, swap=False).ajudge("x", "y")
    assert res.mean == 3 and res.failures == 0 and res.samples[0].attempts == 2
    second = m.backend.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "I think they are similar"}
    assert "Score: N" in second[-1]["content"] and "could not be used" in second[-1]["content"]


async def test_unparseable_after_retries_is_a_failure_not_a_low_score() -> None:
    m = get_model("scripted", cache=False, outputs=["no idea"])
    res = await Judge(m, swap=False, max_retries=2).ajudge("x", "y")
    assert res.mean is None and res.failures == 1 and res.samples[0].attempts == 3
    assert len(m.backend.requests) == 3


async def test_samples_give_mean_spread_and_are_cached_apart() -> None:
    seen: list[Any] = []

    def fn(messages: Any, cfg: Any) -> str:
        seen.append(cfg)
        return f"ok\nScore: {1 + cfg.sample_index}"

    m = get_model("scripted", cache=True, fn=fn)
    judge = Judge(m, samples=3, swap=False)
    res = await judge.ajudge("x", "y")
    assert sorted(res.scores) == [1, 2, 3] and res.mean == 2 and res.sd == pytest.approx(1.0)
    assert all(c.temperature > 0 for c in seen)
    again = await judge.ajudge("x", "y")
    assert again.scores == res.scores
    assert m.usage.report().calls == 3 and m.usage.report().cache_hits == 3


async def test_position_swap_measures_and_cancels_order_bias() -> None:
    def fn(messages: Any, cfg: Any) -> str:
        text = messages[-1].content
        first_is_pred = text.index("PRED") < text.index("REF")
        return "ok\nScore: 5" if first_is_pred else "ok\nScore: 3"

    m = get_model("scripted", cache=False, fn=fn)
    res = await Judge(m).ajudge("PRED", "REF")
    assert res.mean == 4 and res.order_gap == 2 and len(m.backend.requests) == 2
    single = await Judge(m, swap=False).ajudge("PRED", "REF")
    assert single.mean == 5 and single.order_gap is None


def test_judge_needs_a_sample() -> None:
    with pytest.raises(ValueError):
        Judge(get_model("scripted", cache=False), samples=0)


def test_every_prompt_file_loads() -> None:
    from importlib import resources

    from thoughttrace.evals import load_prompt

    folder = resources.files("thoughttrace.evals").joinpath("prompts")
    names = [p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")]
    assert len(names) >= 6
    for name in names:
        p = load_prompt(name)
        assert p.format_version == 1 and p.parts


@given(st.text(alphabet="abcdefghij .,!?", min_size=1, max_size=60).filter(lambda t: t.strip(" .,!?")))
def test_clean_text_recovers_a_wrapped_note(note: str) -> None:
    from thoughttrace.evals.generation import clean_text

    wrapped = f"The user's last message above is:\n\nNote: \"{note.strip()}\"\nand then more text"
    assert clean_text(wrapped) == note.strip().strip('"')
    assert clean_text(note) == note.strip()


def test_clean_text_keeps_multi_line_messages_when_asked() -> None:
    from thoughttrace.evals.generation import clean_text

    assert clean_text("Message:\nline one\n\nline two", first_paragraph=False) == "line one\n\nline two"
