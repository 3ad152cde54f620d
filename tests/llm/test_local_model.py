"""Real calls through the embedded llama.cpp backend (SmolLM2-135M) and a real llama.cpp server."""

from __future__ import annotations

import math

import pytest

from thoughttrace.llm import get_model

pytestmark = pytest.mark.model

QUESTION = "Is the sky blue on a clear day? Answer Yes or No."


@pytest.fixture(params=["local", "openai-compatible"])
def real_model_spec(request: pytest.FixtureRequest, llama_server_url: str) -> tuple[str, dict[str, str]]:
    if request.param == "local":
        return "local:smollm2", {}
    return "openai-compatible/smollm2", {"base_url": llama_server_url}


def test_generation_is_text_and_deterministic_at_temperature_zero(real_model_spec, tmp_path):
    spec, kwargs = real_model_spec
    a = get_model(spec, cache=False, **kwargs).generate("Name a colour.", max_tokens=12, temperature=0.0, seed=3)
    b = get_model(spec, cache=False, **kwargs).generate("Name a colour.", max_tokens=12, temperature=0.0, seed=3)
    assert a.text.strip(), "the model produced no text"
    assert a.text == b.text
    assert a.usage.prompt_tokens > 0 and 0 < a.usage.completion_tokens <= 12


def test_next_token_logprobs_are_probabilities(real_model_spec):
    spec, kwargs = real_model_spec
    result = get_model(spec, cache=False, **kwargs).next_token_logprobs(QUESTION, k=5)
    probs = [math.exp(t.logprob) for t in result.top]
    assert len(probs) == 5
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert sum(probs) <= 1.0 + 1e-6
    assert probs == sorted(probs, reverse=True)


def test_score_prefers_the_likely_continuation(real_model_spec):
    spec, kwargs = real_model_spec
    res = get_model(spec, cache=False, **kwargs).score("The capital of France is", [" Paris", " Banana"])
    assert res.logprobs[0] > res.logprobs[1]
    assert all(lp < 0 for lp in res.logprobs)


def _stepwise_logprob(spec: str, kwargs: dict[str, str], model: object, prompt: str, cont: str) -> float:
    """log P(cont | prompt) from llama.cpp's own unconstrained next-token distributions, one canonical token
    at a time (the prompt sent as token ids): the definition the grammar-forced score must meet."""
    import asyncio

    import httpx

    from thoughttrace.llm.backends.llamacpp import POOL
    from thoughttrace.llm.backends.openai_protocol import tokenize_at

    if spec.startswith("local"):
        server = POOL.get(model.backend.settings)  # type: ignore[attr-defined]
        root = str(server.listening_address)

        def complete(body: dict[str, object]) -> dict[str, object]:
            return server.handle_completions(body)  # type: ignore[no-any-return]
    else:
        root = kwargs["base_url"]

        def complete(body: dict[str, object]) -> dict[str, object]:
            return httpx.post(root + "/completions", json=body, timeout=60).json()  # type: ignore[no-any-return]

    pids, ids = asyncio.run(tokenize_at(root, prompt)), asyncio.run(tokenize_at(root, cont))
    assert pids and ids
    total = 0.0
    for i, tok in enumerate(ids):
        out = complete({"prompt": pids + ids[:i], "max_tokens": 1, "temperature": 0.0, "n_probs": 5000})
        top = out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]  # type: ignore[index]
        total += {t["id"]: t["logprob"] for t in top}[tok]
    return total


def test_score_is_the_log_prob_of_the_canonical_tokens(real_model_spec):
    """The grammar-forced score equals the unconstrained log-probs of the canonical tokens to 0.05 nats
    (measured ~1e-5): not another spelling of the text (" Banana" was -53.4 for -18.3) and not the
    distribution after the grammar's mask (which would put every forced token near 0)."""
    spec, kwargs = real_model_spec
    model = get_model(spec, cache=False, **kwargs)
    conts = [" Paris", " Banana", " the city of Paris"]
    got = model.score("The capital of France is", conts).logprobs
    for cont, value in zip(conts, got):
        ref = _stepwise_logprob(spec, kwargs, model, "The capital of France is", cont)
        assert abs(value - ref) < 0.05, (cont, value, ref)
    assert got[1] < -10  # " Banana" is unlikely here: a masked distribution would not say so


def test_local_and_server_agree_on_logprobs(llama_server_url):
    """Same weights, same numbers, up to kernel noise.

    llama.cpp reuses the KV cache of a slot's previous prompt (the chat template's shared prefix), so the
    prompt is evaluated in different batch splits depending on what ran before; the quantised kernels then
    differ by up to ~0.1 nats on this 135M model. The ranking and the rough values must agree.
    """
    local = get_model("local:smollm2", cache=False).next_token_logprobs(QUESTION, k=3)
    remote = get_model("openai-compatible/smollm2", base_url=llama_server_url, cache=False).next_token_logprobs(
        QUESTION, k=3
    )
    assert local.top[0].token == remote.top[0].token
    assert abs(local.top[0].logprob - remote.top[0].logprob) < 0.3


def test_repeated_call_is_served_from_cache(real_model_spec, tmp_path):
    spec, kwargs = real_model_spec
    model = get_model(spec, cache=tmp_path / "c.sqlite", **kwargs)
    first = model.generate("Say one word.", max_tokens=5)
    second = model.generate("Say one word.", max_tokens=5)
    report = model.usage.report()
    assert not first.cached and second.cached
    assert second.text == first.text
    assert report.calls == 1 and report.cache_hits == 1


def test_offline_replay_makes_zero_calls_and_fails_loudly_on_a_miss(tmp_path):
    from thoughttrace.llm import CacheMissError

    cache = tmp_path / "portable.sqlite"
    online = get_model("local:smollm2", cache=cache)
    text = online.generate("Count to three.", max_tokens=8).text
    replay = get_model("local:smollm2", cache=cache, offline=True)
    assert replay.generate("Count to three.", max_tokens=8).text == text
    assert replay.usage.report().calls == 0
    with pytest.raises(CacheMissError, match="offline"):
        replay.generate("Something never asked before.", max_tokens=8)


def test_context_too_long_is_a_typed_error():
    from thoughttrace.llm import ContextLengthError

    model = get_model("local:smollm2", cache=False, n_ctx=128)
    with pytest.raises(ContextLengthError, match="n_ctx"):
        model.generate("word " * 400, max_tokens=4)


def test_json_schema_constrains_the_output(real_model_spec):
    import json

    spec, kwargs = real_model_spec
    schema = {
        "type": "object",
        "properties": {"agent": {"type": "string"}, "variable": {"enum": ["belief", "goal", "action"]}},
        "required": ["agent", "variable"],
    }
    text = get_model(spec, cache=False, **kwargs).generate(
        "Where will Anne look for the ball? Give the agent and the variable as JSON.", json_schema=schema, max_tokens=60
    ).text
    data = json.loads(text)
    assert data["variable"] in {"belief", "goal", "action"} and isinstance(data["agent"], str)


def test_streaming_yields_pieces_that_make_the_generated_text(real_model_spec, tmp_path):

    spec, kwargs = real_model_spec
    model = get_model(spec, cache=tmp_path / "c.sqlite", **kwargs)

    async def collect() -> list[str]:
        return [piece async for piece in model.astream("Count from one to ten in words.", max_tokens=24)]

    pieces = model.run(collect())
    assert len(pieces) > 3, "the answer came in one piece: not streamed"
    reference = get_model(spec, cache=False, **kwargs).generate("Count from one to ten in words.", max_tokens=24)
    assert "".join(pieces) == reference.text
    again = model.run(collect())  # the streamed answer was cached like a generate call
    assert "".join(again) == reference.text and model.usage.report().cache_hits == 1
    assert model.generate("Count from one to ten in words.", max_tokens=24).cached


def test_a_reproducible_server_never_reuses_an_earlier_prompt():
    """The prefix reuse that makes greedy output depend on the previous request is off (cached_tokens 0)."""
    import httpx

    from thoughttrace.llm.server import LocalServer

    prompts = ["The capital of France is a city", "The capital of France is a city with"]
    for reproducible, reused in ((False, True), (True, False)):
        with LocalServer("smollm2", threads=1, n_ctx=512, reproducible=reproducible) as url:
            cached = [httpx.post(url + "/completions", json={"prompt": p, "max_tokens": 1, "temperature": 0.0},
                                 timeout=60).json()["usage"]["prompt_tokens_details"]["cached_tokens"] for p in prompts]
        assert (cached[1] > 0) is reused, cached


def test_a_reproducible_server_serves_one_request_at_a_time():
    from thoughttrace.llm.server import LocalServer

    with pytest.raises(ValueError, match="parallel=1"):
        LocalServer("smollm2", parallel=2, reproducible=True)
