"""Schema (both releases' names), streaming reader, and `thoughttrace data validate|stats` on bad input."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.data import (
    Conversation,
    DatasetError,
    ReadReport,
    iter_conversations,
    read_conversations,
    validate_file,
    write_conversations,
)

GOOD = {"id": "user7_task1_conversation1", "model_name": "GPT-5.4", "messages": [
    {"id": "m0", "type": "user", "content": "hi", "reasons": [{"content": "greeting", "label": "Social & Others"}]},
    {"id": "m1", "type": "assistant", "content": "Hello!", "reactions": [{"content": "ok", "label": "Explicit Affirmation"}]},
]}


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture()
def corrupted(tmp_path: Path) -> Path:
    """Line 1 good, 2 truncated, 3 wrong type, 4 good, 5 unknown message type, 6 not an object, 7 good."""
    good = json.dumps(GOOD)
    wrong_type = json.loads(good)
    wrong_type["messages"][0]["content"] = 42
    unknown_type = json.loads(good)
    unknown_type["messages"][1]["type"] = "system"
    return _write_lines(tmp_path / "bad.jsonl", [
        good, good[: len(good) // 2], json.dumps(wrong_type), good.replace("user7", "user8"),
        json.dumps(unknown_type), "[1, 2]", good.replace("user7", "user9"),
    ])


def test_schema_accepts_both_releases_field_names() -> None:
    old = {"conversation_id": "c1", "messages": [
        {"id": "a", "type": "user", "text": "question", "reasons": [{"text": "why", "label": "Task Continuation"}]},
        {"id": "b", "type": "assistant", "text": "answer"}],
        "survey_answers": {"age": "30", "feedback": "fine"}}
    conv = Conversation.model_validate(old)
    assert conv.id == "c1"
    assert conv.messages[0].content == "question"
    assert conv.messages[0].reasons is not None and conv.messages[0].reasons[0].content == "why"
    out = conv.to_json_dict()
    assert out["id"] == "c1" and "conversation_id" not in out
    assert out["messages"][0]["content"] == "question" and "text" not in out["messages"][0]
    # the same line through the fast JSON path gives the same conversation
    assert Conversation.model_validate_json(json.dumps(old)) == conv


def test_thoughts_on_the_wrong_side_are_rejected() -> None:
    bad = {"id": "x", "messages": [{"id": "a", "type": "user", "content": "q",
                                    "reactions": [{"content": "nice"}]}]}
    with pytest.raises(ValueError, match="reactions belong on assistant"):
        Conversation.model_validate(bad)


def test_examples_read(examples_path: Path) -> None:
    convs = read_conversations(examples_path)
    assert [len(c.messages) for c in convs] == [12, 8, 8]


def test_strict_reader_raises_at_first_bad_line(corrupted: Path) -> None:
    seen = []
    with pytest.raises(DatasetError, match=r"line 2: not valid JSON") as info:
        for conv in iter_conversations(corrupted):
            seen.append(conv.id)
    assert seen == ["user7_task1_conversation1"]
    assert "--skip-invalid" in str(info.value)


def test_skip_invalid_reads_every_good_line(corrupted: Path) -> None:
    report = ReadReport()
    convs = list(iter_conversations(corrupted, skip_invalid=True, report=report))
    assert [c.user_key() for c in convs] == ["user7", "user8", "user9"]
    assert report.lines == 7 and report.valid == 3
    assert sorted({e.line for e in report.errors}) == [2, 3, 5, 6]
    fields = {e.line: e.field for e in report.errors}
    assert fields[3] == "messages.0.content"
    assert fields[5] == "messages.1.type"


def test_validate_file_reports_every_bad_line(corrupted: Path) -> None:
    report = validate_file(corrupted)
    assert not report.ok
    assert sorted({e.line for e in report.errors}) == [2, 3, 5, 6]


def test_cli_validate_names_every_bad_line(runner: CliRunner, corrupted: Path) -> None:
    result = runner.invoke(cli, ["data", "validate", str(corrupted)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    err = result.stderr
    assert "line 2: not valid JSON" in err
    assert "line 3, field 'messages.0.content'" in err and "valid string" in err
    assert "line 5, field 'messages.1.type'" in err and "'system'" in err
    assert "line 6: expected a JSON object" in err
    assert "3 valid conversation(s), 4 bad line(s) of 7" in err


def test_cli_validate_json_lists_all_errors(runner: CliRunner, corrupted: Path) -> None:
    result = runner.invoke(cli, ["data", "validate", str(corrupted), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["format_version"] == 1 and report["ok"] is False
    assert sorted({e["line"] for e in report["errors"]}) == [2, 3, 5, 6]
    assert report["valid"] == 3 and report["invalid_lines"] == 4


def test_cli_validate_skip_invalid_exits_zero_with_warnings(runner: CliRunner, corrupted: Path) -> None:
    result = runner.invoke(cli, ["data", "validate", str(corrupted), "--skip-invalid"])
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "line 5" in result.stderr


def test_cli_validate_good_file(runner: CliRunner, examples_path: Path) -> None:
    result = runner.invoke(cli, ["data", "validate", str(examples_path)])
    assert result.exit_code == 0, result.output
    assert "3 valid conversation(s), 0 bad line(s) of 3" in result.output


def test_cli_validate_missing_file_and_empty_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["data", "validate", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1 and "no such file" in result.stderr and "Traceback" not in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = runner.invoke(cli, ["data", "validate", str(empty)])
    assert result.exit_code == 1 and "holds no conversations" in result.stderr


def test_real_entry_point_validate(corrupted: Path) -> None:
    """The installed `thoughttrace` console script, as a user runs it."""
    exe = shutil.which("thoughttrace")
    cmd = [exe] if exe else [sys.executable, "-m", "thoughttrace"]
    proc = subprocess.run([*cmd, "data", "validate", str(corrupted)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    for line in (2, 3, 5, 6):
        assert f"line {line}" in proc.stderr
    assert "line 1" not in proc.stderr and "line 4" not in proc.stderr


def test_cli_stats_examples_json(runner: CliRunner, examples_path: Path) -> None:
    result = runner.invoke(cli, ["data", "stats", str(examples_path), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["format_version"] == 1
    assert stats["conversations"] == 3
    assert stats["messages"] == 28
    assert stats["reasons"] == 15 and stats["reactions"] == 15 and stats["thoughts"] == 30
    assert stats["median_messages_per_conversation"] == 8
    assert stats["user_messages"] == 14 and stats["assistant_messages"] == 14
    assert stats["models"] == 3 and stats["users"] == 3
    assert abs(sum(v["share"] for v in stats["reason_labels"].values()) - 1) < 1e-9
    assert stats["domains"]["Education & Knowledge"]["count"] == 1


def test_cli_stats_table(runner: CliRunner, examples_path: Path) -> None:
    result = runner.invoke(cli, ["data", "stats", str(examples_path)])
    assert result.exit_code == 0
    assert "messages (turns)" in result.stdout and "28" in result.stdout
    assert "Explicit Affirmation" in result.stdout


def test_cli_stats_strict_and_skip_invalid(runner: CliRunner, corrupted: Path) -> None:
    result = runner.invoke(cli, ["data", "stats", str(corrupted)])
    assert result.exit_code == 1 and "line 2" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(cli, ["data", "stats", str(corrupted), "--json", "--skip-invalid"])
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["conversations"] == 3 and stats["skipped_lines"] == [2, 3, 5, 6]


def test_gzip_bom_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("\ufeff" + json.dumps(GOOD) + "\n\n   \n" + json.dumps(GOOD) + "\n")
    assert len(read_conversations(p)) == 2
    out = tmp_path / "y.jsonl.gz"
    assert write_conversations(read_conversations(p), out) == 2
    assert read_conversations(out) == read_conversations(p)


def test_invalid_utf8_is_a_line_error(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "\xff\xfe"}\n')
    report = validate_file(p)
    assert report.valid == 1 and [e.line for e in report.errors] == [2]
    assert "UTF-8" in report.errors[0].message


def test_directory_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is a directory"):
        list(iter_conversations(tmp_path))


def test_deeply_nested_line_is_a_line_error(tmp_path: Path) -> None:
    p = tmp_path / "deep.jsonl"
    p.write_text(json.dumps(GOOD) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    report = validate_file(p)
    assert report.valid == 1 and [e.line for e in report.errors] == [2]
