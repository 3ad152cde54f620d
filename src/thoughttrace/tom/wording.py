"""Content words of short texts, for the engine's deterministic checks (which words tell belief hypotheses
apart, whether a proposed goal restates an answer choice): one definition used by both; and a hypothesis's
claim without its stated reason."""

from __future__ import annotations

import re

NOT = "<not>"
_NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor",
                        "without", "cannot"})
#: words that say nothing about what a sentence is about (3+ letters; shorter words are dropped anyway)
_STOP = frozenset({"the", "and", "that", "this", "there", "was", "were", "has", "had", "have", "been", "for",
                   "with", "into", "inside", "from", "its", "his", "her", "their", "she", "him", "they", "then",
                   "than", "are", "will", "would", "does", "did", "any", "all", "some", "what", "where", "when",
                   "which", "who", "because", "about", "also", "just", "now", "still", "after", "again", "before",
                   "being", "could", "more", "only", "other", "over", "such", "them", "these", "those", "very",
                   "while", "your"})

#: words of thinking ("thinks", "really believes"), as content words: belief hypotheses all carry them, so they say
#: nothing about what a belief is about
THINKING_WORDS = frozenset({"think", "thought", "believe", "belief", "know", "knew", "expect", "assume", "suppose",
                          "consider", "feel", "sure", "certain", "really"})


def terms(text: str) -> frozenset[str]:
    """Content words of a text: lower-case, 3+ letters, plural -s dropped, names like red_box kept whole;
    every negation becomes one token so that 'is' vs. 'isn't' is a difference."""
    out: set[str] = set()
    for tok in re.findall(r"[a-z0-9_]+(?:'[a-z]+)?", text.lower()):
        if tok.endswith("n't") or tok in _NEGATIONS:
            out.add(NOT)
            continue
        tok = tok.split("'")[0]
        if len(tok) < 3 or tok in _STOP:
            continue
        out.add(_singular(tok))
    return frozenset(out)


def _singular(word: str) -> str:
    """potatoes -> potato, boxes -> box, cabinets -> cabinet (both sides of a comparison go through it)."""
    if len(word) > 4 and re.search(r"(oes|ses|xes|zes|ches|shes)$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


_ARTICLE = r"(?:(?:the|a|an) )?"
#: "the apple is in the blue_pantry", "that apple is in the red_container", "moved the apple to the red_box"
_PLACEMENT = re.compile(rf"\b(?:(?:moved|moves|put|puts|placed|places) {_ARTICLE}(?P<moved>[\w'-]+) "
                        rf"(?:to|in|into|inside|on|onto)|{_ARTICLE}(?P<thing>[\w'-]+) (?:is|are|was|were) "
                        rf"(?:in|inside|on)) {_ARTICLE}[\w'-]+", re.I)


def without_other_placements(text: str, named: frozenset[str]) -> str:
    """The text without its clauses that place an object none of `named` (content words) is: "The apple is in the
    blue_pantry." says nothing about where the green_pepper is, though it names one of its containers. A pronoun
    ("it was in the microwave") may be the named object: kept."""
    def keep(m: re.Match[str]) -> str:
        thing = terms(m.group("moved") or m.group("thing"))
        return m.group(0) if not thing or thing & named else " "
    return _PLACEMENT.sub(keep, text)


def restates(text: str, statement: str, coverage: float = 0.8) -> bool:
    """`text` says what `statement` says: it holds at least `coverage` of the statement's content words (and
    the statement has two or more). "Aiden will look for the coat in the box because ..." restates "Where will
    Aiden look for the coat: box"; "Aiden wants to find the coat" does not."""
    want = terms(statement)
    return len(want) >= 2 and len(want & terms(text)) >= coverage * len(want)


_REASON = re.compile(r"(?:^|,?\s+)because\b.*$", re.I | re.S)


def claim(text: str) -> str:
    """A proposed hypothesis without its stated reason: "Abigail believes the beans are in the suitcase because
    Owen moved the beans to the suitcase" -> "Abigail believes the beans are in the suitcase." The reason is not
    part of the variable's value, and it carries story facts the agent may never have perceived (the move she
    did not see) into the agent's own likelihood prompts."""
    text = text.strip()
    head = _REASON.sub("", text).rstrip(" ,;")
    if head == text:
        return text
    return head + "." if head and head[-1] not in ".!?" else head


GROUP_PREFIX = "one of: "


def group_text(members: list[str]) -> str:
    """How a group of choices is put to the model: one choice naming all of them (autotom.absent_choice_groups)."""
    return GROUP_PREFIX + ", ".join(members)


def group_members(choice: str) -> list[str]:
    """The choices a hypothesis stands for: a group's members (group_text), else the choice itself."""
    return choice[len(GROUP_PREFIX):].split(", ") if choice.startswith(GROUP_PREFIX) else [choice]


def is_short_choice(choice: str) -> bool:
    """A choice that is not a sentence (under four words), or a group of such choices: it is asked as the
    question's answer ("<question>: <choice>"), so it shares the question's words with its siblings. A group left
    bare ("one of: red_box, ...") shared none of them, so an observation naming only the agent told it apart from
    the rest and was asked (a Hi-ToM item spent its budget there)."""
    return len(choice.split()) < 4 or choice.startswith(GROUP_PREFIX)
