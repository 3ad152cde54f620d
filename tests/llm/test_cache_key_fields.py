"""Every sampling parameter enters the response-cache key: a cache that dropped one (e.g. the temperature)
would serve a greedy answer for a sampled request, silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thoughttrace.llm import GenerationConfig, get_model

CHANGES: dict[str, Any] = {"temperature": 0.7, "max_tokens": 17, "top_p": 0.5, "seed": 3, "stop": ("\n",),
                           "sample_index": 2, "json_schema": {"type": "object"}}


def test_every_generation_field_is_listed() -> None:
    assert set(CHANGES) == set(GenerationConfig.model_fields)


@pytest.mark.parametrize("field", sorted(CHANGES))
async def test_a_changed_sampling_parameter_is_a_cache_miss(field: str, tmp_path: Path) -> None:
    calls: list[GenerationConfig] = []

    def fn(messages: Any, cfg: GenerationConfig) -> str:
        calls.append(cfg)
        return f"reply {len(calls)} ({field}={getattr(cfg, field)!r})"

    model = get_model("scripted:cache-key", cache=tmp_path / "cache.sqlite", fn=fn)
    base = GenerationConfig()
    first = await model.agenerate("same prompt", base)
    again = await model.agenerate("same prompt", base)
    assert again.cached and again.text == first.text and len(calls) == 1
    changed = await model.agenerate("same prompt", base.model_copy(update={field: CHANGES[field]}))
    assert not changed.cached and len(calls) == 2 and changed.text != first.text
    assert getattr(calls[-1], field) == CHANGES[field]
