"""The study config: everything a researcher sets without touching code (YAML or TOML, validated).

A config names the model pool (any model string, with a per-model system prompt and sampling
parameters), the number of tasks per participant, the task timer, the texts shown on each page, the
tutorial quiz, the survey options and the Prolific completion code. Errors name the field and say
what to write instead, so a typo in a config is caught before a participant ever sees the page.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thoughttrace.data import REACTION_LABELS, REASON_LABELS

DEMO_STUDY = "demo.yaml"


class StudyConfigError(ValueError):
    """A study config that cannot be used; the message lists every problem with its field path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelEntry(_Strict):
    """One model of the pool. `spec` is any `get_model` string; `options` go to the backend."""

    key: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="short id stored with each conversation")
    spec: str = Field(min_length=1)
    name: str | None = Field(default=None, description="exported model_name (defaults to key)")
    provider: str = "unknown"
    system_prompt: str = "You are a helpful assistant."
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1, le=32768)
    options: dict[str, Any] = Field(default_factory=dict, description="backend arguments, e.g. outputs for scripted")

    @property
    def display_name(self) -> str:
        return self.name or self.key


class QuizQuestion(_Strict):
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    answer: int = Field(ge=0, description="index of the correct option (0-based)")

    @model_validator(mode="after")
    def _answer_in_range(self) -> QuizQuestion:
        if self.answer >= len(self.options):
            raise ValueError(f"answer {self.answer} is not an option index (0..{len(self.options) - 1})")
        return self


class Texts(_Strict):
    title: str = "A study on how people talk to AI assistants"
    consent: str = (
        "You will chat with an AI assistant about tasks you choose. For every message you send, you will "
        "write privately WHY you send it; for every answer, what you THINK of it. The assistant never sees "
        "these notes. Your answers are stored without your name and may be published for research."
    )
    tutorial: str = (
        "1. Say what you want to do (your task).\n2. Chat with the assistant as you normally would.\n"
        "3. With each message, write your reason: why you send it.\n"
        "4. After each answer, write your reaction: what you think of it.\n"
        "The assistant never sees your reasons or reactions."
    )
    task_prompt: str = "What would you like the assistant to help you with? Describe your task in a sentence or two."
    reason_prompt: str = "Why are you sending this message? (private: the assistant never sees it)"
    reaction_prompt: str = "What do you think of this answer? (private: the assistant never sees it)"
    summary_prompt: str = "In a sentence or two: what did you try to do in this task?"
    expectation_prompt: str = "What did you expect from the AI in this task?"
    completion: str = "Thank you! You have finished the study."


class Survey(_Strict):
    genders: list[str] = Field(default_factory=lambda: ["Woman", "Man", "Non-binary", "Prefer not to say"])
    education: list[str] = Field(default_factory=lambda: [
        "Secondary school", "Vocational training", "Bachelor's degree", "Master's degree", "Doctorate",
        "Other", "Prefer not to say",
    ])
    purposes: list[str] = Field(default_factory=lambda: [
        "Work", "Study", "Writing", "Coding", "Information seeking", "Advice", "Entertainment", "Other",
    ])


class StudyConfig(_Strict):
    """A whole study. Only `models` is required; everything else has the release's defaults."""

    format_version: int = 1
    name: str = "study"
    models: list[ModelEntry] = Field(min_length=1)
    tasks_per_participant: int = Field(default=2, ge=1, le=20)
    timer_minutes: float = Field(default=10.0, gt=0, le=240)
    min_user_messages: int = Field(default=1, ge=1, description="messages before 'finish task' is allowed")
    require_reason: bool = True
    require_reaction: bool = True
    labels: Literal["off", "optional", "required"] = "off"
    max_message_chars: int = Field(default=4000, ge=1, le=100_000)
    max_note_chars: int = Field(default=2000, ge=1, le=100_000)
    model_timeout_seconds: float = Field(default=120.0, gt=0)
    texts: Texts = Field(default_factory=Texts)
    quiz: list[QuizQuestion] = Field(default_factory=lambda: [
        QuizQuestion(question="Who can read your reasons and reactions?",
                     options=["The assistant", "Only the researchers", "Everyone"], answer=1),
        QuizQuestion(question="When do you write a reaction?",
                     options=["Before sending a message", "After each answer of the assistant", "Never"], answer=1),
    ])
    survey: Survey = Field(default_factory=Survey)
    prolific_completion_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")

    @field_validator("models")
    @classmethod
    def _unique_keys(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        seen: set[str] = set()
        for m in models:
            if m.key in seen:
                raise ValueError(f"model key '{m.key}' appears twice; every model needs its own key")
            seen.add(m.key)
        return models

    @model_validator(mode="after")
    def _known_version(self) -> StudyConfig:
        if self.format_version != 1:
            raise ValueError(f"format_version {self.format_version} is not supported (this version reads 1)")
        return self

    def model_entry(self, key: str) -> ModelEntry:
        for m in self.models:
            if m.key == key:
                return m
        raise KeyError(key)

    def reason_labels(self) -> tuple[str, ...]:
        return REASON_LABELS

    def reaction_labels(self) -> tuple[str, ...]:
        return REACTION_LABELS

    @property
    def completion_url(self) -> str | None:
        if not self.prolific_completion_code:
            return None
        return f"https://app.prolific.com/submissions/complete?cc={self.prolific_completion_code}"


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: the study config is not valid:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/platform.md for the fields)"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def parse_study(data: Any, source: str = "study config") -> StudyConfig:
    """Validate already-parsed data; raise StudyConfigError listing every problem."""
    if not isinstance(data, dict):
        raise StudyConfigError(f"{source}: expected a mapping of fields at the top level, got {type(data).__name__}")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise StudyConfigError(_format_errors(exc, source)) from None


def load_study(path: str | Path) -> StudyConfig:
    """Read a YAML (.yaml/.yml) or TOML (.toml) study config."""
    p = Path(path)
    if not p.is_file():
        raise StudyConfigError(f"study config not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif p.suffix.lower() in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            raise StudyConfigError(f"{p}: use a .yaml, .yml or .toml file for the study config")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise StudyConfigError(f"{p}: cannot parse the file: {exc}") from None
    return parse_study(data, str(p))


def with_single_model(study: StudyConfig, spec: str) -> StudyConfig:
    """The same study with its pool replaced by one model string (`serve --model`)."""
    first = study.models[0]
    key = re.sub(r"[^A-Za-z0-9_.\-]", "-", spec)[:64]
    entry = ModelEntry(key=key, spec=spec, name=spec, provider="unknown", system_prompt=first.system_prompt,
                       temperature=first.temperature, max_tokens=first.max_tokens)
    return study.model_copy(update={"models": [entry]})


def demo_study() -> StudyConfig:
    """The demo study shipped with the package (one local model, two short tasks)."""
    text = resources.files("thoughttrace.collect").joinpath(f"studies/{DEMO_STUDY}").read_text("utf-8")
    return parse_study(yaml.safe_load(text), f"package demo study {DEMO_STUDY}")
