"""Hi-ToM (He et al. 2023): one JSON file `{"data": [...]}`; the uniform file keeps the VP prompting copies.

Each entry's `story` begins with an instruction line and ends with blank lines; `choices` is one string
"A. x, B. y, ..."; `answer` is the container's name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..items import ItemFileError, ToMItem, letter

NAME = "hitom"
FILE = "Hi-ToM_data.json"
PROMPTING = "VP"
_CHOICE = re.compile(r"(?:^|,\s*)([A-Z])\.\s*")


def official_group(item: ToMItem) -> str:
    """Hi-ToM reports accuracy per order of reasoning (0-4)."""
    order = item.metadata.get("order")
    if order is None:
        order = item.question_type.removeprefix("order").split("_")[0]
    return f"order{order}"


def strip_story(text: str) -> str:
    """Drop the instruction line before the numbered story and the trailing blank lines."""
    lines = text.strip().split("\n")
    while lines and not re.match(r"^\d+ ", lines[0]):
        lines.pop(0)
    return "\n".join(lines).strip()


def split_choices(text: str) -> list[str]:
    parts = _CHOICE.split(text.strip())
    return [parts[i + 1].strip().rstrip(",").strip() for i in range(1, len(parts) - 1, 2)]


def load_official(raw_dir: Path) -> list[ToMItem]:
    path = raw_dir / FILE
    if not path.exists():
        raise ItemFileError(f"Hi-ToM: expected {path} (a JSON object with a 'data' list)")
    rows = json.loads(path.read_text(encoding="utf-8"))["data"]
    items: list[ToMItem] = []
    for row in rows:
        if row.get("prompting_type") != PROMPTING:
            continue
        choices = split_choices(row["choices"])
        if row["answer"] not in choices:
            raise ItemFileError(f"{path}: sample {row.get('sample_id')}: answer {row['answer']!r} not among choices")
        order = int(row["question_order"])
        tell = "tell" if row["deception"] else "no_tell"
        items.append(ToMItem(
            id=f"hitom-{len(items):05d}", benchmark=NAME, story=strip_story(row["story"]), question=row["question"],
            choices=choices, answer=letter(choices.index(row["answer"])), answer_text=row["answer"],
            question_type=f"order{order}_{tell}", group="", split="test",
            metadata={"order": order, "deception": row["deception"], "story_length": row["story_length"],
                      "sample_id": row["sample_id"], "prompting_type": PROMPTING,
                      "autotom_subset": row["story_length"] == 1},
        ))
    return items
