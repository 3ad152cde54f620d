"""Preference pairs: format, filters, provenance, and the loader for other preference sources."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.align import AlignError, Pair, PairReport, Rewrite, import_pairs, pairs_from_rewrites
from thoughttrace.align.records import read_models, write_jsonl


def _rewrite(rewrite: str = "A much better answer, with the costs.", original: str = "A weak answer here.",
             mid: str = "c1-m1", guide: str = "thoughts") -> Rewrite:
    return Rewrite(conversation_id="c1", message_id=mid, guide=guide, rewriter="local:smollm2",
                   reaction_labels=["Content Relevance"],
                   prompt=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                           {"role": "user", "content": "Plan a trip"}],
                   original=original, rewrite=rewrite, prompt_sha256="x")


def test_conversational_pair_is_trl_shaped_with_provenance(tmp_path):
    (pair,) = pairs_from_rewrites([_rewrite()])
    assert pair.pair_format == "conversational"
    assert isinstance(pair.prompt, list) and pair.prompt[-1] == {"role": "user", "content": "Plan a trip"}
    assert pair.chosen == [{"role": "assistant", "content": "A much better answer, with the costs."}]
    assert pair.rejected == [{"role": "assistant", "content": "A weak answer here."}]
    prov = pair.provenance
    assert (prov.conversation_id, prov.message_id, prov.guide, prov.rewriter) == ("c1", "c1-m1", "thoughts",
                                                                                  "local:smollm2")
    write_jsonl([pair], tmp_path / "p.jsonl")
    row = json.loads((tmp_path / "p.jsonl").read_text())
    assert row["format_version"] == 1
    assert read_models(tmp_path / "p.jsonl", Pair, "pair")[0] == pair


def test_rewrites_that_quote_a_thought_are_dropped():
    report = PairReport()
    leaky = _rewrite().model_copy(update={"quotes_thought": True})
    assert pairs_from_rewrites([leaky, _rewrite(mid="c1-m3", rewrite="Another fine answer here.")],
                               report=report) != []
    assert report.dropped == {"quotes_thought": 1} and report.input == 2 and report.kept == 1
    cut = _rewrite().model_copy(update={"truncated": True})
    report = PairReport()
    assert pairs_from_rewrites([cut], report=report) == [] and report.dropped == {"truncated": 1}
    assert len(pairs_from_rewrites([cut], keep_truncated=True)) == 1


def test_plain_pair_uses_strings():
    (pair,) = pairs_from_rewrites([_rewrite()], fmt="plain")
    assert isinstance(pair.prompt, str) and pair.prompt.endswith("Assistant:") and "User: Plan a trip" in pair.prompt
    assert pair.chosen == "A much better answer, with the costs."


def test_filters_and_dedup():
    rows = [
        _rewrite(),
        _rewrite(mid="c1-m9"),  # same content from another message: a duplicate
        _rewrite(rewrite="  a WEAK answer   here. "),  # identical after normalising
        _rewrite(rewrite=""),
        _rewrite(rewrite="short"),
        _rewrite(rewrite="x" * 500),
    ]
    report = PairReport()
    pairs = pairs_from_rewrites(rows, min_chars=10, max_chars=400, report=report)
    assert len(pairs) == 1
    assert report.dropped == {"duplicate": 1, "identical": 1, "empty": 1, "too_short": 1, "too_long": 1}
    assert report.input == 6 and report.kept == 1
    ratio = pairs_from_rewrites([_rewrite(rewrite="y" * 100)], max_ratio=2.0)
    assert ratio == []


def test_import_pairs_strings_and_messages(tmp_path):
    src = tmp_path / "wildchat_pairs.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "How do I boil an egg?", "chosen": "Boil water, add the egg for 9 minutes.",
         "rejected": "Eggs are food.", "id": "w1", "language": "English"},
        {"prompt": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "Say hi"}],
         "chosen": [{"role": "assistant", "content": "Hi there, nice to meet you!"}],
         "rejected": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Go away now."}]},
    ]) + "\n")
    pairs = import_pairs(src, source="wildchat", min_chars=5)
    assert len(pairs) == 2
    assert pairs[0].prompt == [{"role": "user", "content": "How do I boil an egg?"}]
    assert pairs[0].provenance.source == "wildchat"
    assert pairs[0].provenance.model_extra == {"line": 1, "src_language": "English"}
    assert pairs[1].rejected == [{"role": "assistant", "content": "Go away now."}]


@pytest.mark.parametrize("row, needle", [
    ({"prompt": "q", "chosen": "a"}, "rejected"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "prompt"),
    ({"prompt": [{"role": "bot", "content": "q"}], "chosen": "a", "rejected": "b"}, "prompt"),
    ({"prompt": [{"role": "assistant", "content": "q"}], "chosen": "a", "rejected": "b"}, "end with a user"),
])
def test_import_pairs_rejects_bad_rows_with_the_line(tmp_path, row, needle):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"prompt": "ok", "chosen": "good answer", "rejected": "bad one"}) + "\n"
                   + json.dumps(row) + "\n")
    with pytest.raises(AlignError, match="line 2") as err:
        import_pairs(src, source="x")
    assert needle in str(err.value)


def test_import_pairs_rejects_broken_json(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "q", "chosen": "a"\n')
    with pytest.raises(AlignError, match="line 1: not valid JSON"):
        import_pairs(src, source="x")


_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(_text, _text, _text), min_size=1, max_size=8))
def test_property_import_roundtrip(tmp_path_factory, rows):
    src = tmp_path_factory.mktemp("imp") / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in rows))
    report = PairReport()
    pairs = import_pairs(src, source="s", min_chars=1, report=report)
    assert report.input == len(rows) and report.kept == len(pairs)
    assert sum(report.dropped.values()) + len(pairs) == len(rows)
    for p in pairs:
        assert p.chosen[0]["content"] == p.chosen[0]["content"].strip()  # type: ignore[index]
        assert " ".join(p.chosen[0]["content"].split()).lower() != " ".join(  # type: ignore[index]
            p.rejected[0]["content"].split()).lower()  # type: ignore[index]
    assert len({p.id for p in pairs}) == len(pairs)


def test_write_jsonl_returns_how_many_rows_it_wrote(tmp_path) -> None:
    rows = [{"a": i} for i in range(3)]
    assert write_jsonl(iter(rows), tmp_path / "rows.jsonl") == 3
    assert (tmp_path / "rows.jsonl").read_text(encoding="utf-8").count("\n") == 3
