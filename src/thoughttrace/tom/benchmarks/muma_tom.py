"""MuMA-ToM (Shi et al. 2024), text modality: questions.json keyed by episode.

Each episode has `description` (a Python bytes literal as text, e.g. "b'...'"; decoded here without
evaluating it), optionally `filtered_description` (the story used for belief-of-goal questions),
`questions` ("question\\nA) ...\\nB) ...\\nC) ..."), `answers` ("B) ...") and `labels` (question type).
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path

from ..items import ItemFileError, ToMItem, index_of

NAME = "muma_tom"
FILE = "questions.json"
_OPTION = re.compile(r"^([A-Z])\)\s*(.*)$")


def official_group(item: ToMItem) -> str:
    """MuMA-ToM reports belief, social goal and belief of goal."""
    return item.question_type


def decode_description(text: str) -> str:
    """Undo the `b'...'` wrapping and its escapes (\\n, \\', \\xNN) without `eval`."""
    if text[:2] in ("b'", 'b"'):
        # the closing quote is missing in a few episodes; the uniform file drops the last character
        # either way, and so does this loader, to stay item-for-item identical to it
        inner = text[2:-1]
        raw: bytes = codecs.escape_decode(inner.encode("utf-8"))[0]  # type: ignore[attr-defined]
        text = raw.decode("utf-8")
    return text.strip()


def split_question(text: str) -> tuple[str, list[str]]:
    lines = [ln.strip() for ln in text.strip().split("\n") if ln.strip()]
    question: list[str] = []
    choices: list[str] = []
    for ln in lines:
        match = _OPTION.match(ln)
        if match and (choices or match.group(1) == "A"):
            choices.append(match.group(2).strip())
        elif not choices:
            question.append(ln)
    if len(choices) < 2:
        raise ValueError("fewer than two 'A) ...' options")
    return " ".join(question), choices


def load_official(raw_dir: Path) -> list[ToMItem]:
    path = raw_dir / FILE
    if not path.exists():
        raise ItemFileError(f"MuMA-ToM: expected {path} (episodes with description/questions/answers/labels)")
    data = json.loads(path.read_text(encoding="utf-8"))
    items: list[ToMItem] = []
    by_type: dict[str, list[ToMItem]] = {}
    for episode, entry in data.items():
        for key, qtext in entry["questions"].items():
            label = entry["labels"][key]
            source = "filtered_description" if label == "belief_of_goal" and "filtered_description" in entry \
                else "description"
            story = decode_description(entry[source]) if source == "description" else entry[source].strip()
            try:
                question, choices = split_question(qtext)
            except ValueError as exc:
                raise ItemFileError(f"{path}: episode {episode} question {key}: {exc}") from exc
            answer = index_of(entry["answers"][key].strip()[0])
            item = ToMItem(
                id="", benchmark=NAME, story=story, question=question, choices=choices,
                answer=entry["answers"][key].strip()[0], answer_text=choices[answer], question_type=label,
                group=f"muma-ep{episode}", split="test",
                metadata={"episode": episode, "question_key": key, "original_label": label, "story_source": source},
            )
            by_type.setdefault(label, []).append(item)
    # the uniform file lists belief and social-goal episodes first, then belief-of-goal ones
    ordered = [it for it in by_type.pop("belief", []) + by_type.pop("social_goal", [])]
    ordered.sort(key=lambda it: (list(data).index(it.metadata["episode"]), int(it.metadata["question_key"])))
    for rest in by_type.values():
        ordered.extend(rest)
    for i, it in enumerate(ordered):
        it.id = f"muma_tom-{i:05d}"
        items.append(it)
    return items
