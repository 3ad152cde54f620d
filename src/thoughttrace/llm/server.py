"""`LocalServer`: a real OpenAI-compatible llama.cpp server on loopback, for tests, benches and demos."""

from __future__ import annotations

from types import TracebackType

from .backends.llamacpp import ServerSettings, default_threads, resolve_model_path, start_server


class LocalServer:
    """Start llama.cpp's HTTP server in this process; `with LocalServer("smollm2") as base_url: ...`.

    The base URL ends in /v1 (what `openai-compatible/NAME` expects). Weights load once per server.

    `reproducible=True`: greedy outputs depend on the request only, not on what the server ran before, so
    two clients (our CLI and inspect_ai, say) get the same text for the same request. By default llama.cpp
    keeps a slot's last prompt in its KV cache and evaluates only the new suffix of the next one; the
    suffix's batch split then depends on the previous request, the quantised kernels round differently
    for other batch shapes, and greedy decoding flips at a near-tie (seen: identical for 85 characters,
    then different). Reproducible mode evaluates every prompt from scratch and serves one request at a time
    (parallel 1: several slots would share decode batches of varying shape). It costs the prefix reuse.
    """

    def __init__(self, model: str = "smollm2", *, parallel: int = 1, threads: int | None = None, n_ctx: int = 4096,
                 reproducible: bool = False):
        if reproducible and parallel != 1:
            raise ValueError("a reproducible server serves one request at a time: use parallel=1")
        self.settings = ServerSettings(
            path=str(resolve_model_path(model)), threads=threads or default_threads(), n_ctx=n_ctx, parallel=parallel,
            reuse_prompt=not reproducible,
        )
        self._server: object | None = None

    def start(self) -> str:
        self._server = start_server(self.settings)
        return self.base_url

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalServer is not started")
        return str(self._server.listening_address).rstrip("/") + "/v1"  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._server = None  # the xllamacpp server shuts down when collected

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m thoughttrace.llm.server --model smollm2 --threads 1`: print the base URL, serve until killed.

    One process per server, so a test can stop one replica of a pool by its PID.
    """
    import argparse
    import threading

    ap = argparse.ArgumentParser(description="a llama.cpp OpenAI-compatible server on loopback")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--reproducible", action="store_true",
                    help="outputs independent of earlier requests (no prompt-cache reuse; needs --parallel 1)")
    args = ap.parse_args(argv)
    if args.reproducible and args.parallel != 1:
        ap.error("--reproducible serves one request at a time: use --parallel 1")
    server = LocalServer(args.model, parallel=args.parallel, threads=args.threads, n_ctx=args.n_ctx,
                         reproducible=args.reproducible)
    print(server.start(), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
