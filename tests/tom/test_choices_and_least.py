"""No rule overrides the model where the model could answer (issue 28): a choice the story never names is kept and can
be the answer; "least" is read from the question's structure; a removed choice is never the answer."""

from __future__ import annotations

import pytest

from thoughttrace.tom.analysis import asks_least_likely
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig, absent_choice_groups
from thoughttrace.tom.oracle import OracleLikelihood
from thoughttrace.tom.result import Answer
from thoughttrace.tom.rules import with_rules

STORY = ("1 Ava entered the den.\n2 Ben entered the den.\n3 The pear is in the red_box.\n4 Ava exited the den.\n"
         "5 Ben moved the pear to the tin.")


async def _oracle(question: str, choices: list[str], gold: int, config: AutoToMConfig | None = None,
                  least: bool = False) -> Answer:
    lik = OracleLikelihood(choices, gold, least=least)
    return await AutoToM(config or AutoToMConfig(llm_steps=False), likelihood=lik).solve(None, STORY, question, choices)


async def test_a_choice_absent_from_the_story_is_kept_and_can_be_the_answer() -> None:
    """ "Not Given" names nothing in the story; the old choice filter gave it posterior 0, so it could never be the
    answer (it was the gold answer in 3 of 8 items of a held-out set)."""
    choices = ["red_box", "tin", "Not Given"]
    ans = await _oracle("Where does Ava think the pear is?", choices, gold=2)
    assert ans.trace["choices_filtered"] == [] and ans.posterior[2] > 0
    assert ans.answer == 2 and not ans.is_tie
    # the old rule, still there behind its switch (off by default), removes it
    old = await _oracle("Where does Ava think the pear is?", choices, gold=2,
                        config=AutoToMConfig(llm_steps=False, rules=with_rules("choice_filter")))
    assert old.trace["choices_filtered"] == ["Not Given"] and old.posterior[2] == 0.0 and old.answer != 2


def test_absent_choices_are_grouped_not_removed() -> None:
    story = "1 Ava entered the den.\n2 The pear is in the red_box."
    choices = ["green_drawer", "red_box", "blue_crate", "tin"]
    # two or more absent choices are one hypothesis together, where the first of them stands
    assert absent_choice_groups(story, choices, [0, 1, 2, 3]) == [[0, 2, 3], [1]]
    # a single absent choice is a hypothesis of its own
    assert absent_choice_groups(story, ["red_box", "Not Given"], [0, 1]) == [[0], [1]]


async def test_a_group_of_absent_choices_shares_its_posterior_and_is_never_zero() -> None:
    choices = ["red_box", "green_drawer", "tin", "blue_crate"]
    ans = await _oracle("Where does Ava think the pear is?", choices, gold=0)
    assert ans.trace["choices_grouped"] == [["green_drawer", "blue_crate"]]
    assert ans.posterior[1] == pytest.approx(ans.posterior[3]) and ans.posterior[1] > 0
    assert ans.answer == 0


@pytest.mark.parametrize(("question", "least"), [
    ("Which of the following statements is LEAST likely true?", True),
    ("Which one is the least probable?", True),
    ("Which statement is least plausible?", True),
    ("Which item does Bob want least?", False),
    ("Who is least interested in the cake?", False),
    ("What does Ann like the least?", False),
    ("Where will Ann look for the ball?", False),
])
def test_least_is_read_from_the_question_structure(question: str, least: bool) -> None:
    assert asks_least_likely(question) is least


async def test_a_least_wanted_item_is_the_most_likely_statement_not_the_argmin() -> None:
    """ "Which item does Ava want least?" asks for the item of the true statement "Ava wants X least": the argmax.
    Any "least" used to flip the answer to the argmin, which inverted it."""
    choices = ["the pear", "the tin"]
    ans = await _oracle("Which item does Ava want least?", choices, gold=1)
    assert ans.least_likely is False and ans.answer == 1
    likely = await _oracle("Which of the following statements is LEAST likely true?",
                           ["Ava thinks the pear is in the red_box.", "Ava thinks the pear is in the tin."], gold=1,
                           least=True)
    assert likely.least_likely is True and likely.answer == 1


def test_a_removed_choice_is_never_the_answer_even_as_the_argmin() -> None:
    """With the choice filter on, the filtered choice has posterior exactly 0: the argmin of a "least likely"
    question used to land on it."""
    ans = Answer.from_posterior("autotom", ["a", "b", "c"], [0.7, 0.3, 0.0], least=True, candidates=[0, 1])
    assert ans.answer == 1 and ans.ties == [1]
    assert Answer.from_posterior("autotom", ["a", "b", "c"], [0.7, 0.3, 0.0], least=True).answer == 2


async def test_end_to_end_a_filtered_choice_is_not_the_least_likely_answer() -> None:
    choices = ["red_box", "tin", "green_drawer"]
    cfg = AutoToMConfig(llm_steps=False, rules=with_rules("choice_filter"))
    ans = await _oracle("Which place is least likely where Ava thinks the pear is?", choices, gold=1, config=cfg,
                        least=True)
    assert ans.trace["choices_filtered"] == ["green_drawer"] and ans.least_likely
    assert ans.answer == 1
