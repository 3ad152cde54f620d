"""Stories as timelines: sentences, each agent's perception of them, and timesteps cut at the agent's
actions.

The perception step (an LLM step with validated JSON; `perceive`) says which sentences an agent could
perceive and which are its own actions. It is the guard against omniscient leakage: an agent's
Observation holds only sentences it perceived, and higher-order questions re-tell the story from each
outer agent's perspective by nesting it. Fallback when the output is unusable: actions are the sentences
that name the agent, and what the agent perceived is unknown, so each step's Observation becomes latent
with the hypotheses "the step's events" and "no observation" (AutoToM's default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from . import dialogue
from .prompts import render
from .rules import DEFAULT_RULES
from .structured import structured_step
from .usage import TrackedModel
from .wording import NOT, terms

NO_OBSERVATION = "no observation"
NOTHING_NEW = "nothing new"
_NUMBERED = re.compile(r"^\s*\d+[.)]?\s+")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”]))\s+(?=[A-Z\"“])")
_QUOTE = re.compile(r"[\"“”]")
_SPEECH = re.compile(r"\b(?:said|says|say|asked|asks|ask|replied|replies|reply|told|tells|tell|answered|answers|"
                     r"shouted|shouts|whispered|whispers|exclaimed|responded|responds|mentioned|mentions|informed|"
                     r"informs|explained|explains|suggested|suggests|announced|announces|called out)\b", re.I)
_SPEAKER = re.compile(r"^\s*[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}:\s+\S")


def is_utterance(sentence: str) -> bool:
    """Dialogue, with or without quote marks: quoted words, a speech verb ("asked where the wine is"),
    or a transcript line "Name: words"."""
    return bool(_QUOTE.search(sentence) or _SPEECH.search(sentence) or _SPEAKER.match(sentence)
                or dialogue.turn(sentence) is not None)


def split_sentences(story: str) -> list[str]:
    """Numbered lines (ToMi-style) or prose split at sentence ends; blank lines are dropped. A dialogue (speaker
    turns, `dialogue.is_dialogue`) keeps each line whole, so no sentence of a turn loses its speaker."""
    lines = [ln.strip() for ln in story.strip().split("\n") if ln.strip()]
    if len(lines) > 1 and all(_NUMBERED.match(ln) for ln in lines):
        return [_NUMBERED.sub("", ln) for ln in lines]
    if dialogue.is_dialogue(lines):
        return lines
    out: list[str] = []
    for ln in lines:
        out.extend(s.strip() for s in _SENTENCE_END.split(ln) if s.strip())
    return out


def mentions(sentence: str, agent: str) -> bool:
    return re.search(rf"\b{re.escape(agent)}\b", sentence, re.I) is not None


_HEAD = re.compile(r"^\s*(?:[Tt]hen |[Ll]ater |[Nn]ext |[Ff]inally )?((?:[A-Z][a-z]+(?:, | and |, and ))*[A-Z][a-z]+)\b")
#: a sentence whose subject is a pronoun ("She puts the jar back"): the model may list it as the agent's act;
#: a pronoun elsewhere ("Charlotte lost his phone") leaves the act to the sentence's named subject
_PRONOUN_SUBJECT = re.compile(r"^\s*(?:(?:then|later|next|finally),? )?(?:he|she|they)\b", re.I)
_PERCEPTION_VERBS = (r"notice[sd]?|see[sn]?|saw|hears?|heard|watch(?:es|ed)?|observe[sd]?|spot(?:s|ted)?|"
                     r"reali[sz]e[sd]?|discover(?:s|ed)?|finds? out|found out|learn(?:s|ed|t)?|witness(?:es|ed)?|"
                     r"catch(?:es)? sight|caught sight")
_PERCEIVES = re.compile(rf"^(?:also |then |quickly |suddenly )?(?:{_PERCEPTION_VERBS})\b", re.I)
_MISSES = re.compile(r"^(?:does not|doesn't|did not|didn't|fails to|failed to|never|cannot|can't|could not|couldn't) "
                     r"(?:notice|see|hear|watch|observe|spot|reali[sz]e|discover|find out|learn|witness|catch sight)\b",
                     re.I)
_STATIVE = re.compile(r"^(?:is|was|are|were|has|had|have|wants?|wanted|likes?|liked|loves?|loved|hates?|hated|"
                      r"knows?|knew|thinks?|thought|believes?|believed|prefers?|preferred|needs?|needed|hopes?|hoped|"
                      r"expects?|expected|feels?|felt|remembers?|remembered|wish(?:es|ed)?|plans?|planned|"
                      r"intends?|intended|would like|is going to)\b", re.I)


def is_subject(sentence: str, agent: str) -> bool:
    """The agent is the sentence's subject: it opens the sentence, alone or in a list of names
    ("Ann entered", "Then Ann left", "Bob and Ann entered")."""
    head = _HEAD.match(sentence)
    return head is not None and re.search(rf"\b{re.escape(agent)}\b", head.group(1)) is not None


#: perception verbs (and negation) are shared by perception sentences, so they tie none of them to an event
_PERCEIVING = frozenset({"notice", "noticed", NOT})


def _content_words(sentence: str, agent: str) -> set[str]:
    """The sentence's content words (wording.terms) without perception verbs and the agent's name."""
    return set(terms(sentence) - _PERCEIVING - {agent.lower()})


def non_action(sentence: str, agent: str) -> str | None:
    """Why a sentence whose subject is the agent is not an action of it: "perceives" ("Kofi notices the
    swap": what it observed), "misses" ("Kofi does not notice the swap": nothing it observed), "stative"
    ("Kofi is a chef", "Kofi wants soup": a state or a mental state the story states, no act); None when it
    is an act (or the agent is not the subject). English perception, negated-perception and stative verbs
    right after the subject, so the same for every story."""
    head = _HEAD.match(sentence)
    if head is None or re.search(rf"\b{re.escape(agent)}\b", head.group(1)) is None:
        return None
    rest = sentence[head.end():].strip()
    if _MISSES.match(rest):
        return "misses"
    if _PERCEIVES.match(rest):
        return "perceives"
    if _STATIVE.match(rest):
        return "stative"
    return None


_NAMES = r"[A-Z][a-z]+(?:(?:, | and |, and )[A-Z][a-z]+)*"
_WHO = rf"(?P<who>{_NAMES})"
_PLACE = r"[\w' -]+?"
_ENTERS = re.compile(rf"^{_WHO} (?:entered|enters|walked into|walks into|went into|goes into|came into|comes into) "
                     rf"the (?P<place>{_PLACE})\.?$")
_EXITS = re.compile(rf"^{_WHO} (?:exited|exits|left|leaves|walked out of|walks out of|went out of|goes out of) "
                    rf"the (?P<place>{_PLACE})\.?$")
_IS_IN = re.compile(rf"^The (?P<thing>{_PLACE}) (?:is|are|was|were) in the (?P<place>{_PLACE})\.?$")
_MOVES = re.compile(rf"^{_WHO} moved the (?P<thing>{_PLACE}) to the (?P<place>{_PLACE})\.?$")
_PRIVATE = re.compile(rf"^{_WHO} (?:(?:privately|secretly) (?:told|tells|informed|informs)|"
                      rf"(?:privately |secretly )?whisper(?:ed|s) to) (?P<to>{_NAMES})\b")


def _names(group: str) -> list[str]:
    return [n for n in re.split(r", and |, | and ", group) if n]


def co_location(sentences: list[str], agent: str) -> dict[int, bool] | None:
    """Which sentences happened where `agent` was, for stories that say where people are ("Ann entered the
    kitchen", "Ann exited the kitchen"); None when the story never says where the agent is.

    The rooms are the places people enter or exit; someone whose first appearance is leaving a room was in it from
    the start; a container's room comes from "The box is in the kitchen",
    else it is the room last entered (the scene). A sentence is placed in a room when it is an entry or exit
    ("Bob exited the kitchen": seen from the kitchen), an object in a room or in a container, or a move by a
    person whose room is known; the agent perceives it when it is in that room then (its own entries, exits
    and moves always). Sentences that cannot be placed are left out, for the model's perception to decide.
    The physical rule of such stories: nobody sees what happens in a room they are not in."""
    entries = [m for s in sentences if (m := _ENTERS.match(s.strip()) or _EXITS.match(s.strip()))]
    if not any(agent in _names(m.group("who")) for m in entries):
        return None
    rooms = {m.group("place").lower() for m in entries}
    room_of: dict[str, str] = {}
    for s in sentences:
        if (m := _IS_IN.match(s.strip())) and m.group("place").lower() in rooms:
            room_of[m.group("thing").lower()] = m.group("place").lower()
    # whoever first appears leaving a room was in it from the start (a story re-told from another agent's
    # perspective loses the entries that agent did not see: "Abigail exited the crawlspace" still places her there)
    where: dict[str, str | None] = {}
    for m in entries:
        for n in _names(m.group("who")):
            if n not in where:
                where[n] = m.group("place").lower() if _EXITS.match(m.group(0)) else None
    where = {n: r for n, r in where.items() if r is not None}
    out: dict[int, bool] = {}
    scene: str | None = None
    for i, s in enumerate(sentences):
        s = s.strip()
        here = where.get(agent)
        if m := _ENTERS.match(s):
            room, names = m.group("place").lower(), _names(m.group("who"))
            scene = room
            for n in names:
                where[n] = room
            out[i] = agent in names or here == room
        elif m := _EXITS.match(s):
            room, names = m.group("place").lower(), _names(m.group("who"))
            out[i] = agent in names or here == room
            for n in names:
                where[n] = None
        elif m := _IS_IN.match(s):
            place = m.group("place").lower()
            room = place if place in rooms else room_of.get(place, scene)
            if room is not None:
                out[i] = here == room
        elif m := _MOVES.match(s):
            names = _names(m.group("who"))
            room = where.get(names[0]) or room_of.get(m.group("place").lower(), scene)
            if agent in names:
                out[i] = True
            elif room is not None:
                out[i] = here == room
    return out


def private_audience(sentence: str) -> set[str] | None:
    """Who hears a private communication ("Mia privately told Alexander that ...", "Ann whispered to Bob"):
    the speakers and the addressees; None when the sentence is not one. Nobody else perceives it, whatever
    the model listed (a third person who "heard" it would know what only the addressee was told)."""
    m = _PRIVATE.match(sentence.strip())
    return None if m is None else {*_names(m.group("who")), *_names(m.group("to"))}


class Perception(BaseModel):
    observed: list[int] = Field(default_factory=list)
    actions: list[int] = Field(default_factory=list)


def perception_schema(n: int) -> dict[str, Any]:
    numbers = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": n}, "maxItems": n}
    return {"type": "object", "properties": {"observed": numbers, "actions": numbers},
            "required": ["observed", "actions"]}


@dataclass
class PerceptionResult:
    observed: list[int] | None  # indices into the sentence list; None = unknown (fallback)
    actions: list[int]
    trace: dict[str, Any] = field(default_factory=dict)


async def perceive(model: TrackedModel | None, sentences: list[str], agent: str, *, use_llm: bool = True,
                   constrained: bool = True, rules: frozenset[str] = DEFAULT_RULES) -> PerceptionResult:
    """Which sentences `agent` perceived and which are its own actions (0-based indices). `rules`: the text rules
    on (rules.py); each cross-check below is one of them."""
    n = len(sentences)
    trace: dict[str, Any] = {"step": "perceive", "agent": agent}
    present = dialogue.presence(sentences, agent) if "dialogue_presence" in rules else None
    if present is not None:
        return await _dialogue_perception(model, sentences, agent, present, trace, use_llm=use_llm,
                                          constrained=constrained)
    fallback_actions = [i for i, s in enumerate(sentences) if mentions(s, agent)]
    value: Perception | None = None
    if use_llm and model is not None and n:
        def check(p: Perception) -> None:
            bad = [x for x in p.observed + p.actions if not 1 <= x <= n]
            if bad:
                raise ValueError(f"sentence numbers {bad} are out of range 1..{n}")
            if not p.observed:
                raise ValueError("'observed' is empty; list the sentences the agent perceived")

        prompt = render("perceive", agent=agent,
                        sentences="\n".join(f"{i + 1}. {s}" for i, s in enumerate(sentences)))
        value, trace["llm"] = await structured_step(model, [{"role": "user", "content": prompt}], Perception,
                                                    check=check, max_tokens=min(30 + 10 * n, 400), constrained=constrained,
                                                    json_schema=perception_schema(n))
    if value is None:
        trace["fallback"] = True
        return PerceptionResult(None, fallback_actions, trace)
    llm_actions = {x - 1 for x in value.actions if "act_names_agent" not in rules or mentions(sentences[x - 1], agent)
                   or _PRONOUN_SUBJECT.match(sentences[x - 1])}
    # cross-checks: a sentence whose subject is the agent is its own action whatever the model listed (a model
    # that lists none would leave one step, and nothing for the discovery to extend back to), unless its verb
    # says it is not an act: what the agent perceives is observed, what it fails to perceive is not, and a
    # stated state or mental state is observed (the agent knows it) without cutting the timeline
    kinds = {i: k for i, s in enumerate(sentences) if "perception_verbs" in rules
             and (k := non_action(s, agent)) is not None}
    subject = {i for i, s in enumerate(sentences) if "subject_action" in rules and is_subject(s, agent)}
    actions = sorted((llm_actions | subject) - set(kinds))
    misses = {i for i, k in kinds.items() if k == "misses"}
    observed_set = ({x - 1 for x in value.observed} | set(actions) | (set(kinds) - misses)) - misses
    # the event a perception sentence is about is the sentence before it when they share a content word
    # ("An apprentice ... replaces it with tomato paste." "Kofi notices the apprentice swapping ..."): noticed, it
    # is observed; missed, it is not, whatever the model listed (that would leak what the agent never saw)
    events = {i: j for i, k in kinds.items() if "noticed_events" in rules and k in ("perceives", "misses")
              and (j := i - 1) >= 0 and j not in kinds and not is_subject(sentences[j], agent)
              and _content_words(sentences[j], agent) & _content_words(sentences[i], agent)}
    noticed = {j for i, j in events.items() if kinds[i] == "perceives"}
    missed = {j for i, j in events.items() if kinds[i] == "misses"}
    if events:
        trace["noticed_events"] = sorted(noticed)
        trace["missed_events"] = sorted(missed)
    observed_set = (observed_set | noticed) - missed
    placed = co_location(sentences, agent) if "co_location" in rules else None
    if placed is not None:
        # where the story says who is where, what the agent could see follows from it, not from the model
        seen = {i for i, v in placed.items() if v}
        unseen = {i for i, v in placed.items() if not v} - set(actions)
        added, removed = sorted(seen - observed_set), sorted(observed_set & unseen)
        if added or removed:
            trace["co_location"] = {"added": added, "removed": removed}
        observed_set = (observed_set | seen) - unseen
    private = {i: who for i, s in enumerate(sentences) if "private_audience" in rules
               and (who := private_audience(s)) is not None}
    if private:
        heard = {i for i, who in private.items() if agent in who}
        trace["private"] = {"heard": sorted(heard), "not_heard": sorted(set(private) - heard)}
        observed_set = (observed_set | heard) - (set(private) - heard)
    observed = sorted(observed_set)
    trace["observed"], trace["actions"] = observed, actions
    trace["subject_actions_added"] = sorted(subject - llm_actions - set(kinds))
    if kinds:
        trace["not_actions"] = {str(i): k for i, k in sorted(kinds.items())}
    return PerceptionResult(observed, actions, trace)


async def _dialogue_perception(model: TrackedModel | None, sentences: list[str], agent: str, heard: dict[int, bool],
                               trace: dict[str, Any], *, use_llm: bool, constrained: bool) -> PerceptionResult:
    """A dialogue's perception: what `agent` heard follows from who was present (dialogue.presence), its acts are its
    own turns. Narration lines (neither turns nor joinings / leavings) are the model's to place; with no model they
    are taken as perceived (the story tells them to every reader). No call at all when every line is placed."""
    actions = dialogue.own_turns(sentences, agent)
    unplaced = [i for i in range(len(sentences)) if i not in heard]
    observed = {i for i, v in heard.items() if v}
    trace["dialogue"] = {"heard": sorted(observed), "not_heard": sorted(i for i, v in heard.items() if not v),
                         "unplaced": unplaced}
    if unplaced:
        got = None
        if use_llm and model is not None:
            got = await perceive(model, sentences, agent, use_llm=True, constrained=constrained,
                                 rules=DEFAULT_RULES - {"dialogue_presence"})
            trace["llm"] = got.trace
        seen = set(unplaced) if got is None or got.observed is None else set(got.observed) & set(unplaced)
        observed |= seen
    observed |= set(actions)
    trace["observed"], trace["actions"] = sorted(observed), actions
    return PerceptionResult(sorted(observed), actions, trace)


@dataclass
class Step:
    """One timestep: the world so far, what the agent perceived (None = unknown), its action/utterance."""

    index: int
    sentences: list[str]
    state: str
    observation: str | None
    events: str = NOTHING_NEW
    action: str | None = None
    utterance: str | None = None
    #: what the story states about the agent's goal / belief at this step (per-step extraction; else None)
    goal: str | None = None
    belief: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "state": self.state, "observation": self.observation,
                               "action": self.action, "utterance": self.utterance}
        if self.goal is not None or self.belief is not None:
            out.update(goal=self.goal, belief=self.belief)
        return out


def build_timeline(sentences: list[str], perception: PerceptionResult | None) -> list[Step]:
    """Cut after each of the agent's actions; a trailing chunk without an action is the last step.

    No perception (the omniscient narrator of a question about the world): one step that observed all.
    """
    if perception is None:
        text = " ".join(sentences)
        return [Step(0, sentences, text, text, text)]
    actions = set(perception.actions)
    observed = None if perception.observed is None else set(perception.observed)
    chunks: list[list[int]] = [[]]
    for i in range(len(sentences)):
        chunks[-1].append(i)
        if i in actions:
            chunks.append([])
    if not chunks[-1]:
        chunks.pop()
    steps: list[Step] = []
    upto: list[str] = []
    for t, chunk in enumerate(chunks):
        upto.extend(sentences[i] for i in chunk)
        last = chunk[-1]
        act = sentences[last] if last in actions else None
        events = [i for i in chunk if i != last or act is None]
        if observed is None:
            obs: str | None = None
        else:
            seen = [sentences[i] for i in events if i in observed]
            obs = " ".join(seen) if seen else NOTHING_NEW
        step = Step(t, [sentences[i] for i in chunk], " ".join(upto), obs,
                    " ".join(sentences[i] for i in events) or NOTHING_NEW)
        if act is not None:
            if is_utterance(act):
                step.utterance = act
            else:
                step.action = act
        steps.append(step)
    return steps


def after_last_act(steps: list[Step]) -> list[Step]:
    """`steps` and, when the last step ends with the agent's own act, one more step after it (nothing else happened
    there): the belief after the act, which a belief question asks about (rule `own_acts_observed`)."""
    last = steps[-1] if steps else None
    if last is None or not (last.action or last.utterance):
        return steps
    extra = Step(last.index + 1, [], last.state, None if last.observation is None else NOTHING_NEW, NOTHING_NEW)
    return [*steps, extra]


def visible_story(sentences: list[str], perception: PerceptionResult) -> list[str]:
    """The story re-told from an agent's perspective (all of it when perception is unknown)."""
    if perception.observed is None:
        return list(sentences)
    return [sentences[i] for i in perception.observed]
