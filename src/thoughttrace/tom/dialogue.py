"""Stories told as speaker turns ("Ann: I put the key under the mat."): who is present when each line is said.

A dialogue is a timeline of utterances; each one is an observation of everyone present at that moment. The rules of
presence (`presence`), the same for every conversation:

1. everyone who speaks is a participant; a participant whose first appearance is not a joining is present from the
   start; one who first appears by joining ("[Bob joins]", "Bob joined the chat.") is absent until then;
2. a joining line makes its people present (and is perceived by them and by everyone already present);
3. a leaving line ("Bob leaves.", "(Bob has left the call)", "Bob logged off") is perceived by everyone present
   before it, the leaver included; after it the leaver is absent;
4. a speaker is present when speaking (someone who left and speaks again has come back);
5. a line that is neither a turn nor a joining or leaving (narration) is not placed: the model's perception decides.

Speakers' names need not be capitalised ("sam: ok"): a turn's speaker is whatever precedes its colon; names are
matched without case. A story is a dialogue when at least two of its lines are turns, by at least two speakers,
and turns are at least half of its lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = r"[A-Za-z][\w'.-]*(?: [A-Za-z][\w'.-]*){0,2}?"
_TURN = re.compile(rf"^\s*(?P<who>{_NAME})\s*:\s+(?P<text>\S.*)$")
_WHO = rf"(?P<who>{_NAME}(?:(?:, | and |, and ){_NAME})*)"
_JOIN = re.compile(rf"^\W*{_WHO} (?:has |have )?(?:joins|joined|join|enters|entered|arrives|arrived|comes in|came in|"
                   rf"comes back|came back|returns|returned|is back|logs on|logged on|dials in|dialed in)\b", re.I)
_LEAVE = re.compile(rf"^\W*{_WHO} (?:has |have )?(?:leaves|left|leave|exits|exited|goes away|went away|gone away|"
                    rf"steps out|stepped out|walks out|walked out|hangs up|hung up|logs off|logged off|drops out|"
                    rf"dropped out|drops off|dropped off)\b", re.I)
#: words that open a sentence like a name but never speak ("Note: ...", "Time: ...")
_NOT_SPEAKERS = frozenset({"note", "time", "date", "location", "scene", "setting", "question", "answer", "story",
                           "context", "summary", "narrator", "title", "example", "warning"})


@dataclass(frozen=True)
class Line:
    """One line of a dialogue: a turn (speaker, text), a joining or a leaving (people), or narration."""

    kind: str  # "turn" | "join" | "leave" | "narration"
    people: tuple[str, ...]
    text: str


def _names(group: str) -> tuple[str, ...]:
    return tuple(n.strip().lower() for n in re.split(r", and |, | and ", group) if n.strip())


def turn(line: str) -> tuple[str, str] | None:
    """(speaker, text) of a transcript line "Name: words", or None."""
    m = _TURN.match(line)
    if m is None or m.group("who").lower() in _NOT_SPEAKERS:
        return None
    return m.group("who"), m.group("text")


def parse_line(line: str) -> Line:
    """What one line is: a turn, a joining, a leaving or narration."""
    got = turn(line)
    if got is not None:
        return Line("turn", (got[0].lower(),), got[1])
    if m := _JOIN.match(line):
        return Line("join", _names(m.group("who")), line)
    if m := _LEAVE.match(line):
        return Line("leave", _names(m.group("who")), line)
    return Line("narration", (), line)


def is_dialogue(lines: list[str]) -> bool:
    """At least two turns by at least two speakers, and turns are at least half of the lines."""
    turns = [t for ln in lines if (t := turn(ln)) is not None]
    return len(turns) >= 2 and len({s.lower() for s, _ in turns}) >= 2 and 2 * len(turns) >= len(lines)


def speakers(lines: list[str]) -> list[str]:
    """Every speaker as written at first occurrence, in order (lower-case names included)."""
    out: list[str] = []
    for ln in lines:
        t = turn(ln)
        if t is not None and t[0].lower() not in {o.lower() for o in out}:
            out.append(t[0])
    return out


def presence(lines: list[str], agent: str) -> dict[int, bool] | None:
    """Which lines `agent` perceived (index -> heard/saw it), by the rules of presence above; narration lines are
    left out. None when the lines are not a dialogue or the agent never takes part (speaks, joins or leaves)."""
    if not is_dialogue(lines):
        return None
    parsed = [parse_line(ln) for ln in lines]
    me = agent.lower()
    if not any(me in p.people for p in parsed):
        return None
    first: dict[str, str] = {}
    for p in parsed:
        for who in p.people:
            first.setdefault(who, p.kind)
    present = {who for who, kind in first.items() if kind != "join"}
    out: dict[int, bool] = {}
    for i, p in enumerate(parsed):
        if p.kind == "join":
            present |= set(p.people)
            out[i] = me in present
        elif p.kind == "leave":
            out[i] = me in present or me in p.people
            present -= set(p.people)
        elif p.kind == "turn":
            present |= set(p.people)
            out[i] = me in present
    return out


def own_turns(lines: list[str], agent: str) -> list[int]:
    """The agent's own turns (its utterances, the acts that cut its timeline)."""
    me = agent.lower()
    return [i for i, ln in enumerate(lines) if (t := turn(ln)) is not None and t[0].lower() == me]
