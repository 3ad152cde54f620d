"""MMToM-QA (Jin et al. 2024), text modality: questions.json, one JSON object a line.

Each `question` holds the whole prompt: the apartment and the actions, then `Question: ... (a) ... (b) ...
Please respond with either a or b.`; this loader cuts it into story, question and choices.
"""

from __future__ import annotations

import re
from pathlib import Path

from thoughttrace.data.io import iter_json_objects

from ..items import ItemFileError, ToMItem, letter

NAME = "mmtom_qa"
FILE = "questions.json"
TYPE_NAMES = {
    "1.1": "belief:true_belief_short_term", "1.2": "belief:false_belief_short_term",
    "1.3": "belief:belief_tracking_long_term", "2.1": "goal:given_true_belief",
    "2.2": "goal:given_false_belief", "2.3": "goal:given_updated_belief", "2.4": "goal:given_future_actions",
}
_CHOICE = re.compile(r"\(([a-z])\)\s*")


def official_group(item: ToMItem) -> str:
    """MMToM-QA reports Belief (types 1.x) and Goal (types 2.x)."""
    return "belief" if item.question_type.startswith("1") else "goal"


def split_prompt(prompt: str) -> tuple[str, str, list[str]]:
    """story, question, choices of one MMToM-QA prompt."""
    story, sep, rest = prompt.rpartition("\nQuestion: ")
    if not sep:
        raise ValueError("no 'Question:' in the prompt")
    rest = re.sub(r"\s*Please respond with.*$", "", rest, flags=re.S)
    parts = _CHOICE.split(rest)
    question = parts[0].strip()
    choices = [parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)]
    if len(choices) < 2:
        raise ValueError("fewer than two '(a) ... (b) ...' choices")
    return story.rstrip(), question, choices


def load_official(raw_dir: Path) -> list[ToMItem]:
    path = raw_dir / FILE
    items: list[ToMItem] = []
    for number, row in iter_json_objects(path, error=ItemFileError, missing=f"MMToM-QA: expected {path} (one JSON object a line)"):
        try:
            story, question, choices = split_prompt(row["question"])
        except ValueError as exc:
            raise ItemFileError(f"{path}: line {number}: {exc}") from exc
        labels = list(row.get("answer_list") or [chr(ord("a") + i) for i in range(len(choices))])
        answer = labels.index(row["answer"])
        qtype = str(row["question_type"])
        items.append(ToMItem(
            id=f"mmtom_qa-{len(items):05d}", benchmark=NAME, story=story, question=question, choices=choices,
            answer=letter(answer), answer_text=choices[answer], question_type=qtype,
            group=f"mmtom-ep{row.get('episode')}", split="test",
            metadata={"type_name": TYPE_NAMES.get(qtype, qtype), "category": TYPE_NAMES.get(qtype, "x:").split(":")[0],
                      "episode": row.get("episode"), "start_time": row.get("start_time"),
                      "end_time": row.get("end_time"), "original_prompt": row["question"]},
        ))
    return items
