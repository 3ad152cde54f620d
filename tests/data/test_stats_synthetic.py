"""Streaming stats (exact median, label shares) and the seeded synthetic generator."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.cli.main import cli
from thoughttrace.data import REACTION_LABELS, REASON_LABELS, read_conversations
from thoughttrace.data.stats import _median, compute_stats, format_table, stats_file
from thoughttrace.data.synthetic import generate_conversations, stage_bin, write_synthetic


def test_examples_figures(examples_path: Path) -> None:
    stats, report = stats_file(examples_path)
    assert report.ok
    assert (stats.conversations, stats.messages, stats.reasons, stats.reactions) == (3, 28, 15, 15)
    assert stats.median_messages_per_conversation == 8
    assert stats.reason_labels["Task Continuation"].count == 5
    assert stats.reaction_labels["Explicit Affirmation"].count == 12
    assert "reason types:" in format_table(stats)


@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=200))
def test_median_is_exact(lengths: list[int]) -> None:
    assert _median(Counter(lengths)) == statistics.median(lengths)


def test_empty_input() -> None:
    stats = compute_stats([])
    assert stats.conversations == 0 and stats.median_messages_per_conversation == 0


def test_generator_is_deterministic_and_seeded() -> None:
    a = [c.to_json_dict() for c in generate_conversations(30, seed=11)]
    b = [c.to_json_dict() for c in generate_conversations(30, seed=11)]
    c = [c.to_json_dict() for c in generate_conversations(30, seed=12)]
    assert a == b and a != c


def test_generator_defaults_follow_the_release() -> None:
    stats = compute_stats(generate_conversations(3000, seed=1))
    assert stats.conversations == 3000
    assert stats.median_messages_per_conversation == 8
    assert stats.min_messages_per_conversation >= 2 and stats.max_messages_per_conversation <= 16
    assert stats.messages == stats.user_messages * 2
    assert 0.5 < stats.thoughts / stats.messages < 0.72
    assert abs(stats.reason_labels["Task Motivation & Goal"].share - 0.369) < 0.03
    assert abs(stats.reaction_labels["Explicit Affirmation"].share - 0.722) < 0.03
    assert abs(stats.domains["Culture & Lifestyle"].share - 0.371) < 0.04
    assert set(stats.reason_labels) == set(REASON_LABELS) and set(stats.reaction_labels) == set(REACTION_LABELS)
    assert stats.models == 10 and 1000 < stats.users < 2000


def test_generator_length_range_and_models() -> None:
    convs = list(generate_conversations(200, seed=2, length_range=(4, 6), models=["m-a", "m-b"]))
    assert {len(c.messages) for c in convs} <= {4, 6}
    assert {c.model_name for c in convs} == {"m-a", "m-b"}
    for c in convs:
        assert [m.type for m in c.messages] == ["user", "assistant"] * (len(c.messages) // 2)


def test_planted_stage_shares_are_recovered() -> None:
    """What an analysis of stage curves must find: the planted label mix per stage."""
    stages = [{"A": 0.9, "B": 0.1}, {"A": 0.6, "B": 0.4}, {"A": 0.3, "B": 0.7}, {"A": 0.1, "B": 0.9}]
    counts = [Counter() for _ in range(4)]
    for conv in generate_conversations(1500, seed=4, stage_reason_shares=stages, thought_rate=1.0,
                                       second_thought_rate=0.0, length_range=(8, 16)):
        users = conv.user_messages
        for i, m in enumerate(users):
            for t in m.reasons or []:
                counts[stage_bin(i, len(users))][t.label] += 1
    for want, got in zip(stages, counts):
        assert abs(got["A"] / sum(got.values()) - want["A"]) < 0.05


def test_overall_shares_and_bad_shares() -> None:
    stats = compute_stats(generate_conversations(500, seed=3, reaction_shares={"Scope Fit": 1.0}))
    assert stats.reaction_labels["Scope Fit"].share == 1.0
    with pytest.raises(ValueError, match="positive share"):
        next(generate_conversations(1, reason_shares={"A": 0.0}))
    with pytest.raises(ValueError, match="one share dict per stage"):
        next(generate_conversations(1, stage_reaction_shares=[{"A": 1.0}]))


def test_stage_bin_is_reexported() -> None:
    assert [stage_bin(i, 4) for i in range(4)] == [0, 1, 2, 3]
    assert [stage_bin(i, 7) for i in range(7)] == [0, 1, 1, 2, 2, 3, 3]
    assert stage_bin(0, 1) == 0 and stage_bin(1, 2) == 3


def test_write_synthetic_and_cli_generate(runner: CliRunner, tmp_path: Path) -> None:
    assert write_synthetic(tmp_path / "a.jsonl", 25, seed=9) == 25
    result = runner.invoke(cli, ["data", "generate", str(tmp_path / "b.jsonl"), "--n", "25", "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert read_conversations(tmp_path / "a.jsonl") == read_conversations(tmp_path / "b.jsonl")
    manifest = json.loads((tmp_path / "b.jsonl.thoughttrace.json").read_text())
    assert manifest["synthetic"]["seed"] == 9
    bad = runner.invoke(cli, ["data", "generate", str(tmp_path / "c.jsonl"), "--min-messages", "8",
                              "--max-messages", "4"])
    assert bad.exit_code != 0 and "max-messages" in bad.output


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_stats_counts_are_consistent(n: int, seed: int) -> None:
    convs = list(generate_conversations(n, seed=seed))
    stats = compute_stats(iter(convs))
    assert stats.conversations == n
    assert stats.messages == sum(len(c.messages) for c in convs)
    assert stats.reasons == sum(len(m.reasons or []) for c in convs for m in c.messages)
    assert stats.thoughts == stats.reasons + stats.reactions
    if n:
        assert stats.median_messages_per_conversation == statistics.median(len(c.messages) for c in convs)
