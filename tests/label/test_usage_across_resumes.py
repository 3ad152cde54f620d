"""A resumed labelling run adds its usage to the earlier runs' in OUT.meta.json (the study's whole cost)."""

from __future__ import annotations

import json
from pathlib import Path

from thoughttrace.label import write_meta


def _usage(calls: int, tokens: int) -> dict[str, object]:
    return {"format_version": 1, "models": {"local": {"calls": calls, "cache_hits": 1, "prompt_tokens": tokens,
                                                      "completion_tokens": 5, "wall_seconds": 1.5,
                                                      "cost_usd": None}}}


def test_meta_usage_is_cumulative_over_runs(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    write_meta(out, {"model": "local", "usage": _usage(10, 100)})
    write_meta(out, {"model": "local", "usage": _usage(0, 0)})  # a resume that found everything done
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    total = meta["usage"]["models"]["local"]
    assert total["calls"] == 10 and total["prompt_tokens"] == 100 and total["cache_hits"] == 2
    assert total["runs"] == 2 and meta["usage"]["runs"] == 2 and total["wall_seconds"] == 3.0
    assert meta["usage_this_run"]["models"]["local"]["calls"] == 0


def test_a_rerun_that_only_skips_keeps_the_files_counts_in_meta(tmp_path: Path, examples_path: Path) -> None:
    """The meta file's `summary` is what the labels file holds, not the last run's (a rerun did nothing)."""
    from click.testing import CliRunner

    from thoughttrace.cli.main import cli

    out = tmp_path / "labels.jsonl"
    args = ["label", str(examples_path), "--out", str(out), "--model", "scripted", "--kind", "reaction",
            "--limit", "3", "--no-cache"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    meta_path = Path(str(out) + ".meta.json")
    before = json.loads(meta_path.read_text())["summary"]
    assert before["items"] == 3
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    meta = json.loads(meta_path.read_text())
    assert meta["summary"] == before
    assert meta["summary_this_run"]["skipped_done"] == 3 and meta["summary_this_run"]["labelled"] == 0
