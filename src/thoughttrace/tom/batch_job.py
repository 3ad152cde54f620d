"""`tom bench` as a shard job for the batch engine (`tom bench --engine ray`).

A shard is a byte range of the uniform ToM item JSONL; its items of the chosen split are solved exactly as
the local harness solves them (`run_item_safely`: same method, same records, an item's failure recorded and
counted wrong). The accuracy tables, Wilson intervals and calibration are computed once, by the driver,
over every result (`harness.write_summary_files`), as the local engine does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from thoughttrace.batch import read_lines
from thoughttrace.data.io import first_validation_error
from thoughttrace.llm import Model

from .harness import ItemResult, run_item_safely
from .items import ItemFileError, ToMItem
from .methods import get_method


@dataclass(frozen=True)
class ToMBenchShardJob:
    method: str
    #: AutoToM options (k_hypotheses, likelihood_budget); empty for the baselines
    options: dict[str, Any] = field(default_factory=dict)
    split: str | None = "dev"
    concurrency: int = 1
    keep_trace: bool = False
    name: str = "tom-bench"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "model": model_spec, "method": self.method, "options": self.options,
                "split": self.split, "keep_trace": self.keep_trace}

    def read_rows(self, plan: dict[str, Any], k: int, *, skip_invalid: bool = False) -> Iterator[ToMItem]:
        """The shard's items of the chosen split; a bad line names its byte offset and field."""
        for offset, line in read_lines(plan, k):
            try:
                item = ToMItem.model_validate(json.loads(line))
            except (ValueError, ValidationError) as exc:
                if skip_invalid:
                    continue
                why = first_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
                raise ItemFileError(f"{plan['input']}: the line at byte {offset}: {why}") from exc
            if self.split is None or item.split == self.split:
                yield item

    def run_shard(self, items: Iterable[ToMItem], model: Model) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        todo = list(items)
        method = get_method(self.method, **self.options)
        sem = asyncio.Semaphore(max(1, self.concurrency))

        async def one(item: ToMItem) -> ItemResult:
            async with sem:
                return await run_item_safely(method, model, item, keep_trace=self.keep_trace)

        async def run_all() -> list[ItemResult]:
            return list(await asyncio.gather(*(one(it) for it in todo)))

        results = model.run(run_all())
        return ([r.model_dump(mode="json") for r in results],
                {"items": len(results), "correct": sum(r.correct for r in results),
                 "failed": sum(r.error is not None for r in results)})
