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

from .model_space import ALL_VARIABLES, BELIEF, GOAL, OBS, QUERY_SLOTS, STATE, UTTER, normalise_name, repair
from .prompts import render
from .structured import structured_step
from .usage import TrackedModel

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


def names_in(question: str, story: str) -> list[str]:
    story_words = set(re.findall(r"\b[A-Z][a-zA-Z]+\b", story))
    out: list[str] = []
    for w in re.findall(r"\b[A-Z][a-zA-Z]+\b", question):
        if w.lower() in _QUESTION_WORDS or w not in story_words or w in out:
            continue
        out.append(w)
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


def heuristic_parse(story: str, question: str, choices: list[str]) -> QuestionParse:
    names = names_in(question, story) or names_in(" ".join(choices), story)[:1]
    nested = len(_MENTAL_VERB.findall(question))
    agents = names[: nested + 1] if names else []
    variable = detect_variable(question, choices, bool(agents))
    known: list[KnownFact] = []
    match = _CONDITION.search(question)
    if match:
        clause = match.group(1).strip()
        kind = "goal" if re.search(r"\b(trying|wants?|goal|help|hinder)\b", clause.lower()) else "belief"
        known.append(KnownFact(variable=kind, value=clause[0].upper() + clause[1:] + "."))
    model = list(MINIMAL_MODELS[QUERY_SLOTS[variable] if agents else BELIEF])
    return QuestionParse(agents=agents, variable=variable, known=known, statements=fallback_statements(question, choices),
                         least_likely=bool(re.search(r"\bleast\b", question.lower())), model=model)


def fallback_statements(question: str, choices: list[str]) -> list[str]:
    return [c if len(c.split()) >= 4 else f"{question.rstrip(' ?')}: {c}" for c in choices]


def _statements_ok(statements: list[str], choices: list[str]) -> bool:
    """Usable statements: one per choice, distinct, each sharing a content word with its own choice."""
    if len(statements) != len(choices) or len({s.strip().lower() for s in statements}) != len(statements):
        return False
    for s, c in zip(statements, choices):
        content = {w for w in _words(c) if len(w) > 2 and w not in _QUESTION_WORDS} or _words(c)
        if not content & _words(s):
            return False
    return True


async def analyse_question(model: TrackedModel | None, story: str, question: str, choices: list[str], *,
                           use_llm: bool = True, constrained: bool = True) -> tuple[QuestionAnalysis, dict[str, Any]]:
    """Parse the question with the LLM (validated, one retry) or fall back to `heuristic_parse`."""
    fallback = heuristic_parse(story, question, choices)
    trace: dict[str, Any] = {"step": "parse_question"}
    parsed: QuestionParse | None = None
    if use_llm and model is not None:
        story_l = story.lower()

        asked = (question + " " + " ".join(choices)).lower()
        nesting = len(_MENTAL_VERB.findall(question))

        def check(p: QuestionParse) -> None:
            missing = [a for a in p.agents if a.strip().lower() not in story_l]
            if missing:
                raise ValueError(f"agents {missing} do not occur in the story; use names from the story")
            unasked = [a for a in p.agents if a.strip().lower() not in asked]
            if unasked:
                raise ValueError(f"agents {unasked} are not in the question or the choices; list only the agents "
                                 "whose mind the question asks about")
            if len(p.agents) > nesting + 1:
                raise ValueError(f"the question nests {nesting + 1} mind(s) but 'agents' lists {len(p.agents)}; "
                                 "list the outermost agent first and one agent per level")

        prompt = render("parse_question", story=story, question=question,
                        choices="\n".join(f"{i + 1}. {c}" for i, c in enumerate(choices)))
        parsed, trace["llm"] = await structured_step(model, [{"role": "user", "content": prompt}], QuestionParse,
                                                     check=check, max_tokens=min(80 + 40 * len(choices), 400),
                                                     constrained=constrained, json_schema=parse_schema(len(choices)))
    if parsed is None:
        chosen, source = fallback, "fallback"
    else:
        chosen, source = parsed, "llm"
        if not parsed.known and fallback.known:  # a stated condition the model overlooked
            chosen = chosen.model_copy(update={"known": fallback.known})
            source = "llm+fallback known"
        if not _statements_ok(parsed.statements, choices):
            chosen = parsed.model_copy(update={"statements": fallback.statements})
            source += "+fallback statements"
    slot = QUERY_SLOTS[chosen.variable] if chosen.agents else BELIEF
    known_slots = [GOAL if k.variable == "goal" else BELIEF for k in chosen.known]
    initial = repair(chosen.model or list(MINIMAL_MODELS[slot]), slot, known_slots)
    analysis = QuestionAnalysis(
        agents=_chain([a.strip() for a in chosen.agents if a.strip()]), variable=chosen.variable, known=chosen.known,
        statements=chosen.statements, least_likely=chosen.least_likely or fallback.least_likely,
        initial_model=sorted(initial, key=lambda v: ALL_VARIABLES.index(v)), source=source,
    )
    trace["result"] = analysis.model_dump()
    return analysis, trace


__all__ = ["QuestionAnalysis", "QuestionParse", "analyse_question", "heuristic_parse", "normalise_name"]
