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
    decline: str = "I do not agree (leave the study)"
    declined: str = "You chose not to take part. Thank you for your time; nothing you wrote is kept."
    screened_out: str = "Thank you. Based on your answers you are not eligible for this study."
    timed_out: str = "The time for this study has run out. Thank you for your time."
    full: str = ("All places in this study were taken while you read the instructions. Thank you for your time: "
                 "use the code below so you are paid for it.")
    paused: str = "This study is paused and takes no new participants right now. Please try again later."
    closed: str = "This study is closed and takes no new participants. Thank you for your interest."
    screening_title: str = "A few questions first"


class Survey(_Strict):
    genders: list[str] = Field(default_factory=lambda: ["Woman", "Man", "Non-binary", "Prefer not to say"])
    education: list[str] = Field(default_factory=lambda: [
        "Secondary school", "Vocational training", "Bachelor's degree", "Master's degree", "Doctorate",
        "Other", "Prefer not to say",
    ])
    purposes: list[str] = Field(default_factory=lambda: [
        "Work", "Study", "Writing", "Coding", "Information seeking", "Advice", "Entertainment", "Other",
    ])


ItemType = Literal["single", "multiple", "likert", "number", "text"]
_CODE = r"^[A-Za-z0-9_\-]{1,64}$"


class SurveyItem(_Strict):
    """One researcher-defined question (survey or screening), validated when the study loads.

    `attention_check` makes it an instructed-response item ("choose 'Agree' here"): any other answer
    gives the participant the `attention_check_failed` quality flag. `screen_out_if` (screening items)
    lists the answers that end the study for the participant with the screen-out completion code.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="the answer's key in the export")
    type: ItemType
    question: str = Field(min_length=1)
    options: list[str] = Field(default_factory=list, description="single and multiple choice")
    required: bool = True
    scale: int = Field(default=5, ge=2, le=11, description="likert points (1..scale)")
    low_label: str = ""
    high_label: str = ""
    min: float | None = None
    max: float | None = None
    integer: bool = True
    max_chars: int = Field(default=200, ge=1, le=100_000)
    attention_check: str | int | list[str | int] | None = None
    screen_out_if: list[str | int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SurveyItem:
        if self.type in ("single", "multiple"):
            if len(self.options) < 2:
                raise ValueError(f"item '{self.id}' ({self.type} choice) needs at least 2 options")
            if len(set(self.options)) != len(self.options):
                raise ValueError(f"item '{self.id}' lists an option twice")
        elif self.options:
            raise ValueError(f"item '{self.id}': options are only for single/multiple choice, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"item '{self.id}': min {self.min} is above max {self.max}")
        allowed = self.allowed_values()
        for what, values in (("attention_check", self.expected_answers()), ("screen_out_if", self.screen_out_values())):
            bad = [v for v in values if v not in allowed] if allowed is not None else []
            if bad and allowed is not None:
                raise ValueError(f"item '{self.id}': {what} value(s) {bad} are not among its answers {sorted(allowed)}")
        return self

    def allowed_values(self) -> set[str] | None:
        """The answers the item accepts, as text (None: any number or text)."""
        if self.type in ("single", "multiple"):
            return set(self.options)
        if self.type == "likert":
            return {str(i) for i in range(1, self.scale + 1)}
        return None

    def expected_answers(self) -> list[str]:
        if self.attention_check is None:
            return []
        raw = self.attention_check if isinstance(self.attention_check, list) else [self.attention_check]
        return [str(v) for v in raw]

    def screen_out_values(self) -> list[str]:
        return [str(v) for v in self.screen_out_if]


def default_survey_items(survey: Survey) -> list[SurveyItem]:
    """The release's demographic survey, as items (the same answers and export as before)."""
    return [
        SurveyItem(id="age", type="text", question="Age", max_chars=20),
        SurveyItem(id="gender", type="single", question="Gender", options=survey.genders),
        SurveyItem(id="education", type="single", question="Highest education", options=survey.education),
        SurveyItem(id="occupation", type="text", question="Occupation", max_chars=200),
        SurveyItem(id="ai_use_frequency", type="likert", question="How often do you use AI assistants?",
                   scale=5, low_label="never", high_label="every day"),
        SurveyItem(id="purposes", type="multiple", question="What do you use them for?", options=survey.purposes),
    ]


class TaskSpec(_Strict):
    """One task position: its own instructions, and either a fixed task (`statement`) or a free one."""

    instructions: str | None = Field(default=None, description="shown above the task (default: texts.task_prompt)")
    statement: str | None = Field(default=None, min_length=1, description="a fixed task the participant is given")


class CompletionCodes(_Strict):
    """One Prolific completion code per way a participant can leave the study."""

    completed: str | None = Field(default=None, pattern=_CODE)
    declined: str | None = Field(default=None, pattern=_CODE, description="did not consent")
    screened_out: str | None = Field(default=None, pattern=_CODE)
    timed_out: str | None = Field(default=None, pattern=_CODE, description="ran past study_time_limit_minutes")
    full: str | None = Field(default=None, pattern=_CODE, description="every design row's quota was full")


class QualityRules(_Strict):
    """Thresholds of the low-effort note checks (each flag names the rule that fired)."""

    min_note_chars: int = Field(default=8, ge=0, description="a shorter note is 'too short'")
    max_chars_per_second: float = Field(default=25.0, gt=0, description="faster typing is implausible")
    min_keystroke_ratio: float = Field(default=0.3, ge=0, le=1,
                                       description="keystrokes / characters below this: the note was pasted")
    repeat_limit: int = Field(default=2, ge=2, description="the same note this many times is 'repeated'")


class Quotas(_Strict):
    """When assignment stops: per design row, per model (participants meeting it), and in all.

    Counted over participants who did not withdraw or screen out; a participant who cannot get a row
    (every row or model full) ends at the `full` page with its own completion code.
    """

    per_design_row: int | None = Field(default=None, ge=1, description="participants per design row")
    models: dict[str, int] = Field(default_factory=dict, description="model key -> participants meeting it")
    total: int | None = Field(default=None, ge=1, description="participants with a design row in all")

    @field_validator("models")
    @classmethod
    def _positive(cls, models: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in models.items() if v < 1]
        if bad:
            raise ValueError(f"model quota(s) for {bad} must be at least 1 (leave a model out to give it none)")
        return models


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
    prolific_completion_code: str | None = Field(default=None, pattern=_CODE,
                                                 description="the 'completed' code (completion_codes.completed wins)")
    completion_codes: CompletionCodes = Field(default_factory=CompletionCodes)
    anonymous_entry: bool = Field(default=True, description="false: only /start?PROLIFIC_PID=... opens the study")
    allow_decline: bool = Field(default=True, description="the consent page offers 'I do not agree'")
    study_time_limit_minutes: float | None = Field(default=None, gt=0, le=24 * 60,
                                                   description="past this since entry: the time-out path")
    tasks: list[TaskSpec] = Field(default_factory=list, description="the study's tasks, one per task position")
    task_order: Literal["rotate", "as_listed"] = Field(
        default="rotate", description="rotate: each participant starts at another task of `tasks` (the order "
        "is counterbalanced with the models); as_listed: everyone gets them in the listed order")
    screening: list[SurveyItem] = Field(default_factory=list, description="questions after consent; may screen out")
    survey_items: list[SurveyItem] | None = Field(default=None, description="default: the release's demographics")
    quality: QualityRules = Field(default_factory=QualityRules)
    quotas: Quotas = Field(default_factory=Quotas)

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
        if self.tasks:
            if "tasks_per_participant" in self.model_fields_set and self.tasks_per_participant != len(self.tasks):
                raise ValueError(f"tasks lists {len(self.tasks)} task(s) but tasks_per_participant is "
                                 f"{self.tasks_per_participant}; drop tasks_per_participant or make them agree")
            self.tasks_per_participant = len(self.tasks)
        for group in ("screening", "survey_items"):
            ids = [i.id for i in getattr(self, group) or []]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"{group}: item id(s) {twice} appear twice; every item needs its own id")
        unknown = sorted(set(self.quotas.models) - {m.key for m in self.models})
        if unknown:
            raise ValueError(f"quotas.models names model key(s) {unknown} that are not in models")
        if any(i.screen_out_if for i in self.survey_items or []):
            raise ValueError("survey_items cannot screen out (the study is over by then); "
                             "put screen_out_if items under screening")
        return self

    def survey_questions(self) -> list[SurveyItem]:
        return self.survey_items if self.survey_items is not None else default_survey_items(self.survey)

    def task_spec(self, index: int) -> TaskSpec:
        return self.tasks[index] if index < len(self.tasks) else TaskSpec()

    def completion_code(self, outcome: str) -> str | None:
        """The Prolific code for an outcome: completed, declined, screened_out, timed_out or full."""
        if outcome == "completed":
            return self.completion_codes.completed or self.prolific_completion_code
        return getattr(self.completion_codes, outcome, None)

    def completion_url_for(self, outcome: str) -> str | None:
        code = self.completion_code(outcome)
        return f"https://app.prolific.com/submissions/complete?cc={code}" if code else None

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
        return self.completion_url_for("completed")


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
