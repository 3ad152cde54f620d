"""Labelling logic with scripted models: prompts, strict parsing, retries with feedback, unlabelled, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thoughttrace.data import read_conversations
from thoughttrace.label import (
    Labeler,
    LabelFileError,
    extract_items,
    get_label_set,
    label_dataset,
    read_label_records,
)
from thoughttrace.llm import get_model


def test_items_from_examples(examples_path: Path) -> None:
    convs = read_conversations(examples_path)
    items = list(extract_items(convs, ["reason", "reaction", "domain", "relation"]))
    kinds = [i.kind for i in items]
    assert kinds.count("reason") == 15 and kinds.count("reaction") == 15
    assert kinds.count("domain") == 3 and kinds.count("relation") == 14 - 3
    ids = [i.item_id for i in items]
    assert len(ids) == len(set(ids))
    reason = next(i for i in items if i.kind == "reason")
    assert reason.gold == "Social & Others" and reason.fields["thought"].startswith("Good way")
    missing = list(extract_items(convs, ["reason"], only_missing=True))
    assert missing == []  # every reason in the examples has a label


def test_prompt_lists_labels_and_puts_the_item_last(examples_path: Path) -> None:
    model = get_model("scripted", cache=False, outputs=["Social & Others"])
    item = next(extract_items(read_conversations(examples_path), ["reason"]))
    res = model.run(Labeler(model).alabel(item))
    assert res.label == "Social & Others" and res.attempts == 1
    prompt = model.backend.requests[0]["messages"][1]["content"]
    for lab in get_label_set("reason").names:
        assert lab in prompt
    assert prompt.rstrip().endswith("Label:")
    assert prompt.index("Allowed labels") < prompt.index(item.fields["thought"])


def test_invalid_answer_is_retried_with_the_error_fed_back(examples_path: Path) -> None:
    model = get_model("scripted", cache=False, outputs=["I think it is about goals", "Task Continuation"])
    item = next(extract_items(read_conversations(examples_path), ["reason"]))
    res = model.run(Labeler(model, max_attempts=3).alabel(item))
    assert res.label == "Task Continuation" and res.attempts == 2
    second = model.backend.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "I think it is about goals"}
    assert "not one of the allowed labels" in second[-1]["content"]


def test_never_guesses_after_max_attempts(examples_path: Path) -> None:
    model = get_model("scripted", cache=False, outputs=["Task-ish maybe"])
    item = next(extract_items(read_conversations(examples_path), ["reason"]))
    res = model.run(Labeler(model, max_attempts=2).alabel(item))
    assert res.label is None and res.status == "unlabelled" and res.attempts == 2
    assert res.raw == "Task-ish maybe" and "2 attempts" in (res.error or "")
    assert len(model.backend.requests) == 2


def test_label_file_resumes_and_refuses_other_models(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    model = get_model("scripted", cache=False, outputs=["Task Continuation"])
    s1 = label_dataset(examples_path, model, out, kinds=["reason"], limit=5, batch_size=2)
    assert (s1.total, s1.labelled, s1.skipped) == (5, 5, 0)
    n_requests = len(model.backend.requests)
    s2 = label_dataset(examples_path, model, out, kinds=["reason"], batch_size=4)
    assert s2.skipped == 5 and s2.labelled == 10
    assert len(model.backend.requests) == n_requests + 10
    recs = read_label_records(out)
    assert len(recs) == 15
    assert all(r["format_version"] == 1 and r["status"] == "ok" and r["model"] == "scripted" for r in recs)
    other = get_model("scripted:other", cache=False, outputs=["Task Continuation"])
    with pytest.raises(LabelFileError, match="another --out"):
        label_dataset(examples_path, other, out, kinds=["reason"])


def test_interrupted_file_is_resumed_safely(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    model = get_model("scripted", cache=False, outputs=["Task Continuation"])
    label_dataset(examples_path, model, out, kinds=["reason"], limit=3)
    text = out.read_text()
    out.write_text(text[: len(text) - 40])  # cut the last record mid-line
    s = label_dataset(examples_path, model, out, kinds=["reason"])
    assert s.skipped == 2 and s.labelled == 13
    lines = out.read_text().splitlines()
    good = [json.loads(x) for x in lines if x.endswith("}")]
    assert len({r["item_id"] for r in good}) == 15


def test_unlabelled_are_retried_only_when_asked(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    bad = get_model("scripted", cache=False, outputs=["???"])
    s = label_dataset(examples_path, bad, out, kinds=["reaction"], limit=4, max_attempts=1)
    assert s.unlabelled == 4
    good = get_model("scripted", cache=False, outputs=["Scope Fit"])
    assert label_dataset(examples_path, good, out, kinds=["reaction"], limit=4).skipped == 4
    s3 = label_dataset(examples_path, good, out, kinds=["reaction"], limit=4, retry_unlabelled=True)
    assert s3.labelled == 4
    assert {r["label"] for r in read_label_records(out)} == {"Scope Fit"}


def test_logprobs_method_debiases_position(examples_path: Path) -> None:
    item = next(extract_items(read_conversations(examples_path), ["reaction"]))
    names = get_label_set("reaction").names

    def position_biased(msgs):  # always prefers option 1, whatever it is; slightly likes "Scope Fit"
        prompt = msgs[-1].content
        scope = next(line.split(".")[0] for line in prompt.splitlines() if line.endswith(
            "Too long, too detailed or too broad (or too narrow) for the need.") and line[0].isdigit())
        probs = {str(i): 0.1 for i in range(1, len(names) + 1)}
        probs["1"] = 0.5
        probs[scope] += 0.2
        return probs  # the scripted backend takes probabilities

    model = get_model("scripted", cache=False, logprobs=position_biased)
    res = model.run(Labeler(model, method="logprobs").alabel(item))
    assert res.label == "Scope Fit"  # first-position bias cancels across the two orders
    assert res.probs is not None and abs(sum(res.probs.values()) - 1) < 1e-6
    assert len(model.backend.requests) == 2


def test_logprobs_with_no_mass_on_options_is_unlabelled(examples_path: Path) -> None:
    item = next(extract_items(read_conversations(examples_path), ["reaction"]))
    model = get_model("scripted", cache=False, logprobs={"The": 0.99, "1": 0.0003})
    res = model.run(Labeler(model, method="logprobs").alabel(item))
    assert res.label is None and "not guessing" in (res.error or "")


def test_logprobs_needs_the_capability() -> None:
    from thoughttrace.llm.errors import CapabilityError

    class NoLogprobs:
        spec = "x"

        def require(self, cap: str) -> None:
            raise CapabilityError(cap, "x", ["local"])

    with pytest.raises(CapabilityError):
        Labeler(NoLogprobs(), method="logprobs")  # type: ignore[arg-type]


def test_constrained_generation_sends_the_label_enum(examples_path: Path) -> None:
    seen = []

    def fn(msgs, cfg):
        seen.append(cfg.json_schema)
        enum = cfg.json_schema["properties"]["label"]["enum"] if cfg.json_schema else ["?", "?"]
        return json.dumps({"label": enum[1]})

    item = next(extract_items(read_conversations(examples_path), ["reaction"]))
    model = get_model("scripted", cache=False, fn=fn)
    res = model.run(Labeler(model).alabel(item))
    assert res.label == get_label_set("reaction").names[1]
    assert seen[0]["properties"]["label"]["enum"] == get_label_set("reaction").names
    res2 = model.run(Labeler(model, constrained=False, max_attempts=1).alabel(item))
    assert seen[-1] is None and res2.label is None  # '{"label": "?"}' is not a label: unlabelled, not guessed
