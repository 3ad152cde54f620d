"""Export round trips: JSONL, Parquet (nested list<struct> columns) and Hugging Face save_to_disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.data import Conversation, DatasetError, read_conversations
from thoughttrace.data.exporters import (
    MANIFEST_NAME,
    export,
    from_row,
    iter_any,
    iter_hf,
    iter_parquet,
    to_row,
    write_parquet,
)
from thoughttrace.data.importers import iter_import
from thoughttrace.data.synthetic import generate_conversations


@pytest.fixture(scope="module")
def mixed(examples_path: Path, fixtures_dir: Path) -> list[Conversation]:
    """Real examples, imported conversations with extras at every level, and edge cases."""
    convs = read_conversations(examples_path)
    convs += list(iter_import("openai", fixtures_dir / "openai.jsonl"))
    convs += list(generate_conversations(20, seed=5))
    convs.append(Conversation.model_validate({
        "id": "edge", "survey_answers": [{"age": "31"}, 3], "note": {"nested": [1, 2]},
        "messages": [{"id": "a", "type": "user", "content": "", "reasons": [], "mood": "ok"},
                     {"id": "b", "type": "assistant", "content": "é ☀️ \n", "reactions": [
                         {"content": "x", "label": None, "confidence": 0.5}]}]}))
    return convs


def test_row_round_trip(mixed: list[Conversation]) -> None:
    for conv in mixed:
        assert from_row(to_row(conv)) == conv


def test_jsonl_round_trip(mixed: list[Conversation], tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    assert export(mixed, "jsonl", out) == len(mixed)
    assert read_conversations(out) == mixed
    manifest = json.loads((tmp_path / f"x.jsonl.{MANIFEST_NAME}").read_text())
    assert manifest["format_version"] == 1 and manifest["count"] == len(mixed)


def test_parquet_round_trip_and_metadata(mixed: list[Conversation], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "x.parquet"
    assert write_parquet(mixed, out) == len(mixed)
    assert list(iter_parquet(out)) == mixed
    schema = pq.read_schema(out)
    assert schema.metadata[b"thoughttrace.format_version"] == b"1"
    # nested, typed columns: analysis tools can read messages without parsing JSON
    assert pa.types.is_list(schema.field("messages").type)
    table = pq.read_table(out, columns=["id", "messages"])
    first = table.column("messages")[0].as_py()
    assert first[0]["type"] == "user" and first[0]["reasons"][0]["label"] == "Social & Others"


def test_parquet_from_a_newer_version_is_refused(tmp_path: Path, mixed: list[Conversation]) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "x.parquet"
    write_parquet(mixed[:2], out)
    table = pq.read_table(out)
    pq.write_table(table.replace_schema_metadata({b"thoughttrace.format_version": b"99"}), tmp_path / "new.parquet")
    with pytest.raises(DatasetError, match="newer"):
        list(iter_parquet(tmp_path / "new.parquet"))
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "plain.parquet")
    with pytest.raises(DatasetError, match="format version"):
        list(iter_parquet(tmp_path / "plain.parquet"))


def test_hf_round_trip(mixed: list[Conversation], tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "hf"
    assert export(mixed, "hf", out) == len(mixed)
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == len(mixed) and "messages" in ds.column_names
    assert list(iter_hf(out)) == mixed
    assert json.loads((out / MANIFEST_NAME).read_text())["format_version"] == 1
    with pytest.raises(DatasetError, match="already exists; pass --overwrite"):
        export(mixed, "hf", out)
    assert export(mixed[:3], "hf", out, overwrite=True) == 3


def test_cli_export_all_formats_then_stats(runner: CliRunner, examples_path: Path, tmp_path: Path) -> None:
    for fmt, name in [("jsonl", "e.jsonl"), ("parquet", "e.parquet"), ("hf", "e_hf")]:
        out = tmp_path / name
        result = runner.invoke(cli, ["data", "export", str(examples_path), "--format", fmt, str(out)])
        assert result.exit_code == 0, result.output
        stats = json.loads(runner.invoke(cli, ["data", "stats", str(out), "--json"]).stdout)
        assert (stats["conversations"], stats["messages"], stats["reasons"], stats["reactions"]) == (3, 28, 15, 15)
    assert list(iter_any(tmp_path / "e_hf")) == read_conversations(examples_path)
    result = runner.invoke(cli, ["data", "validate", str(tmp_path / "e.parquet")])
    assert result.exit_code == 0 and "3 valid conversation(s)" in result.output


def test_cli_export_bad_input(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "messages": []}\n{"id": 1}\n')
    result = runner.invoke(cli, ["data", "export", str(bad), "--format", "parquet", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1 and "line 2" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "o.parquet").exists()
