"""Question parsing: the queried agents, the inferred variable, facts the question gives, choices as
statements, "least likely" questions, and an initial model. An LLM step with validated JSON output (the
semantic check requires the agents to occur in the story and in the question or the choices, and no more
agents than the question nests minds: mental verbs + 1). Its documented fallback (`heuristic_parse`)
uses general English cues, never one benchmark's templates:

- agents: capitalised words of the question that also occur in the story (minus question words), in
  question order, keeping as many as the question has nested mental verbs ("think", "believe") plus one;
  a question naming nobody takes the first name in the choices;
- variable: cue words in the choices, then the question (trying to/goal/want -> goal; believe/think ->
  belief, both -> belief_of_goal; look/search/go/do/will -> action; say/tell -> utterance); no agent ->
  state;
- known facts: an "if ..."/"assuming ..."/"given that ..." clause, as a goal (trying/want/goal/help) or a
  belief (also used when the LLM's parse lists no known fact although the question states one);
- statements: the choices themselves; a short choice (under four words) becomes "<question>: <choice>";
- model: the smallest model in which the query variable has parents (MINIMAL_MODELS); the model
  discovery grows it from there (the full model as a fallback made every question pay for all of it).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from . import dialogue
from .model_space import (
    ALL_VARIABLES,
    BELIEF,
    GOAL,
    OBS,
    QUERY_SLOTS,
    STATE,
    UTTER,
    normalise_name,
    repair,
    valid_model,
)
from .prompts import render
from .rules import DEFAULT_RULES
from .structured import structured_step
from .usage import TrackedModel
from .wording import is_short_choice

VARIABLES = tuple(QUERY_SLOTS)
MINIMAL_MODELS: dict[str, tuple[str, ...]] = {
    BELIEF: (STATE, OBS, BELIEF),
    GOAL: (STATE, OBS, BELIEF, "Action", GOAL),
    "Action": (STATE, OBS, BELIEF, "Action"),
    UTTER: (STATE, OBS, BELIEF, UTTER),
}
_QUESTION_WORDS = {
    "where", "what", "which", "who", "whom", "whose", "when", "why", "how", "does", "do", "did", "is", "are", "was",
    "were", "will", "would", "if", "given", "assuming", "the", "a", "an", "in", "on", "at", "of", "and", "or", "to",
    "based", "after", "before", "then", "please", "question", "answer", "most", "least", "likely", "true",
}
_MENTAL_VERB = re.compile(r"\b(?:think|thinks|thought|believe|believes|believed|know|knows|knew|suspect|suspects)\b",
                          re.I)
_CONDITION = re.compile(r"\b(?:if|assuming(?: that)?|given that|suppose(?: that)?)\s+([^,?]+)", re.I)


class KnownFact(BaseModel):
    variable: str
    value: str = Field(min_length=1)

    @field_validator("variable")
    @classmethod
    def _var(cls, v: str) -> str:
        low = v.strip().lower()
        if low not in ("goal", "belief"):
            raise ValueError("a known fact's variable must be 'goal' or 'belief'")
        return low


class QuestionParse(BaseModel):
    """What the LLM must return (and what the fallback produces)."""

    agents: list[str] = Field(default_factory=list)
    variable: str
    known: list[KnownFact] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    least_likely: bool = False
    model: list[str] = Field(default_factory=list)

    @field_validator("variable")
    @classmethod
    def _variable(cls, v: str) -> str:
        low = v.strip().lower().replace(" ", "_").replace("-", "_")
        if low not in VARIABLES:
            raise ValueError(f"variable must be one of {', '.join(VARIABLES)}")
        return low


class QuestionAnalysis(BaseModel):
    """The validated parse the engine uses, with where each part came from."""

    agents: list[str]
    variable: str
    known: list[KnownFact]
    statements: list[str]
    least_likely: bool
    initial_model: list[str]
    source: str  # "llm", "llm+fallback known", "...+fallback statements" or "fallback"

    @property
    def agent(self) -> str | None:
        return self.agents[-1] if self.agents else None

    @property
    def slot(self) -> str:
        return QUERY_SLOTS[self.variable] if self.agents else BELIEF


def parse_schema(n_choices: int) -> dict[str, Any]:
    """The JSON schema for constrained decoding, bounded so small models cannot ramble."""
    text = {"type": "string", "maxLength": 160}
    return {
        "type": "object",
        "properties": {
            "agents": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 5},
            "variable": {"type": "string", "enum": list(VARIABLES)},
            "known": {"type": "array", "maxItems": 2, "items": {
                "type": "object", "properties": {"variable": {"type": "string", "enum": ["goal", "belief"]},
                                                 "value": text}, "required": ["variable", "value"]}},
            "statements": {"type": "array", "items": text, "minItems": n_choices, "maxItems": n_choices},
            "least_likely": {"type": "boolean"},
            "model": {"type": "array", "maxItems": 6, "items": {"type": "string", "enum": list(ALL_VARIABLES)}},
        },
        "required": ["agents", "variable", "known", "statements", "least_likely", "model"],
    }


def _chain(agents: list[str]) -> list[str]:
    """Drop an agent repeated at the next level ("A thinks A thinks" is "A thinks")."""
    out: list[str] = []
    for a in agents:
        if not out or out[-1].lower() != a.lower():
            out.append(a)
    return out


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z']+", text)}


#: capitalised words that are not names even when they start a sentence or a line of dialogue
_NOT_NAMES = {
    "hello", "hi", "hey", "yes", "no", "yeah", "okay", "ok", "same", "sure", "thanks", "thank", "sorry", "please",
    "well", "oh", "wow", "great", "good", "fine", "maybe", "then", "meanwhile", "later", "finally", "afterwards",
    "there", "here", "this", "that", "these", "those", "it", "its", "he", "she", "they", "we", "i", "you", "his",
    "her", "their", "our", "my", "your", "one", "someone", "everyone", "nobody", "while", "when", "as", "after",
    "before", "once", "so", "but", "and", "or", "not", "all", "both", "each", "every", "some", "any", "what",
    "inside", "outside", "today", "yesterday", "tomorrow", "now", "suddenly", "unfortunately", "however",
}
_VERBISH = re.compile(r"^(?:is|was|has|had|does|did|can|could|will|would|may|might|must|should|wants?|thinks?|"
                      r"believes?|knows?|says?|said|asks?|goes|went|made|makes|likes?|dislikes?|loves?|hates?|"
                      r"sees?|saw|gets?|got|takes?|took|puts?|gives?|gave|tells?|told|left|came|sat|ran|found|stood|"
                      r"held|kept|felt|thought|knew|brought|bought|began|heard|met|wrote|ate|drank|\w+ed|\w+s)$", re.I)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'_-]*|[,.!?;:\"“”]")


def story_actors(story: str) -> list[str]:
    """Names of the story's actors, in order of first mention: capitalised words that are never written in
    lower case, are not common sentence openers or interjections ("Same", "Hello"), and occur either
    inside a sentence or as a sentence's subject (followed by a verb, a comma, "and" or "'s")."""
    lines = [ln.strip() for ln in story.split("\n") if ln.strip()]
    # in a dialogue everyone who speaks is an actor, however the name is written ("sam: ok")
    out: list[str] = dialogue.speakers(lines) if dialogue.is_dialogue(lines) else []
    lower = {w for w in re.findall(r"\b[a-z][a-zA-Z]*\b", story)} - {s.lower() for s in out}
    tokens = _TOKEN.findall(story)
    for i, tok in enumerate(tokens):
        word = tok.split("'")[0]
        if not word[:1].isupper() or word.lower() in _NOT_NAMES or word.lower() in lower or word.isupper():
            continue
        prev = tokens[i - 1] if i else "."
        nxt = tokens[i + 1] if i + 1 < len(tokens) else "."
        initial = prev in {".", "!", "?", '"', "“", "”", ":", ";"} or (i and tokens[i - 1].isdigit())
        subject = tok.endswith("'s") or nxt in {",", "and"} or bool(_VERBISH.match(nxt))
        if (not initial or subject) and word.lower() not in {o.lower() for o in out}:
            out.append(word)
    return out


def names_in(question: str, story: str) -> list[str]:
    """The story's actors the text names, in the order the text names them (for a nested question:
    outermost first)."""
    actors = story_actors(story)
    exact = set(actors)
    spoken = {a.lower(): a for a in actors if not a[:1].isupper()}  # dialogue speakers written in lower case
    out: list[str] = []
    for w in re.findall(r"\b[A-Za-z][a-zA-Z]+\b", question):
        name = w if w in exact else spoken.get(w.lower()) if w[:1].isupper() or w in spoken else None
        if name is not None and name not in out:
            out.append(name)
    return out


def thinkers_in(question: str, story: str) -> list[str]:
    """The story's actors the question presents as thinking ("does Anne think", "Sally thinks"), in order;
    conditional clauses are left out (they state givens, not what is asked)."""
    text = _CONDITION.sub(" ", question)
    out: list[str] = []
    for name in names_in(text, story):
        if re.search(rf"\b{re.escape(name)}\s+(?:\w+ly\s+)?{_MENTAL_VERB.pattern}", text, re.I) and name not in out:
            out.append(name)
    return out


def detect_variable(question: str, choices: list[str], has_agent: bool) -> str:
    if not has_agent:
        return "state"
    for text in (" ".join(choices), question):
        low = text.lower()
        goalish = bool(re.search(r"\b(trying to|goal|wants?|desired?|help|hinder|intend\w*|indifferent)\b", low))
        beliefish = bool(re.search(r"\b(believes?|believed|thinks?|thought|knows?)\b", low))
        if goalish and beliefish and re.search(r"\b(believes?|believed|thinks?)\b[^.]*\b(trying to|goal|wants?|desired?)\b", low):
            return "belief_of_goal"
        if beliefish:
            return "belief"
        if goalish:
            return "goal"
        if re.search(r"\b(says?|said|tells?|told|reply|replies|ask\w*)\b", low):
            return "utterance"
        if re.search(r"\b(look|looks|search\w*|go|goes|will|do|does|next|open\w*|grab\w*|walk\w*)\b", low):
            return "action"
    return "belief"


_ACTION_CUE = re.compile(r"\b(?:where will|what will \w+ do|(?:look|looks|search|searches|searching) for)\b", re.I)
_BELIEF_CUE = re.compile(r"\b(?:believes?|thinks?|think that)\b", re.I)
#: variables that answer the same kind of question (a parse may name either)
_COMPATIBLE = {"action": {"action", "utterance"}, "belief": {"belief", "belief_of_goal", "state", "emotion", "other"}}


def cue_variable(question: str) -> str | None:
    """The query variable the question's own words fix, or None when they leave it open: "where will X
    look", "what will X do", "... searches for" ask for an action (also when nested in "A thinks that");
    otherwise "believe"/"think" asks for a belief. Conditional clauses are ignored (they state givens)."""
    text = _CONDITION.sub(" ", question)
    if _ACTION_CUE.search(text):
        return "action"
    if _BELIEF_CUE.search(text):
        return "belief"
    return None


_LEAST_LIKELY = re.compile(r"\bleast\s+(?:\w+ly\s+)?(?:likely|probable|plausible|possible|believable|credible|true|"
                           r"accurate|correct)\b", re.I)


def asks_least_likely(question: str) -> bool:
    """Whether the question asks for the LEAST likely choice, read from its structure: "least" grading how likely /
    plausible / true a statement is ("which statement is LEAST likely true?") asks for the argmin of the posterior;
    "least" inside what is asked ("which item does Bob want least?", "who is least interested") is part of the
    statements, whose most likely one is the answer (the argmax). Rule `least_likely` (rules.py)."""
    return _LEAST_LIKELY.search(question) is not None


#: the one source of the "least likely" flag (never the model's parse)
says_least = asks_least_likely


def conditional_clauses(question: str) -> list[str]:
    """The question's conditional clauses ("If ...", "Assuming that ...", "Given that ..."), in order."""
    return [m.group(1).strip() for m in _CONDITION.finditer(question) if m.group(1).strip()]


def clause_facts(question: str) -> list[KnownFact]:
    """Known facts built from the question's conditional clauses only: a goal (trying/want/help/hinder) or
    a belief (knows/thinks/believes or anything else stated as given)."""
    out: list[KnownFact] = []
    for clause in conditional_clauses(question)[:2]:
        kind = "goal" if re.search(r"\b(trying|tries|wants?|goal|help\w*|hinder\w*|intend\w*)\b", clause, re.I) \
            else "belief"
        out.append(KnownFact(variable=kind, value=clause[0].upper() + clause[1:] + "."))
    return out


def _content(text: str, drop: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    words = {w for w in _words(text.replace("_", " ")) if len(w) > 2 and w not in _QUESTION_WORDS}
    return words - {d.lower() for d in drop}


def fact_in_question(value: str, clauses: list[str]) -> bool:
    """A known fact counts only if most of its content words come from one conditional clause."""
    words = _content(value) - {"has", "been", "that", "the", "who"}
    if not words:
        return False
    return any(len(words & _content(c)) >= max(1, int(0.6 * len(words) + 0.5)) for c in clauses)


def heuristic_parse(story: str, question: str, choices: list[str]) -> QuestionParse:
    names = names_in(question, story) or names_in(" ".join(choices), story)[:1]
    nested = len(_MENTAL_VERB.findall(question))
    agents = names[: nested + 1] if names else []
    variable = detect_variable(question, choices, bool(agents))
    model = list(MINIMAL_MODELS[QUERY_SLOTS[variable] if agents else BELIEF])
    return QuestionParse(agents=agents, variable=variable, known=clause_facts(question),
                         statements=fallback_statements(question, choices), least_likely=says_least(question),
                         model=model)


def fallback_statements(question: str, choices: list[str]) -> list[str]:
    return [f"{question.rstrip(' ?')}: {c}" if is_short_choice(c) else c for c in choices]


def statement_matches(statement: str, choice: str, names: list[str]) -> bool:
    """A statement stands for its choice when it carries the choice's own subject matter: the choice's
    content words other than agent names (a name alone, e.g. one copied from the prompt's example, is not
    enough); all of them for a short choice, most of them for a sentence."""
    own = _content(choice, set(names))
    if not own:
        return True
    have = own & _content(statement)
    return len(have) >= (len(own) if len(own) <= 2 else max(1, int(0.6 * len(own) + 0.5)))


def _statements_ok(statements: list[str], choices: list[str], names: list[str] | None = None) -> bool:
    """Usable statements: one per choice, distinct, each matching its own choice's subject."""
    if len(statements) != len(choices) or len({s.strip().lower() for s in statements}) != len(statements):
        return False
    return all(statement_matches(s, c, names or []) for s, c in zip(statements, choices))


#: the cross-checks, in the order they run; each names the field its fallback repairs
CHECKS = ("agents_in_story", "agents_nonempty", "agents_order", "agents_complete", "variable_cue", "least_likely", "known_from_question",
          "known_missing", "statements_match")
_CHECK_FIELD = {"variable_cue": "variable", "agents_in_story": "agents", "agents_nonempty": "agents", "agents_order": "agents",
                "agents_complete": "agents",
                "least_likely": "least_likely", "known_from_question": "known", "known_missing": "known",
                "statements_match": "statements"}


def cross_check(p: QuestionParse, story: str, question: str, choices: list[str]) -> list[tuple[str, str]]:
    """Deterministic, model-independent checks of a parse against the question's own text.

    Returns (check name, message for the model) for each check that fails.
    """
    failed: list[tuple[str, str]] = []
    story_l = story.lower()
    asked = (question + " " + " ".join(choices)).lower()
    agents = [a.strip() for a in p.agents if a.strip()]
    named = names_in(question, story)
    nesting = len(_MENTAL_VERB.findall(question))
    missing = [a for a in agents if a.lower() not in story_l or a.lower() not in asked]
    if missing:
        failed.append(("agents_in_story", f"agents {missing} are not names from the story that the question or the "
                                          "choices mention; list only the agents whose mind the question asks about"))
    elif len(_chain(agents)) > nesting + 1:
        failed.append(("agents_order", f"the question nests {nesting + 1} mind(s) but 'agents' lists "
                                       f"{len(_chain(agents))}; list the outermost agent first and one agent per level"))
    if named and not agents:
        failed.append(("agents_nonempty", f"the question is about {named[0]}: 'agents' must not be empty"))
    positions = [question.find(a) for a in _chain(agents) if a in named]
    if positions != sorted(positions):
        failed.append(("agents_order", "list the agents in the order the question nests them, outermost first "
                                       f"(the question names them as {named})"))
    absent = [t for t in thinkers_in(question, story) if t not in _chain(agents)]
    if agents and absent:
        # a dropped outer agent turns "what A thinks B thinks" into "what B thinks"
        failed.append(("agents_complete", f"the question asks what {absent[0]} thinks: list every agent whose mind "
                                          "the question nests, outermost first"))
    cue = cue_variable(question)
    if cue is not None and p.variable not in _COMPATIBLE[cue]:
        failed.append(("variable_cue", f"the question asks for the agent's {cue} ('variable' is {p.variable!r})"))
    if p.least_likely != says_least(question):
        failed.append(("least_likely", "'least_likely' must be true only when the question says LEAST"))
    clauses = conditional_clauses(question)
    invented = [k.value for k in p.known if not fact_in_question(k.value, clauses)]
    if invented:
        failed.append(("known_from_question", f"'known' may only hold facts the question states in an 'if'/'assuming'"
                                              f"/'given that' clause; {invented[0]!r} is not one"))
    elif clauses and not p.known:
        failed.append(("known_missing", f"the question states {clauses[0]!r} as given: put it in 'known'"))
    if not _statements_ok(p.statements, choices, story_actors(story)):
        failed.append(("statements_match", "write one distinct statement per choice, in order, each keeping that "
                                           "choice's own words"))
    return failed


async def analyse_question(model: TrackedModel | None, story: str, question: str, choices: list[str], *,
                           use_llm: bool = True, constrained: bool = True,
                           rules: frozenset[str] = DEFAULT_RULES) -> tuple[QuestionAnalysis, dict[str, Any]]:
    """Parse the question with the LLM, cross-check it against the question's text, feed failed checks
    back once, then repair each still-failing field with its deterministic fallback (`heuristic_parse`):

    - agents: the story's actors the question names, in the question's order, one per nesting level;
    - least_likely: always the question's own wording (never taken from the model);
    - known: facts from the question's conditional clauses only;
    - statements: the choices (short ones prefixed by the question).
    The trace records which checks fired on the first answer and which fallbacks were used.
    """
    fallback = heuristic_parse(story, question, choices)
    trace: dict[str, Any] = {"step": "parse_question", "checks_fired": [], "fallbacks": []}
    parsed: QuestionParse | None = None
    per_attempt: list[list[str]] = []
    if use_llm and model is not None:
        def check(p: QuestionParse) -> None:
            failed = cross_check(p, story, question, choices)
            per_attempt.append([name for name, _ in failed])
            if failed:
                raise ValueError("; ".join(msg for _, msg in failed))

        prompt = render("parse_question", story=story, question=question,
                        choices="\n".join(f"{i + 1}. {c}" for i, c in enumerate(choices)))
        parsed, trace["llm"] = await structured_step(model, [{"role": "user", "content": prompt}], QuestionParse,
                                                     check=check, max_tokens=min(80 + 40 * len(choices), 400),
                                                     constrained=constrained, json_schema=parse_schema(len(choices)),
                                                     keep_unchecked=True)
    trace["checks_fired"] = per_attempt[0] if per_attempt else []
    trace["checks_after_feedback"] = per_attempt[1] if len(per_attempt) > 1 else []
    if parsed is None:
        chosen, source = fallback, "fallback"
        trace["fallbacks"] = ["all"]
    else:
        chosen, source = parsed, "llm"
        remaining = {_CHECK_FIELD[name] for name, _ in cross_check(parsed, story, question, choices)}
        update: dict[str, Any] = {}
        for fld in ("agents", "variable", "least_likely", "known", "statements"):
            if fld in remaining:
                update[fld] = getattr(fallback, fld)
                trace["fallbacks"].append(fld)
        if "variable" in update:
            update["variable"] = cue_variable(question) or fallback.variable
        if "agents" in update and not update["agents"]:
            update["variable"] = fallback.variable
        chosen = parsed.model_copy(update=update)
        if update:
            source = "llm+fallback " + ",".join(trace["fallbacks"])
    slot = QUERY_SLOTS[chosen.variable] if chosen.agents else BELIEF
    known_slots = [GOAL if k.variable == "goal" else BELIEF for k in chosen.known]
    # the discovery starts from the smallest valid model (plus the variables the question gives); the
    # model's own proposal is kept in the trace only: a full proposed model would leave nothing to discover
    trace["proposed_model"] = list(chosen.model)
    initial = valid_model(repair(list(MINIMAL_MODELS[slot]), slot, known_slots), slot)
    analysis = QuestionAnalysis(
        agents=_chain([a.strip() for a in chosen.agents if a.strip()]), variable=chosen.variable, known=chosen.known,
        statements=chosen.statements, least_likely="least_likely" in rules and says_least(question),
        initial_model=sorted(initial, key=lambda v: ALL_VARIABLES.index(v)), source=source,
    )
    trace["result"] = analysis.model_dump()
    return analysis, trace


__all__ = ["CHECKS", "QuestionAnalysis", "QuestionParse", "analyse_question", "cross_check", "heuristic_parse",
           "normalise_name", "story_actors"]
