"""Importers on fixtures written from each source's published format; bad records; streaming readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.data import DatasetError, ReadReport, read_conversations
from thoughttrace.data.importers import IMPORTERS, guess_provider, import_file, iter_import


def test_registry_names_every_source() -> None:
    assert set(IMPORTERS) == {"wildchat", "lmsys", "sharegpt", "openai"}


def test_wildchat(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    report = import_file("wildchat", fixtures_dir / "wildchat.jsonl", out)
    assert report.valid == 3 and report.ok
    convs = read_conversations(out)
    first = convs[0]
    assert first.id == "c0a1f3e2d4b5a6978877665544332211"
    assert first.model_name == "gpt-3.5-turbo-0613" and first.model_provider == "OpenAI"
    assert first.created_at == "2023-09-14T10:21:07Z"
    assert [m.type for m in first.messages] == ["user", "assistant", "user", "assistant"]
    assert first.messages[2].content == "Now make it about spring."
    assert first.messages[1].timestamp == "2023-09-14T10:21:09Z"
    assert all(m.reasons is None and m.reactions is None for m in first.messages)
    # the hashed IP identifies the user: two of the three conversations come from one user
    assert [c.user_key() for c in convs] == ["a3f1e9", "77be02", "a3f1e9"]
    assert first.model_extra is not None and first.model_extra["source"] == "wildchat"
    assert convs[1].model_extra is not None and convs[1].model_extra["language"] == "Spanish"
    assert "openai_moderation" not in (first.model_extra or {})


def test_wildchat_first_release(fixtures_dir: Path) -> None:
    (conv,) = list(iter_import("wildchat", fixtures_dir / "wildchat_v0.jsonl"))
    assert conv.id == "f00dfeed0123456789abcdef01234567"
    assert conv.messages[0].content == "hello" and conv.messages[0].timestamp is None


def test_lmsys(fixtures_dir: Path) -> None:
    convs = list(iter_import("lmsys", fixtures_dir / "lmsys.jsonl"))
    assert [c.id for c in convs] == ["33f01939a744455c869cb234afca47f1", "0f623736051f4a48a506fd5933563cfd",
                                     "e5c923a7fa3f4ad1a4b4b1a1c9d7e812"]
    assert [len(c.messages) for c in convs] == [2, 4, 2]
    assert [c.model_provider for c in convs] == ["LMSYS", "UC Berkeley", "Anthropic"]
    assert convs[2].model_extra is not None and convs[2].model_extra["redacted"] is True


@pytest.mark.parametrize("name", ["sharegpt.json", "sharegpt.jsonl"])
def test_sharegpt_list_and_jsonl(fixtures_dir: Path, name: str) -> None:
    convs = list(iter_import("sharegpt", fixtures_dir / name))
    assert [c.id for c in convs] == ["QWJ5Zm1", "x7Kp2aQ_0", "Mm9r1Zt_3"]
    assert [m.type for m in convs[0].messages] == ["user", "assistant", "user", "assistant"]
    assert convs[1].model_extra is not None
    assert convs[1].model_extra["system_prompt"] == "You are a helpful travel agent."
    assert [m.type for m in convs[1].messages] == ["user", "assistant"]
    assert convs[1].model_name == "gpt-4" and convs[1].model_provider == "OpenAI"


def test_openai_messages(fixtures_dir: Path) -> None:
    convs = list(iter_import("openai", fixtures_dir / "openai.jsonl"))
    assert [c.id for c in convs] == ["openai-1", "chat-42", "openai-3"]
    assert convs[0].model_extra is not None and convs[0].model_extra["system_prompt"].startswith("You are")
    tool = convs[1]
    assert [m.content for m in tool.messages] == ["What is in this picture?\n[image]", "A cat sitting on a sofa."]
    assert tool.model_extra is not None and tool.model_extra["dropped_messages"] == 2
    assert tool.model_extra["metadata"] == {"split": "train"}
    assert [m.type for m in convs[2].messages] == ["user", "assistant"]


def test_parquet_source(tmp_path: Path, fixtures_dir: Path) -> None:
    """WildChat and LMSYS ship as Parquet on the Hub, with real timestamp columns."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (fixtures_dir / "wildchat.jsonl").read_text().splitlines()]
    for r in rows:
        r["timestamp"] = dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        for t in r["conversation"]:
            t["timestamp"] = dt.datetime.fromisoformat(t["timestamp"].replace("Z", "+00:00"))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "wildchat.parquet")
    convs = list(iter_import("wildchat", tmp_path / "wildchat.parquet"))
    assert len(convs) == 3
    assert convs[0].created_at == "2023-09-14T10:21:07Z"
    assert convs[0].messages[1].timestamp == "2023-09-14T10:21:09Z"


def _bad_lmsys(tmp_path: Path) -> Path:
    good = {"conversation_id": "a", "model": "vicuna-13b",
            "conversation": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    lines = [
        json.dumps(good),
        json.dumps({"model": "x", "conversation": []}),                                       # 2 no id
        json.dumps({**good, "conversation_id": "b", "conversation": [{"role": "robot", "content": "q"}]}),  # 3
        '{"conversation_id": "c", "conv',                                                      # 4 truncated
        json.dumps({**good, "conversation_id": "d", "conversation": [{"role": "user", "content": 7}]}),  # 5
        json.dumps({**good, "conversation_id": "e"}),
        json.dumps({**good, "conversation_id": "f", "conversation": []}),                     # 7 empty
    ]
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_bad_source_records_strict(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(DatasetError, match=r"line 2, field 'conversation_id'"):
        import_file("lmsys", _bad_lmsys(tmp_path), out)
    assert not out.exists() and not (tmp_path / "out.jsonl.tmp").exists()


def test_bad_source_records_skip_invalid(tmp_path: Path) -> None:
    report = ReadReport()
    convs = list(iter_import("lmsys", _bad_lmsys(tmp_path), skip_invalid=True, report=report))
    assert [c.id for c in convs] == ["a", "e"]
    by_line = {e.line: e for e in report.errors}
    assert sorted(by_line) == [2, 3, 4, 5, 7]
    assert by_line[3].field == "conversation.0.role" and "'robot'" in by_line[3].message
    assert "not valid JSON" in by_line[4].message
    assert by_line[5].field == "conversation.0.content"
    assert "no user or assistant messages" in by_line[7].message


def test_cli_import_reports_bad_records(runner: CliRunner, tmp_path: Path) -> None:
    bad = _bad_lmsys(tmp_path)
    result = runner.invoke(cli, ["data", "import", "--from", "lmsys", str(bad), str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "line 2" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(cli, ["data", "import", "--from", "lmsys", str(bad), str(tmp_path / "o.jsonl"),
                                 "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "imported 2 conversation(s)" in result.stderr and "skipped 5 bad record(s)" in result.stderr
    manifest = json.loads((tmp_path / "o.jsonl.thoughttrace.json").read_text())
    assert manifest["format_version"] == 1 and manifest["count"] == 2 and manifest["imported_from"] == "lmsys"
    assert len(read_conversations(tmp_path / "o.jsonl")) == 2


def test_cli_import_every_fixture(runner: CliRunner, fixtures_dir: Path, tmp_path: Path) -> None:
    for source, name, n in [("wildchat", "wildchat.jsonl", 3), ("lmsys", "lmsys.jsonl", 3),
                            ("sharegpt", "sharegpt.json", 3), ("openai", "openai.jsonl", 3)]:
        out = tmp_path / f"{source}.jsonl"
        result = runner.invoke(cli, ["data", "import", "--from", source, str(fixtures_dir / name), str(out)])
        assert result.exit_code == 0, result.output
        validated = runner.invoke(cli, ["data", "validate", str(out)])
        assert validated.exit_code == 0 and len(read_conversations(out)) == n


def test_json_list_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('[\n  {"id": "a", "conversations": [{"from": "human", "value": "hi"}]},\n'
                 '  {"id": "b", "conversations": [{"from": "alien", "value": "hi"}]},\n'
                 '  {"id": "c", "conversations": [{"from": "human", "value": "hi"}\n')
    report = ReadReport()
    with pytest.raises(DatasetError, match="item starting at line 4"):
        list(iter_import("sharegpt", p, skip_invalid=True, report=report))
    assert [(e.line, e.field) for e in report.errors] == [(3, "conversations.0.from")]


def test_json_list_streams_items_larger_than_the_buffer(tmp_path: Path) -> None:
    big = "x" * (3 << 20)  # 3 MiB: spans several 1 MiB reads
    records = [{"id": str(i), "conversations": [{"from": "human", "value": big if i == 1 else "q"},
                                                {"from": "gpt", "value": "a"}]} for i in range(4)]
    p = tmp_path / "big.json"
    p.write_text(json.dumps(records, indent=1))
    convs = list(iter_import("sharegpt", p))
    assert [c.id for c in convs] == ["0", "1", "2", "3"]
    assert convs[1].messages[0].content == big


def test_guess_provider() -> None:
    assert guess_provider("gpt-4o") == "OpenAI"
    assert guess_provider("claude-3-opus") == "Anthropic"
    assert guess_provider("meta-llama/Llama-3-8b") == "Meta"
    assert guess_provider("my-own-model") is None
    assert guess_provider(None) is None


def test_deeply_nested_record_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "deep.jsonl"
    p.write_text('{"id": "a", "conversations": [{"from": "human", "value": "q"}]}\n' + "[" * 100_000 + "\n")
    report = ReadReport()
    assert len(list(iter_import("sharegpt", p, skip_invalid=True, report=report))) == 1
    assert [e.line for e in report.errors] == [2]
