"""ToMi (Le et al. 2019; balanced test set of Sclar et al.): one JSON object a line with `containers`."""

from __future__ import annotations

from pathlib import Path

from thoughttrace.data.io import iter_json_objects

from ..items import ItemFileError, ToMItem, letter

NAME = "tomi"
FILE = "test_balanced.jsonl"


def official_group(item: ToMItem) -> str:
    """ToMi's published split: first-order, second-order, reality, memory."""
    qtype = item.question_type
    for group in ("first_order", "second_order", "reality", "memory"):
        if qtype.startswith(group):
            return group
    return qtype


def load_official(raw_dir: Path) -> list[ToMItem]:
    path = raw_dir / FILE
    items: list[ToMItem] = []
    missing = f"ToMi: expected {path} (the balanced test set, one JSON object a line)"
    for number, row in iter_json_objects(path, error=ItemFileError, missing=missing):
        choices = list(row["containers"])
        if row["answer"] not in choices:
            raise ItemFileError(f"{path}: line {number}: answer {row['answer']!r} is not among the containers")
        qtype = row["question_type"]
        item = ToMItem(
            id=f"tomi-{len(items):05d}", benchmark=NAME, story=row["story"], question=row["question"],
            choices=choices, answer=letter(choices.index(row["answer"])), answer_text=row["answer"],
            question_type=qtype, group="", split="test",
            metadata={"story_type": row.get("story_type"), "tom_question": qtype.endswith("_tom")
                      and not qtype.endswith("no_tom")},
        )
        item.metadata["autotom_group"] = official_group(item)
        items.append(item)
    return items
