"""Logic of the Model wrapper with the scripted backend: cache keys, concurrency, capabilities, usage."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thoughttrace.llm import CapabilityError, ConfigurationError, GenerationConfig, get_model
from thoughttrace.llm.base import Backend
from thoughttrace.llm.cache import ResponseCache, cache_key
from thoughttrace.llm.model import Model
from thoughttrace.llm.types import ChatMessage, Generation


def test_sampling_parameters_and_sample_index_change_the_key(tmp_path):
    model = get_model("scripted", cache=tmp_path / "c.sqlite", fn=lambda m, c: f"t={c.temperature} i={c.sample_index}")
    a = model.generate("q", temperature=0.7, sample_index=0)
    b = model.generate("q", temperature=0.7, sample_index=1)
    c = model.generate("q", temperature=0.7, sample_index=0)
    assert a.text != b.text and c.cached and c.text == a.text
    assert model.usage.report().calls == 2


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5))
def test_cache_key_is_order_independent(payload):
    reordered = dict(reversed(list(payload.items())))
    assert cache_key(payload) == cache_key(reordered)


def test_cache_export_import_round_trip(tmp_path):
    src = get_model("scripted", cache=tmp_path / "a.sqlite", outputs=["one", "two"])
    src.generate("x")
    src.generate("y")
    exported = tmp_path / "dump.jsonl"
    assert ResponseCache(tmp_path / "a.sqlite").export_jsonl(exported) == 2
    dst = ResponseCache(tmp_path / "b.sqlite")
    assert dst.import_file(exported) == 2
    replay = get_model("scripted", cache=tmp_path / "b.sqlite", offline=True)
    assert replay.generate("y").text == "two"


class _Counting(Backend):
    kind = "counting"

    def __init__(self, limit: int) -> None:
        super().__init__("counting", endpoint="counting://shared", max_connections=limit)
        self.active = 0
        self.peak = 0

    async def generate(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        return Generation(text=messages[-1].content)


def test_per_endpoint_concurrency_limit_holds():
    backend = _Counting(limit=3)
    model = Model(backend)

    async def run() -> list[str]:
        results = await asyncio.gather(*(model.agenerate(f"m{i}") for i in range(20)))
        return [r.text for r in results]

    assert model.run(run()) == [f"m{i}" for i in range(20)]
    assert backend.peak == 3


def test_missing_capability_names_the_backends_that_have_it():
    model = Model(_Counting(limit=1))
    with pytest.raises(CapabilityError, match="score.*transformers"):
        model.score("p", ["c"])


def test_unknown_model_string_says_what_is_valid():
    with pytest.raises(ConfigurationError, match="model strings"):
        get_model("gpt-nonsense")


def test_openai_without_key_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        get_model("openai/gpt-4o")


def test_price_table_gives_cost(tmp_path, monkeypatch):
    prices = tmp_path / "prices.yaml"
    prices.write_text("scripted:\n  input: 1000000\n  output: 2000000\n")
    monkeypatch.setenv("THOUGHTTRACE_PRICES", str(prices))
    model = get_model("scripted", cache=False, outputs=["a b"])
    model.generate("one two three")
    report = model.usage.report()
    assert report.cost_usd == pytest.approx(3 * 1.0 + 2 * 2.0)


def test_sync_call_works_from_a_thread_with_a_running_loop():
    """Jupyter and pytest-playwright leave a running loop in the main thread; sync calls must still work."""
    model = get_model("scripted", cache=False, outputs=["x"])

    async def inner() -> str:
        return model.generate("q").text

    assert asyncio.run(inner()) == "x"


def test_sync_call_from_the_models_own_loop_is_refused():
    model = get_model("scripted", cache=False, outputs=["x"])

    async def inner() -> None:
        model.generate("q")

    with pytest.raises(Exception, match="await the a"):
        model.run(inner())


class _GrammarServer:
    """What a llama.cpp server answers to a token-grammar completion: the forced ids, then an end token."""

    def __init__(self, ids: list[int] | None, answer_ids: list[int] | None = None) -> None:
        from thoughttrace.llm.backends.openai_protocol import OpenAIProtocolBackend

        server = self

        class Fake(OpenAIProtocolBackend):
            kind = "fake-llama"
            score_method = "grammar"

            async def _tokenize(self, text: str) -> list[int] | None:
                return ids

            async def _post(self, path: str, body: dict) -> dict:
                server.bodies.append(body)
                content = [{"id": i, "token": f"t{i}", "logprob": -1.5} for i in (answer_ids or ids or [])]
                content.append({"id": 0, "token": "", "logprob": -9.0})  # the end token the grammar forces
                return {"choices": [{"text": "", "logprobs": {"content": content}}], "usage": {}}

            def _post_stream(self, path: str, body: dict):  # pragma: no cover - not used
                raise NotImplementedError

        self.bodies: list[dict] = []
        self.model = Model(Fake(model_id="fake-llama", endpoint="fake:llama"))


def test_grammar_score_forces_the_canonical_token_ids_and_leaves_out_the_end_token():
    server = _GrammarServer([12619, 3231])
    assert server.model.score("The capital of France is", [" Banana"]).logprobs == [-3.0]
    (body,) = server.bodies
    assert body["grammar"] == "root ::= <[12619]> <[3231]>" and body["max_tokens"] == 3
    assert body["prompt"] == "The capital of France is"


def test_grammar_score_refuses_another_token_path_or_no_tokenizer():
    with pytest.raises(CapabilityError, match="score"):
        _GrammarServer([12619, 3231], answer_ids=[216, 33]).model.score("p", [" Banana"])
    with pytest.raises(CapabilityError, match="score"):
        _GrammarServer(None).model.score("p", [" Banana"])
