"""An endpoint's connections are split over several httpx clients (less CPU per request); none is idle while
another queues, so the server still sees max_connections requests at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from thoughttrace.llm import get_model
from thoughttrace.llm.backends import openai_compat

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_requests_spread_over_the_clients_and_fill_the_endpoint_limit():
    proc = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--latency-ms", "150",
                             "--seed", "2"], stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": SRC})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        model = get_model("openai-compatible/fake", base_url=url, cache=False, max_connections=8)

        async def burst() -> None:
            await asyncio.gather(*(model.agenerate(f"q{i}", max_tokens=4) for i in range(24)))

        model.run(burst())
        with urllib.request.urlopen(url + "/stats", timeout=5) as r:
            stats = json.loads(r.read())
        groups = list(model.backend._clients.values())  # type: ignore[attr-defined]
        model.close()
    finally:
        proc.kill()
        proc.wait()
    assert len(groups) == 1 and len(groups[0]) == 8 // openai_compat.CONNECTIONS_PER_CLIENT == 2
    # all 8 in flight at once (first client only: 4), and never more than the endpoint's limit
    assert stats["max_in_flight"] == 8 and stats["completions"] == 24
