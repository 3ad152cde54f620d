"""ToM items in the uniform format of shared/data/tom, and stratified selection of them."""

from __future__ import annotations

import json
import math
import random
import string
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from thoughttrace.data.io import first_validation_error, iter_json_objects

LETTERS = string.ascii_uppercase


def letter(index: int) -> str:
    """A = 0, B = 1 ... (the uniform format's answer letters)."""
    return LETTERS[index]


def options_text(options: list[str] | tuple[str, ...]) -> str:
    """Options as a lettered list: "A. ...", "B. ...", one per line."""
    return "\n".join(f"{letter(i)}. {c}" for i, c in enumerate(options))


def letter_mass(top: list[tuple[str, float]], n: int) -> list[float]:
    """Probability of each option letter among top-k tokens ('A', ' A', '(A', 'A.' all count)."""
    mass = [0.0] * n
    for token, logprob in top:
        t = token.strip().strip("(").rstrip(").:")
        if len(t) == 1 and t.isalpha() and t.upper() == t and ord(t) - 65 < n:
            mass[ord(t) - 65] += math.exp(logprob)
    return mass


def index_of(answer_letter: str) -> int:
    return LETTERS.index(answer_letter.strip().upper())


class ToMItem(BaseModel):
    """One benchmark question: a story, a question and its choices; `answer` is a letter (A = choices[0])."""

    id: str
    benchmark: str
    story: str
    question: str
    choices: list[str] = Field(min_length=2, max_length=26)
    answer: str | None = None
    answer_text: str | None = None
    question_type: str = "unknown"
    group: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    split: str = "test"

    @model_validator(mode="before")
    @classmethod
    def _dialogue(cls, data: Any) -> Any:
        """A story given as a dialogue field, `"dialogue": [{"speaker": "Ann", "text": "..."}, ...]` (a turn may also
        be a stage direction `{"event": "Bob leaves."}`), becomes the story's lines "Ann: ..." (tom/dialogue.py reads
        who was present from them)."""
        if isinstance(data, dict) and data.get("dialogue") and not data.get("story"):
            lines = []
            for i, turn in enumerate(data["dialogue"]):
                if isinstance(turn, dict) and turn.get("speaker") and turn.get("text"):
                    lines.append(f"{str(turn['speaker']).strip()}: {str(turn['text']).strip()}")
                elif isinstance(turn, dict) and turn.get("event"):
                    lines.append(str(turn["event"]).strip())
                else:
                    raise ValueError(f"dialogue turn {i + 1} needs 'speaker' and 'text' (or 'event'), got {turn!r}")
            data = {k: v for k, v in data.items() if k != "dialogue"} | {"story": "\n".join(lines)}
        return data

    @field_validator("answer")
    @classmethod
    def _letter(cls, value: str | None) -> str | None:
        """One capital letter, or several joined by commas ("A,C") for a multi-label item."""
        if value is None:
            return None
        parts = [p.strip() for p in value.split(",")]
        if not parts or any(len(p) != 1 or p not in LETTERS for p in parts):
            raise ValueError(f"answer must be a capital letter or letters joined by commas like 'A,C', got {value!r}")
        if len(set(parts)) != len(parts):
            raise ValueError(f"answer {value!r} repeats a letter")
        return ",".join(sorted(parts))

    @model_validator(mode="after")
    def _answer_in_range(self) -> ToMItem:
        for i in self.answer_indices or []:
            if i >= len(self.choices):
                raise ValueError(f"answer {letter(i)} names no choice (there are {len(self.choices)})")
        return self

    @property
    def answer_indices(self) -> list[int] | None:
        """Every gold choice (one for single-answer items)."""
        return None if self.answer is None else [index_of(x) for x in self.answer.split(",")]

    @property
    def multi_label(self) -> bool:
        return self.answer is not None and "," in self.answer

    @property
    def answer_index(self) -> int | None:
        """The gold choice of a single-answer item (the first one of a multi-label item)."""
        idx = self.answer_indices
        return None if idx is None else idx[0]


class ItemFileError(ValueError):
    """A ToM item file is malformed; the message names the file and line."""


def read_items(path: str | Path) -> list[ToMItem]:
    """Read a uniform-format JSONL file; errors name the line and the field to fix."""
    path = Path(path)
    items: list[ToMItem] = []
    for number, row in iter_json_objects(path, error=ItemFileError, missing=f"no such ToM item file: {path}"):
        try:
            items.append(ToMItem.model_validate(row))
        except ValidationError as exc:
            raise ItemFileError(f"{path}: line {number}: {first_validation_error(exc)}") from exc
    return items


def write_items(items: Iterable[ToMItem], path: str | Path) -> None:
    from ..outputs import open_output

    with open_output(path) as fh:
        for item in items:
            fh.write(json.dumps(item.model_dump(mode="json"), ensure_ascii=False) + "\n")


def select(items: Iterable[ToMItem], *, split: str | None = None, limit: int | None = None) -> list[ToMItem]:
    """Items of one split; with `limit`, a stratified subset per benchmark.

    The subset takes question types round-robin (in order of first appearance) so that a small limit still
    covers every type, which plain head-of-file slicing would not.
    """
    chosen = [it for it in items if split is None or it.split == split]
    if limit is None:
        return chosen
    by_bench: dict[str, list[ToMItem]] = defaultdict(list)
    for it in chosen:
        by_bench[it.benchmark].append(it)
    out: list[ToMItem] = []
    for bench_items in by_bench.values():
        out.extend(_round_robin(bench_items, limit))
    return out


def _round_robin(items: list[ToMItem], limit: int) -> Iterator[ToMItem]:
    strata: dict[str, list[ToMItem]] = defaultdict(list)
    for it in items:
        strata[it.question_type].append(it)
    queues = list(strata.values())
    taken = 0
    depth = 0
    while taken < limit and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and taken < limit:
                yield q[depth]
                taken += 1
        depth += 1


#: the test protocol's sample (issue 28): per benchmark, this many test items, stratified by question type
TEST_PER_BENCHMARK = 20
TEST_SEED = 28


def sample_stratified(items: Iterable[ToMItem], *, split: str = "test", per_benchmark: int = TEST_PER_BENCHMARK,
                      seed: int = TEST_SEED) -> list[ToMItem]:
    """A fixed sample of one split: per benchmark, `per_benchmark` items taken round-robin over its question types
    (in sorted order), each type's items in an order shuffled with `seed`. The same files and arguments give the same
    ids on any machine (random.Random with a fixed seed; the file order does not matter: items are sorted by id
    first). The test protocol runs every engine version once on it, never tunes on it."""
    by_bench: dict[str, dict[str, list[ToMItem]]] = defaultdict(lambda: defaultdict(list))
    for it in sorted((it for it in items if it.split == split), key=lambda it: it.id):
        by_bench[it.benchmark][it.question_type].append(it)
    out: list[ToMItem] = []
    for bench in sorted(by_bench):
        strata = by_bench[bench]
        queues = []
        for qtype in sorted(strata):
            q = list(strata[qtype])
            random.Random(f"{seed}:{bench}:{qtype}").shuffle(q)
            queues.append(q)
        taken: list[ToMItem] = []
        depth = 0
        while len(taken) < per_benchmark and any(depth < len(q) for q in queues):
            for q in queues:
                if depth < len(q) and len(taken) < per_benchmark:
                    taken.append(q[depth])
            depth += 1
        out.extend(taken)
    return out
