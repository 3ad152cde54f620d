"""The real embedded model (SmolLM2-135M via llama.cpp): one dev item of each benchmark through
`tom solve --json` returns a distribution over its choices that sums to 1 (accuracy is not the point)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.tom.benchmarks import BENCHMARKS, load_uniform
from thoughttrace.tom.items import select

pytestmark = pytest.mark.model


@pytest.mark.parametrize("bench", sorted(BENCHMARKS))
def test_solve_json_with_the_embedded_model(tom_dir: Path, bench: str) -> None:
    item = min(select(load_uniform(tom_dir, bench), split="dev"), key=lambda it: len(it.story) * len(it.choices))
    args = ["tom", "solve", "--story", item.story, "--question", item.question, "--json", "-m", "local:smollm2",
            "--budget", "4"]
    for choice in item.choices:
        args += ["--choice", choice]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert len(payload["posterior"]) == len(item.choices)
    assert sum(payload["posterior"]) == pytest.approx(1.0)
    assert payload["error"] is None
    assert payload["usage"]["calls"] >= 3  # parse, perception or likelihoods really reached the model


async def test_public_api_with_the_embedded_model() -> None:
    from thoughttrace.llm import get_model
    from thoughttrace.tom.api import posterior_over_hypotheses

    model = get_model("local:smollm2")
    out = await posterior_over_hypotheses(model, "The user asked the assistant for a pasta recipe.",
                                          ["the user wants to cook dinner", "the user is testing the assistant"],
                                          "The user asks how long to boil the pasta.")
    assert sum(out.posterior) == pytest.approx(1.0) and len(out.log_likelihoods) == 2
    assert all(x < 0 for x in out.log_likelihoods) and out.calls == 2
