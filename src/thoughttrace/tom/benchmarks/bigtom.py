"""BigToM (Gandhi et al. 2023): `;`-separated CSVs, one per condition: story;question;correct;wrong.

The uniform file shuffles the two answers per item with a seed it does not record; this loader places them
in a seeded order of its own (`seed`), so items match the uniform file as story, question, the SET of
choices and the correct answer text, not necessarily the letter.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..items import ItemFileError, ToMItem, letter

NAME = "bigtom"
CONDITIONS = (
    "forward_belief_true_belief", "forward_belief_false_belief",
    "forward_action_true_belief", "forward_action_false_belief",
    "backward_belief_true_belief", "backward_belief_false_belief",
)


def official_group(item: ToMItem) -> str:
    """BigToM reports accuracy per condition (inference type x true/false belief)."""
    return item.question_type


def load_official(raw_dir: Path, seed: int = 0) -> list[ToMItem]:
    rng = random.Random(seed)
    items: list[ToMItem] = []
    for condition in CONDITIONS:
        path = raw_dir / f"0_{condition}_stories.csv"
        if not path.exists():
            raise ItemFileError(f"BigToM: expected {path} (story;question;correct answer;wrong answer)")
        inference = "_".join(condition.split("_")[:2])
        belief = "_".join(condition.split("_")[2:])
        lines = [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()]
        for index, line in enumerate(lines):
            parts = line.split(";")
            if len(parts) != 4:
                raise ItemFileError(f"{path}:{index + 1}: expected 4 ';'-separated fields, got {len(parts)}")
            story, question, correct, wrong = (p.strip() for p in parts)
            choices = [correct, wrong]
            rng.shuffle(choices)
            items.append(ToMItem(
                id=f"bigtom-{len(items):05d}", benchmark=NAME, story=story, question=question, choices=choices,
                answer=letter(choices.index(correct)), answer_text=correct, question_type=condition,
                group=f"bigtom-story{index:03d}", split="test",
                metadata={"inference": inference, "belief_condition": belief, "story_index": index,
                          "source_file": path.name},
            ))
    return items
