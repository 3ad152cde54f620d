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


def test_offline_replay_never_calls_the_model(tmp_path):
    """`--offline` replays from the cache: a miss is a CacheMissError, and the backend is never called."""
    from thoughttrace.llm.errors import CacheMissError

    calls: list[str] = []
    cache = tmp_path / "c.sqlite"

    def fn(messages, config):
        calls.append(messages[-1].content)
        return "answer"

    online = get_model("scripted", cache=cache, fn=fn, score_fn=lambda p, c: -1.0)
    assert online.generate("asked before").text == "answer" and calls == ["asked before"]
    online.score("p", [" c"])
    replay = get_model("scripted", cache=cache, fn=fn, score_fn=lambda p, c: -1.0 / 0, offline=True)
    assert replay.generate("asked before").text == "answer"  # a hit replays
    assert replay.score("p", [" c"]).logprobs == [-1.0]
    with pytest.raises(CacheMissError, match="offline replay: no cached generate"):
        replay.generate("never asked")

    async def stream() -> str:
        return "".join([p async for p in replay.astream("never asked either")])

    with pytest.raises(CacheMissError):
        replay.run(stream())
    with pytest.raises(CacheMissError, match="no cached score"):
        replay.score("p", [" other"])
    assert calls == ["asked before"]  # the misses reached no model
    assert replay.usage.report().calls == 0 and replay.usage.report().cache_hits == 2


def test_offline_cli_miss_is_one_line_and_exit_1(tmp_path):
    from click.testing import CliRunner

    from thoughttrace.cli.main import cli

    r = CliRunner().invoke(cli, ["llm", "ping", "--model", "scripted", "--cache", str(tmp_path / "empty.sqlite"),
                                 "--offline"])
    assert r.exit_code == 1, r.output
    assert "offline replay: no cached" in r.output and "Traceback" not in r.output


def test_a_new_scoring_version_does_not_reuse_old_scores(tmp_path, monkeypatch):
    """Scores cached before a scoring change (a bug fixed in how a backend scores) are never replayed."""
    from thoughttrace.llm import model as model_module

    scored: list[str] = []

    def score_fn(prompt: str, cont: str) -> float:
        scored.append(cont)
        return -float(len(scored))

    cache = tmp_path / "c.sqlite"
    first = get_model("scripted", cache=cache, score_fn=score_fn)
    assert first.score("p", [" a"]).logprobs == [-1.0]
    assert get_model("scripted", cache=cache, score_fn=score_fn).score("p", [" a"]).logprobs == [-1.0]  # a hit
    monkeypatch.setattr(model_module, "SCORING_VERSION", model_module.SCORING_VERSION + 1)
    again = get_model("scripted", cache=cache, score_fn=score_fn)
    assert again.score("p", [" a"]).logprobs == [-2.0]  # scored anew
    assert scored == [" a", " a"] and again.usage.report().cache_hits == 0


class _EchoServer:
    """What vLLM answers to `echo` with `logprobs`: every prompt token's log-prob and offset, then one generated."""

    TOKENS = [("The", None), (" capital", -2.0), (" of", -0.5), (" France", -1.0), (" is", -0.3),
              (" Paris", -0.7), (" city", -1.1), (".", -0.2)]

    def __init__(self) -> None:
        from thoughttrace.llm.backends.openai_protocol import OpenAIProtocolBackend

        tokens = self.TOKENS

        class Fake(OpenAIProtocolBackend):
            kind = "fake-vllm"
            score_method = "echo"

            async def _post(self, path: str, body: dict) -> dict:
                offsets, off = [], 0
                for text, _ in tokens:
                    offsets.append(off)
                    off += len(text)
                return {"choices": [{"text": body["prompt"] + ".", "logprobs": {
                    "tokens": [t for t, _ in tokens], "token_logprobs": [v for _, v in tokens],
                    "text_offset": offsets}}], "usage": {"prompt_tokens": 7, "completion_tokens": 1}}

            def _post_stream(self, path: str, body: dict):  # pragma: no cover - not used
                raise NotImplementedError

        self.model = Model(Fake(model_id="fake-vllm", endpoint="fake:vllm"))


def test_echo_score_sums_every_continuation_token_and_nothing_else():
    # " Paris" starts exactly where the prompt ends; the generated "." after the continuation is not counted
    got = _EchoServer().model.score("The capital of France is", [" Paris city"]).logprobs
    assert got == [pytest.approx(-0.7 - 1.1)]


def test_llamacpp_tokenize_asks_for_no_special_tokens():
    """llama.cpp's /tokenize adds BOS when asked to (`add_special`); a BOS id would lead the forced grammar ids."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from thoughttrace.llm.backends.openai_protocol import tokenize_at

    class Tokenizer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ids = ([1] if body.get("add_special") else []) + [ord(ch) for ch in body["content"]]
            data = json.dumps({"tokens": ids}).encode() if self.path == "/tokenize" else b"{}"
            self.send_response(200 if self.path == "/tokenize" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Tokenizer)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        assert asyncio.run(tokenize_at(url, " Banana")) == [ord(ch) for ch in " Banana"]
    finally:
        srv.shutdown()
        srv.server_close()
