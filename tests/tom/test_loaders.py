"""Official-format loaders reproduce the uniform files item for item; parsers round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.tom.benchmarks import BENCHMARKS, load_official, load_uniform, official_group
from thoughttrace.tom.benchmarks.hitom import split_choices, strip_story
from thoughttrace.tom.benchmarks.mmtom_qa import split_prompt
from thoughttrace.tom.benchmarks.muma_tom import decode_description, split_question
from thoughttrace.tom.items import ItemFileError, ToMItem, read_items, select


@pytest.mark.parametrize("bench", sorted(BENCHMARKS))
def test_official_loader_reproduces_the_uniform_file(tom_dir: Path, bench: str) -> None:
    official = load_official(tom_dir / "raw" / bench, bench)
    uniform = load_uniform(tom_dir, bench)
    assert len(official) == len(uniform) > 0
    for o, u in zip(official, uniform):
        assert (o.story, o.question, o.question_type) == (u.story, u.question, u.question_type), u.id
        assert o.answer_text == u.answer_text == u.choices[u.answer_index], u.id
        if bench == "bigtom":  # the uniform file's per-item shuffle is not recorded: compare as sets
            assert sorted(o.choices) == sorted(u.choices), u.id
            assert o.choices[o.answer_index] == u.choices[u.answer_index]
        else:
            assert (o.choices, o.answer) == (u.choices, u.answer), u.id


def test_official_groups(tom_dir: Path) -> None:
    groups = {b: {official_group(it) for it in load_uniform(tom_dir, b)} for b in BENCHMARKS}
    assert groups["tomi"] == {"first_order", "second_order", "reality", "memory"}
    assert groups["mmtom_qa"] == {"belief", "goal"}
    assert groups["hitom"] == {f"order{i}" for i in range(5)}
    assert groups["muma_tom"] == {"belief", "social_goal", "belief_of_goal"}


def test_stratified_limit_covers_every_type(tom_dir: Path) -> None:
    items = select(load_uniform(tom_dir, "tomi"), split="dev", limit=10)
    assert len(items) == 10 and len({it.question_type for it in items}) == 10
    assert all(it.split == "dev" for it in items)
    both = select(load_uniform(tom_dir, "tomi") + load_uniform(tom_dir, "hitom"), split="dev", limit=3)
    assert [it.benchmark for it in both].count("hitom") == 3


def test_bad_item_file_names_line_and_field(tmp_path: Path) -> None:
    good = ToMItem(id="x", benchmark="b", story="s", question="q", choices=["a", "b"], answer="A")
    path = tmp_path / "items.jsonl"
    path.write_text(good.model_dump_json() + "\n" + json.dumps({**good.model_dump(), "answer": "C"}) + "\n")
    with pytest.raises(ItemFileError, match=r"items.jsonl: line 2: .*names no choice"):
        read_items(path)
    path.write_text("{not json\n")
    with pytest.raises(ItemFileError, match="line 1: not valid JSON"):
        read_items(path)
    with pytest.raises(ItemFileError, match="unknown benchmark"):
        load_uniform(tmp_path, "nope")


word = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu")), min_size=1, max_size=8)
sentence = st.lists(word, min_size=1, max_size=6).map(" ".join)


@given(story=sentence, question=sentence, choices=st.lists(sentence, min_size=2, max_size=4))
@settings(deadline=None)  # parsing time varies with machine load; the property is what counts
def test_mmtom_prompt_round_trip(story: str, question: str, choices: list[str]) -> None:
    opts = " ".join(f"({chr(97 + i)}) {c}" for i, c in enumerate(choices))
    prompt = f"{story}\nQuestion: {question} {opts} Please respond with either a or b."
    assert split_prompt(prompt) == (story, question, choices)


@given(question=sentence, choices=st.lists(sentence, min_size=2, max_size=5))
@settings(deadline=None)  # parsing time varies with machine load; the property is what counts
def test_muma_question_round_trip(question: str, choices: list[str]) -> None:
    text = question + "\n" + "\n".join(f"{chr(65 + i)}) {c}" for i, c in enumerate(choices))
    assert split_question(text) == (question, choices)


@given(choices=st.lists(st.from_regex(r"[a-z]{1,6}_[a-z]{1,6}", fullmatch=True), min_size=2, max_size=15))
@settings(deadline=None)  # parsing time varies with machine load; the property is what counts
def test_hitom_choices_round_trip(choices: list[str]) -> None:
    text = ", ".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))
    assert split_choices(text) == choices


@given(body=st.text(alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x7e, min_codepoint=0x20)))
@settings(deadline=None)  # parsing time varies with machine load; the property is what counts
def test_muma_description_decodes_escapes_without_eval(body: str) -> None:
    encoded = repr(body.encode("utf-8"))  # b'...' as Python prints it
    assert decode_description(encoded) == body.strip()
    assert decode_description("b'a\\nb\\'c.'") == "a\nb'c."
    assert decode_description("plain text ") == "plain text"


def test_hitom_story_strips_instructions() -> None:
    assert strip_story("Read this.\n1 A entered.\n2 B left.\n\n") == "1 A entered.\n2 B left."


@pytest.mark.parametrize("module,filename", [("tomi", "test_balanced.jsonl"), ("mmtom_qa", "questions.json")])
def test_official_loaders_name_a_broken_line(tmp_path, module, filename):
    import importlib

    loader = importlib.import_module(f"thoughttrace.tom.benchmarks.{module}")
    (tmp_path / loader.FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / loader.FILE).write_text('{"story": "ok"\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ItemFileError, match=r"line 1: not valid JSON"):
        loader.load_official(tmp_path)
    (tmp_path / loader.FILE).write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(ItemFileError, match=r"line 1: expected a JSON object"):
        loader.load_official(tmp_path)
    assert filename in str(loader.FILE)
