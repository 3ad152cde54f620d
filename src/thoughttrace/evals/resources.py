"""Prompts and judge rubrics are package data (YAML files beside this module), loaded here.

Keeping them out of the code lets a researcher read and change exactly what every model saw, and lets a
run record which version of a prompt it used.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template
from typing import Any

import yaml
from pydantic import BaseModel, Field


class Scale(BaseModel):
    min: int
    max: int


class Rubric(BaseModel):
    """A judge's rubric: scale, anchors, prompt template and the strict output format."""

    format_version: int
    name: str
    description: str
    scale: Scale
    symmetric: bool = True
    system: str
    anchors: dict[int, str]
    template: str
    output_format: str

    def render(self, text_a: str, text_b: str = "", context: str = "") -> list[dict[str, str]]:
        """The chat messages that ask the judge to score one pair (or one text)."""
        anchors = "\n".join(f"{k}: {v}" for k, v in sorted(self.anchors.items()))
        output_format = Template(self.output_format).substitute(min=self.scale.min, max=self.scale.max)
        context_block = f"Context (for reference only):\n{context}\n" if context else ""
        user = Template(self.template).substitute(
            context_block=context_block, text_a=text_a, text_b=text_b, anchors=anchors,
            output_format=output_format.strip(),
        )
        return [{"role": "system", "content": self.system.strip()}, {"role": "user", "content": user.strip()}]


class PromptFile(BaseModel):
    """A prompt file: named template strings (`system`, `user`, and optional blocks)."""

    format_version: int
    parts: dict[str, str] = Field(default_factory=dict)

    def fill(self, part: str, **values: Any) -> str:
        """Substitute `$name` placeholders; a missing value raises KeyError (a bug, not user input)."""
        return Template(self.parts[part]).substitute(**{k: str(v) for k, v in values.items()})


def _read(folder: str, name: str) -> dict[str, Any]:
    path = resources.files("thoughttrace.evals").joinpath(f"{folder}/{name}.yaml")
    if not path.is_file():
        raise ValueError(f"no {folder[:-1]} named '{name}' (files in thoughttrace/evals/{folder}/)")
    data = yaml.safe_load(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{folder}/{name}.yaml is not a mapping")
    return data


@cache
def load_rubric(name: str) -> Rubric:
    """A rubric by name (`thought_similarity`, `message_similarity`, `realism`)."""
    return Rubric.model_validate(_read("rubrics", name))


@cache
def load_prompt(name: str) -> PromptFile:
    data = _read("prompts", name)
    version = int(data.pop("format_version", 1))
    return PromptFile(format_version=version, parts={k: str(v) for k, v in data.items()})


def available_rubrics() -> list[str]:
    folder = resources.files("thoughttrace.evals").joinpath("rubrics")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
