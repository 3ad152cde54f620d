"""Every deterministic text rule of the engine, in one place, each with a switch.

A rule is a statement about the model (who perceives what, what an act can bear on, what a question asks) that the
engine applies without asking the LLM. Each is named here, says where it lives and what it states, and can be turned
off one at a time (`AutoToMConfig(rules=without("co_location"))`, `bench/tom_dev.py --ablate co_location`), so a
reader sees all of them at once and a bench can measure what each one buys. `tests/tom/test_rules.py` has one test
per rule: with the rule on it fires on a small story, with it off it does not.

A rule that is off leaves the decision to the model (the LLM's perception, parse or likelihood), or, where there is
no model answer to fall back on, to the method's plain default (e.g. no argmin for "least": the argmax).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    where: str
    states: str
    default: bool = True


_ALL = (
    # question
    Rule("least_likely", "analysis.asks_least_likely",
         "a question asking for the LEAST likely / probable / plausible statement is answered by the argmin; any other "
         "'least' (\"which item does X want least\") is part of what is asked, answered by the argmax"),
    # perception and timeline
    Rule("subject_action", "timeline.perceive",
         "a sentence whose subject is the agent is its own action (whatever the model listed)"),
    Rule("act_names_agent", "timeline.perceive",
         "a sentence the model lists as the agent's action is kept only when it names the agent or its subject is a "
         "pronoun"),
    Rule("perception_verbs", "timeline.non_action",
         "what the agent notices / sees is observed, what it fails to notice is not, a stated state or mental state is "
         "observed without being an act"),
    Rule("noticed_events", "timeline.perceive",
         "the event a perception sentence is about (the sentence before it, sharing a content word) is observed when "
         "noticed and not observed when missed"),
    Rule("co_location", "timeline.co_location",
         "nobody perceives what happens in a room they are not in (stories that say who enters and exits where)"),
    Rule("private_audience", "timeline.private_audience",
         "a private communication is perceived by its speakers and addressees only"),
    Rule("dialogue_presence", "dialogue.presence",
         "in a story told as speaker turns, an utterance is perceived by everyone present when it is said; joining "
         "and leaving change who is present; a speaker is present when speaking"),
    Rule("own_acts_observed", "timeline.build_timeline",
         "an agent perceives its own acts: each act is part of what it observed at the next step"),
    # choices
    Rule("choice_filter", "autotom.choices_in_story",
         "(off by default: it removed answers the model could give, e.g. 'Not Given') a short choice naming nothing in "
         "the story is left out with posterior 0", default=False),
    Rule("absent_choices_grouped", "autotom.absent_choice_groups",
         "two or more short choices naming nothing in the story are one hypothesis together, sharing its posterior: "
         "nothing is removed, the model can still pick them (n^2 belief transitions over 3 hypotheses, not 15)"),
    # fixed factors
    Rule("unrelated_observation", "factors.fixed_reason",
         "an observation that mentions none of the words telling the belief hypotheses apart cannot move the belief"),
    Rule("first_step_no_evidence", "factors.fixed_reason",
         "at a window's first step, nothing new (or an unrelated observation) is no evidence for any belief"),
    Rule("act_unrelated", "factors.fixed_reason",
         "an observed act that mentions nothing the belief hypotheses are about has the same likelihood under each"),
    Rule("other_placements", "wording.without_other_placements",
         "a clause placing an object the hypotheses never name bears on none of them"),
    # hypotheses and discovery
    Rule("reasons_cut", "autotom._Grounding.without_reasons",
         "a proposed hypothesis is its claim without its 'because ...' reason"),
    Rule("restating_goals", "autotom._Grounding.propose",
         "a proposed goal that restates an answer choice is an answer, not a goal: dropped"),
    Rule("no_evidence_window", "autotom._Grounding.no_evidence_at",
         "a model's time window never starts at a step that carries no evidence"),
    Rule("unmoving_perception", "autotom._Grounding.asks_perception",
         "in a nested model, an observation that cannot move the inner belief is taken as perceived, not inferred"),
)

RULES: dict[str, Rule] = {r.name: r for r in _ALL}
#: the rules on by default
DEFAULT_RULES: frozenset[str] = frozenset(r.name for r in _ALL if r.default)
#: every rule on (the default-off ones too)
ALL_RULES: frozenset[str] = frozenset(RULES)
#: the rules of the engine before issue 28 (v2): the choice filter on, no own acts fed to the belief, no dialogue
#: presence; frozen tests that pin that engine's requests run with it
LEGACY_RULES: frozenset[str] = (DEFAULT_RULES - {"own_acts_observed", "dialogue_presence", "absent_choices_grouped"}) \
    | {"choice_filter"}


def check(names: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    """The names as a rule set; an unknown name is a clear error naming the known ones."""
    unknown = sorted(set(names) - set(RULES))
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known rules: {', '.join(RULES)}")
    return frozenset(names)


def without(*names: str, base: frozenset[str] = DEFAULT_RULES) -> frozenset[str]:
    """The default rule set (or `base`) with `names` off."""
    return base - check(names)


def with_rules(*names: str, base: frozenset[str] = DEFAULT_RULES) -> frozenset[str]:
    """The default rule set (or `base`) with `names` on too."""
    return base | check(names)


def describe() -> str:
    """The rules as a Markdown table (docs/tom.md, `--ablate` help)."""
    lines = ["| rule | where | states | default |", "|---|---|---|---|"]
    lines += [f"| `{r.name}` | `{r.where}` | {r.states} | {'on' if r.default else 'off'} |" for r in _ALL]
    return "\n".join(lines)
