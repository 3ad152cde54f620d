"""Data fixes of issue 14: empty `data stats`, epoch timestamps, empty ShareGPT records, speaker mapping,
and progress bars only on a terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli, quiet_progress_unless_tty
from thoughttrace.data import DatasetError, ReadReport, read_conversations
from thoughttrace.data.importers import import_file, iter_import
from thoughttrace.data.importers._common import as_timestamp


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_stats_on_an_empty_file_fails_like_validate(runner: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    for args in (["data", "stats", str(empty)], ["data", "stats", str(empty), "--json"],
                 ["data", "validate", str(empty)]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 1, args
    r = runner.invoke(cli, ["data", "stats", str(empty)])
    assert "no valid conversation" in r.stderr and "Traceback" not in r.output + r.stderr


def test_epoch_timestamps_become_iso_datetimes(tmp_path: Path) -> None:
    assert as_timestamp(1680998583000) == "2023-04-09T00:03:03Z"  # milliseconds
    assert as_timestamp(1680998583) == "2023-04-09T00:03:03Z"  # seconds
    assert as_timestamp("1680998583000") == "2023-04-09T00:03:03Z"
    assert as_timestamp(1680998583.5) == "2023-04-09T00:03:03.500Z"
    assert as_timestamp("2023-04-09T00:03:03Z") == "2023-04-09T00:03:03Z"
    src = _write(tmp_path / "w.jsonl", [{
        "conversation_hash": "h1", "model": "gpt-4", "timestamp": 1680998583000,
        "conversation": [{"role": "user", "content": "hi", "timestamp": 1680998583000},
                         {"role": "assistant", "content": "hello", "timestamp": 1680998585}]}])
    out = tmp_path / "o.jsonl"
    import_file("wildchat", src, out)
    conv = read_conversations(out)[0]
    assert conv.created_at == "2023-04-09T00:03:03Z"
    assert [m.timestamp for m in conv.messages] == ["2023-04-09T00:03:03Z", "2023-04-09T00:03:05Z"]
    src2 = _write(tmp_path / "oa.jsonl", [{"messages": [{"role": "user", "content": "x", "timestamp": 1680998583000},
                                                        {"role": "assistant", "content": "y"}]}])
    conv2 = next(iter_import("openai", src2))
    assert conv2.messages[0].timestamp == "2023-04-09T00:03:03Z"


def test_empty_sharegpt_conversation_is_named_or_skipped_with_a_count(runner: CliRunner, tmp_path: Path) -> None:
    src = _write(tmp_path / "s.jsonl", [
        {"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}]},
        {"id": "b", "conversations": []},
        {"id": "c", "conversations": [{"from": "system", "value": "only a system prompt"}]},
    ])
    with pytest.raises(DatasetError, match="empty conversation"):
        import_file("sharegpt", src, tmp_path / "strict.jsonl")
    r = runner.invoke(cli, ["data", "import", "--from", "sharegpt", str(src), str(tmp_path / "strict.jsonl")])
    assert r.exit_code == 1 and "line 2" in r.stderr and "empty conversation" in r.stderr
    assert "Traceback" not in r.stderr
    report = ReadReport()
    convs = list(iter_import("sharegpt", src, skip_invalid=True, report=report))
    assert [c.id for c in convs] == ["a"] and report.empty == 2
    r = runner.invoke(cli, ["data", "import", "--from", "sharegpt", "--skip-invalid", str(src),
                            str(tmp_path / "ok.jsonl")])
    assert r.exit_code == 0 and "2 of them empty conversations" in r.stderr


def test_sharegpt_speakers_map_to_the_right_side(tmp_path: Path) -> None:
    src = _write(tmp_path / "s.jsonl", [{"id": "a", "conversations": [
        {"from": "human", "value": "1"}, {"from": "chatgpt", "value": "2"}, {"from": "user", "value": "3"},
        {"from": "bard", "value": "4"}, {"from": "human", "value": "5"}, {"from": "gpt", "value": "6"}]}])
    conv = next(iter_import("sharegpt", src))
    assert [(m.type, m.content) for m in conv.messages] == [
        ("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4"), ("user", "5"), ("assistant", "6")]


def test_progress_bars_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, runner: CliRunner,
                                          tmp_path: Path) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    for key in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(key, raising=False)
    assert quiet_progress_unless_tty(Tty()) is True and "TQDM_DISABLE" not in os.environ
    assert quiet_progress_unless_tty(tmp_path.joinpath("log").open("w")) is False
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    src = _write(tmp_path / "s.jsonl", [{"id": "a", "conversations": [{"from": "human", "value": "q"}]}] * 3)
    r = runner.invoke(cli, ["data", "import", "--from", "sharegpt", str(src), str(tmp_path / "o.jsonl")])
    assert r.exit_code == 0 and "it/s" not in r.stderr and "%|" not in r.stderr
