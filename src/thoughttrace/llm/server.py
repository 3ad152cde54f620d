"""`LocalServer`: a real OpenAI-compatible llama.cpp server on loopback, for tests, benches and demos."""

from __future__ import annotations

from types import TracebackType

from .backends.llamacpp import ServerSettings, default_threads, resolve_model_path, start_server


class LocalServer:
    """Start llama.cpp's HTTP server in this process; `with LocalServer("smollm2") as base_url: ...`.

    The base URL ends in /v1 (what `openai-compatible/NAME` expects). Weights load once per server.
    """

    def __init__(self, model: str = "smollm2", *, parallel: int = 1, threads: int | None = None, n_ctx: int = 4096):
        self.settings = ServerSettings(
            path=str(resolve_model_path(model)), threads=threads or default_threads(), n_ctx=n_ctx, parallel=parallel
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
    args = ap.parse_args(argv)
    server = LocalServer(args.model, parallel=args.parallel, threads=args.threads, n_ctx=args.n_ctx)
    print(server.start(), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
