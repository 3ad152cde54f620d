"""The `transformers:` backend on real weights (SmolLM2 GGUF de-quantised by transformers): generate,
next-token log-probs, continuation scores, and agreement with llama.cpp on the same weights."""

from __future__ import annotations

import math

import pytest

from thoughttrace.llm import get_model

pytestmark = pytest.mark.model

QUESTION = "What is the capital of France? Answer with one word."


@pytest.fixture(scope="module")
def hf() -> object:
    return get_model("transformers:smollm2", cache=False)


def test_generate_is_text_and_deterministic(hf: object) -> None:
    a = hf.generate(QUESTION, max_tokens=12)  # type: ignore[attr-defined]
    b = hf.generate(QUESTION, max_tokens=12)  # type: ignore[attr-defined]
    assert a.text.strip() and a.text == b.text
    assert a.usage.prompt_tokens > 5 and 0 < a.usage.completion_tokens <= 12


def test_next_token_logprobs_are_sorted_probabilities(hf: object) -> None:
    res = hf.next_token_logprobs(QUESTION, k=5)  # type: ignore[attr-defined]
    lps = [t.logprob for t in res.top]
    assert len(lps) == 5 and lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
    assert sum(math.exp(lp) for lp in lps) <= 1 + 1e-6


def test_score_prefers_the_likely_continuation_and_adds_over_tokens(hf: object) -> None:
    res = hf.score("The capital of France is", [" Paris", " Banana"])  # type: ignore[attr-defined]
    assert res.logprobs[0] > res.logprobs[1] and all(lp < 0 for lp in res.logprobs)
    one = hf.score("The capital of France is", [" Paris"]).logprobs[0]  # type: ignore[attr-defined]
    two = hf.score("The capital of France is", [" Paris."]).logprobs[0]  # type: ignore[attr-defined]
    assert two < one  # one more token can only lower the joint log-probability


def test_scores_agree_with_llama_cpp_on_the_same_weights(hf: object) -> None:
    """transformers runs the de-quantised weights in float, llama.cpp the Q4_1 kernels: on these
    continuations the values agree within 0.2 nats (measured: < 0.1) and the ranking is the same."""
    conts = [" Paris", " London", " the city of Paris"]
    ours = hf.score("The capital of France is", conts).logprobs  # type: ignore[attr-defined]
    ref = get_model("local:smollm2", cache=False).score("The capital of France is", conts).logprobs
    assert sorted(range(3), key=lambda i: ours[i]) == sorted(range(3), key=lambda i: ref[i])
    assert max(abs(a - b) for a, b in zip(ours, ref)) < 0.2, (ours, ref)


def test_scores_agree_on_unlikely_multi_token_words(hf: object) -> None:
    """" Banana" is two canonical tokens (" Ban" "ana"). llama.cpp once scored it along the spelling a string
    grammar let greedy decoding pick (" " "B" "an" "an" "a": -53.4 nats against transformers' -18.2).

    Tolerance: transformers runs the de-quantised weights in float, llama.cpp Q4_1 kernels with 8-bit
    activations, and that error grows with a token's surprisal; measured |diff| <= 0.29 nats, <= 1.3% of the
    value, on these continuations. 0.05 nats or 2% of the value bounds it; the old path missed by 35 nats.
    The exact (0.05-nat) check of the llama.cpp score path is in test_local_model.py.
    """
    conts = [" Banana", " a banana republic", " known for its Eiffel Tower"]
    ours = hf.score("The capital of France is", conts).logprobs  # type: ignore[attr-defined]
    ref = get_model("local:smollm2", cache=False).score("The capital of France is", conts).logprobs
    print("transformers vs llama.cpp:", [f"{c!r}: {a:.3f} / {b:.3f}" for c, a, b in zip(conts, ours, ref)])
    for a, b in zip(ours, ref):
        assert abs(a - b) < max(0.05, 0.02 * abs(a)), (ours, ref)
