"""Degenerate rewrites are dropped with counts; `align rewrite` writes as it goes and resumes; the trainer
feed keeps chosen and rejected apart; pair files of mixed formats are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thoughttrace.align import AlignError, PairReport, Rewrite, RewriteSettings, pairs_from_rewrites
from thoughttrace.align.degenerate import degenerate_reason, repeated_ngram_share
from thoughttrace.align.records import write_jsonl
from thoughttrace.align.rewrite import read_done, rewrite_conversations
from thoughttrace.align.train import _dataset, load_pairs
from thoughttrace.llm import get_model

from .conftest import NEXT_MESSAGE, make_conversation

ORIGINAL = "Day 1: Colosseum and the Forum. Day 2: the Vatican Museums and St Peter's."
GOOD = "Day 1: Colosseum (metro line B, 1.50 EUR). Day 2: Vatican; buses 64 and 40 stop nearby, day pass 7 EUR."


def _rw(text: str, original: str = ORIGINAL, nxt: str | None = NEXT_MESSAGE, mid: str = "m1") -> Rewrite:
    return Rewrite(conversation_id="c1", message_id=mid, guide="thoughts", rewriter="scripted",
                   reaction_labels=["Content Relevance"], prompt=[{"role": "user", "content": "Plan Rome."}],
                   original=original, rewrite=text, prompt_sha256="x", next_message=nxt)


def test_each_kind_of_degenerate_rewrite_is_named() -> None:
    assert degenerate_reason(GOOD, ORIGINAL, NEXT_MESSAGE) is None
    assert degenerate_reason(" ".join([NEXT_MESSAGE] * 20), ORIGINAL, NEXT_MESSAGE) == "copies_next_message"
    assert degenerate_reason(NEXT_MESSAGE + "!", ORIGINAL, NEXT_MESSAGE) == "copies_next_message"
    loop = "You should visit the Colosseum early in the morning. " * 8
    assert repeated_ngram_share(loop) > 0.5 and degenerate_reason(loop, ORIGINAL) == "repetitive"
    assert degenerate_reason(ORIGINAL.replace("Forum", "Forums"), ORIGINAL) == "copies_original"
    long = " ".join(f"Point {i}: a distinct remark number {i} about the city of Rome." for i in range(30))
    assert degenerate_reason(long, ORIGINAL) == "length_blowup"


def test_a_short_rewrite_that_contains_the_next_message_is_degenerate() -> None:
    # the next message once, with a few words around it: not similar enough to be a copy, but it is most of the
    # rewrite, so it would teach the model to answer with the user's next turn
    short = f"Sure, here you go. {NEXT_MESSAGE} Enjoy Rome."
    assert degenerate_reason(short, ORIGINAL, NEXT_MESSAGE) == "copies_next_message"
    # a full answer that quotes the next message once among much more is kept
    long = f"{GOOD} You might next ask: {NEXT_MESSAGE} {GOOD.replace('Day', 'On day')}"
    assert degenerate_reason(long, ORIGINAL + " " + ORIGINAL, NEXT_MESSAGE) is None


def test_the_pairs_report_counts_degenerate_rewrites() -> None:
    rows = [_rw(GOOD, mid="a"), _rw(" ".join([NEXT_MESSAGE] * 20), mid="b"),
            _rw("Go early. Go early. Go early. " * 10, mid="c"), _rw(ORIGINAL + " ", mid="d"),
            _rw(ORIGINAL.replace("Forum", "Forums"), mid="e")]
    report = PairReport()
    pairs = pairs_from_rewrites(rows, report=report)
    assert len(pairs) == 1 and report.kept == 1 and report.input == 5
    assert report.dropped == {"degenerate_copies_next_message": 1, "degenerate_repetitive": 1,
                              "identical": 1, "degenerate_copies_original": 1}


def test_rewrite_writes_as_it_goes_and_resumes(tmp_path: Path) -> None:
    convs = [make_conversation(cid=f"c{i}") for i in range(3)]
    out = tmp_path / "rewrites.jsonl"
    calls: list[int] = []

    def fn(msgs: object, cfg: object) -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed mid-run")
        return GOOD

    with pytest.raises(RuntimeError):
        rewrite_conversations(convs, get_model("scripted:rw", cache=False, fn=fn),
                              RewriteSettings(reactions="all"), progress=False, out=out)
    first = read_done(out)
    assert len(first) >= 1  # what finished before the crash is on disk
    with open(out, "a", encoding="utf-8") as fh:
        fh.write('{"format_version": 1, "conversation_id": "c9", "cut')  # a line cut by the crash
    calls.clear()
    model = get_model("scripted:rw", cache=False, fn=lambda m, c: GOOD)
    rows = rewrite_conversations(convs, model, RewriteSettings(reactions="all"), progress=False, out=out)
    targets = len(rows)
    assert targets == 3  # the answer followed by a user message, per conversation
    assert len(model.backend.requests) == targets - len(first)  # done rewrites were not asked again
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == targets and all(r["next_message"] is None or r["next_message"] for r in lines)


def test_the_trainer_feed_keeps_chosen_and_rejected(tmp_path: Path) -> None:
    pairs = pairs_from_rewrites([_rw(GOOD)], fmt="plain")
    ds = _dataset(pairs)
    assert ds[0]["chosen"] == GOOD and ds[0]["rejected"] == ORIGINAL  # chosen = the rewrite
    conv = pairs_from_rewrites([_rw(GOOD)], fmt="conversational")
    row = _dataset(conv)[0]
    assert row["chosen"][0]["content"] == GOOD and row["rejected"][0]["content"] == ORIGINAL


def test_pair_files_of_mixed_formats_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(pairs_from_rewrites([_rw(GOOD, mid="x")], fmt="plain"), a)
    write_jsonl(pairs_from_rewrites([_rw(GOOD, mid="y")], fmt="conversational"), b)
    assert len(load_pairs([a])) == 1 and len(load_pairs([b])) == 1
    with pytest.raises(AlignError, match="mix conversational and plain"):
        load_pairs([a, b])


def test_append_jsonl_makes_the_folders_of_a_new_log(tmp_path):
    from thoughttrace.align.records import append_jsonl

    log = tmp_path / "run" / "deeper" / "usage.jsonl"
    append_jsonl({"a": 1}, log)
    append_jsonl({"a": "café"}, log)
    assert [json.loads(x)["a"] for x in log.read_text(encoding="utf-8").splitlines()] == [1, "café"]
    assert "café" in log.read_text(encoding="utf-8")  # readable text, not \u escapes
