"""Questions and answers for the arena: question files, answers from any model, cached in a JSONL file.

Questions: one JSON object a line, Arena-Hard's `question_id` + `turns[0].content` or `uid` + `prompt`.
Answers come through the model layer for any model string (cached by it) or, for a trained DPO adapter,
from transformers `generate` on the base model plus the adapter. Either way they are written to an
answers file; rerunning skips the questions already answered there (resume).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from thoughttrace.llm import Model

from .records import FORMAT_VERSION, AlignError, append_jsonl, read_models, read_resource

DEMO_QUESTIONS = "resources/demo_questions.jsonl"


class Question(BaseModel):
    model_config = ConfigDict(extra="allow")
    question_id: str
    category: str | None = None
    prompt: str

    @model_validator(mode="before")
    @classmethod
    def _arena_hard_shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "question_id" not in data and "uid" in data:
            data["question_id"] = data["uid"]
        if "question_id" in data:
            data["question_id"] = str(data["question_id"])
        if "prompt" not in data and isinstance(data.get("turns"), list) and data["turns"]:
            first = data["turns"][0]
            data["prompt"] = first.get("content") if isinstance(first, dict) else first
        return data


class Answer(BaseModel):
    format_version: int = FORMAT_VERSION
    question_id: str
    model: str  # the name the arena shows
    answer: str
    generator: str = Field(description="model string or adapter directory that produced it")
    usage: dict[str, int] = Field(default_factory=dict)
    #: style features for style control (length, headers, lists, bold); None: counted from `answer`
    style: dict[str, float] | None = None
    #: the arena-hard-auto line this answer was read from (kept so an export writes it back unchanged)
    source: dict[str, Any] | None = Field(default=None, exclude=True)


def load_questions(path: str | Path | None = None, limit: int | None = None) -> list[Question]:
    """A question file, or the shipped demo set when path is None or 'demo'."""
    if path is None or str(path) == "demo":
        qs = [Question.model_validate(json.loads(line)) for line in read_resource(DEMO_QUESTIONS).splitlines()
              if line.strip()]
    else:
        qs = read_models(path, Question, "question (needs question_id + turns[0].content, or uid + prompt)")
    ids = [q.question_id for q in qs]
    if len(set(ids)) != len(ids):
        raise AlignError(f"{path}: question ids are not unique")
    return qs[:limit] if limit is not None else qs


def load_answers(path: str | Path) -> list[Answer]:
    return read_models(path, Answer, "answer")


def _done(out: Path, name: str) -> set[str]:
    if not out.exists():
        return set()
    return {a.question_id for a in load_answers(out) if a.model == name}


async def aanswer_with_model(questions: Sequence[Question], model: Model, out: str | Path, *, name: str | None = None,
                             max_tokens: int = 1024, progress: bool = True) -> list[Answer]:
    """Answer each question not yet in `out` through the model layer; appends rows as they finish."""
    out = Path(out)
    name = name or model.spec
    todo = [q for q in questions if q.question_id not in _done(out, name)]
    bar = tqdm(total=len(todo), desc=f"answers[{name}]", disable=None if progress else True)

    async def one(q: Question) -> None:
        gen = await model.agenerate([{"role": "user", "content": q.prompt}], max_tokens=max_tokens, temperature=0.0)
        append_jsonl(Answer(question_id=q.question_id, model=name, answer=gen.text.strip(), generator=model.spec,
                            usage=gen.usage.model_dump()), out)
        bar.update(1)

    try:
        await asyncio.gather(*(one(q) for q in todo))
    finally:
        bar.close()
    return [a for a in load_answers(out) if a.model == name] if out.exists() else []


def answer_with_model(questions: Sequence[Question], model: Model, out: str | Path, **kwargs: Any) -> list[Answer]:
    return model.run(aanswer_with_model(questions, model, out, **kwargs))


def answer_with_adapter(questions: Sequence[Question], adapter_dir: str | Path | None, out: str | Path, *,
                        name: str | None = None, base_model: str | None = None, max_tokens: int = 512,
                        progress: bool = True) -> list[Answer]:
    """Answer with transformers generate (greedy): a trained run's base model plus its LoRA adapter.

    `adapter_dir` is a run's `adapter/` (or the run directory); the base model comes from the run's
    train_meta.json unless given. A full fine-tuned model directory (no adapter_config.json) is loaded as
    it is. With `adapter_dir=None`, `base_model` answers alone: the untrained baseline on the same engine,
    so an arena between the two differs only in the training.
    """
    import torch

    from .hf import load_causal_lm

    adapter: Path | None = None
    if adapter_dir is not None:
        adapter = Path(adapter_dir)
        if (adapter / "adapter").is_dir():
            adapter = adapter / "adapter"
        elif (adapter / "model").is_dir():
            adapter = adapter / "model"
        if not adapter.is_dir():
            raise AlignError(f"{adapter}: not a directory; give the run directory `align train` wrote")
        meta_file = adapter.parent / "train_meta.json"
        if base_model is None:
            if not meta_file.exists():
                raise AlignError(f"{meta_file} is missing; pass --base-model with the model the adapter was "
                                 "trained on")
            base_model = str(json.loads(meta_file.read_text())["base_model"])
    if base_model is None:
        raise AlignError("give an adapter directory or a base model to answer with")
    out = Path(out)
    name = name or (f"dpo:{adapter.parent.name}" if adapter else f"hf:{base_model}")
    todo = [q for q in questions if q.question_id not in _done(out, name)]
    if not todo:
        return [a for a in load_answers(out) if a.model == name]
    if adapter is not None and not (adapter / "adapter_config.json").exists():
        lm, tok = load_causal_lm(str(adapter))  # a full fine-tuned model
    else:
        lm, tok = load_causal_lm(base_model)
        if adapter is not None:
            from peft import PeftModel

            lm = PeftModel.from_pretrained(lm, str(adapter))
    lm.eval()
    generator = str(adapter) if adapter is not None else f"transformers:{base_model}"
    for q in tqdm(todo, desc=f"answers[{name}]", disable=None if progress else True):
        ids = tok.apply_chat_template([{"role": "user", "content": q.prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        ids = {k: v.to(lm.device) for k, v in ids.items()}
        with torch.no_grad():
            gen = lm.generate(**ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        new = gen[0, ids["input_ids"].shape[1]:]
        text = tok.decode(new, skip_special_tokens=True).strip()
        append_jsonl(Answer(question_id=q.question_id, model=name, answer=text, generator=generator,
                            usage={"prompt_tokens": int(ids["input_ids"].shape[1]),
                                   "completion_tokens": int(new.shape[0])}), out)
    return [a for a in load_answers(out) if a.model == name]
