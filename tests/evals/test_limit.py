"""`--limit` means items everywhere it is offered: every --help says what one item is, N < 1 is refused with one
line, and `eval next-message --limit 8` with 4 conditions runs 8 items (2 messages), not 8 messages x 4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli

from .test_cli import fake_models, invoke  # noqa: F401  (fixture re-used)


def _commands_with_limit(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Option]]:
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the lazy group loads each command module here
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += _commands_with_limit(cmd, (*path, name))
            continue
        for p in cmd.params if cmd is not None else []:
            if isinstance(p, click.Option) and "--limit" in p.opts:
                out.append(((*path, name), p))
    return out


LIMITED = _commands_with_limit(cli)


def test_every_limit_is_found() -> None:
    names = {" ".join(p) for p, _ in LIMITED}
    assert {"eval next-message", "eval thought-inference", "eval simulator", "eval judge-agreement",
            "simulate", "label", "tom bench"} <= names, names


@pytest.mark.parametrize("path,opt", LIMITED, ids=[" ".join(p) for p, _ in LIMITED])
def test_each_help_says_what_an_item_is(path: tuple[str, ...], opt: click.Option) -> None:
    assert opt.help and "an item here is" in opt.help and "first N items" in opt.help
    r = CliRunner().invoke(cli, [*path, "--help"])
    assert r.exit_code == 0 and "an item here is" in " ".join(r.output.split())


@pytest.mark.parametrize("value", ["-1", "0"])
@pytest.mark.parametrize("path,opt", LIMITED, ids=[" ".join(p) for p, _ in LIMITED])
def test_a_limit_below_one_is_refused_with_one_line(path: tuple[str, ...], opt: click.Option, value: str,
                                                    tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, [*path, "--limit", value])
    assert r.exit_code == 2
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for '--limit': {value} is not in the range x>=1."]


def test_next_message_limit_counts_items_not_messages(fake_models: Any, examples_path: Path,  # noqa: F811
                                                      tmp_path: Path) -> None:
    conds = ["--condition", "history", "--condition", "thoughts", "--condition", "reaction+reason",
             "--condition", "inferred"]
    r = invoke("eval", "next-message", str(examples_path), "-m", "m", "-j", "none", *conds, "--out", str(tmp_path),
               "--no-embeddings", "--limit", "8")
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(recs) == 8 and len({r["message_id"] for r in recs}) == 2
    assert all(sum(r["message_id"] == m for r in recs) == 4 for m in {r["message_id"] for r in recs})


def test_simulator_limit_counts_conversations(examples_path: Path, tmp_path: Path) -> None:
    r = invoke("eval", "simulator", str(examples_path), str(examples_path), "--out", str(tmp_path),
               "--no-embeddings", "--limit", "2", "--json")
    assert r.exit_code == 0, r.output
    s: dict[str, Any] = json.loads(r.stdout)
    assert s["sides"]["real"]["conversations"] == 2 and s["sides"]["simulated"]["conversations"] == 2
