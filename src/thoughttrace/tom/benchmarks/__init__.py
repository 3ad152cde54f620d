"""Benchmark loaders: the uniform JSONL of shared/data/tom, and each benchmark's official format.

One module per benchmark. Each module exposes `NAME`, `load_official(raw_dir) -> list[ToMItem]`
(the benchmark's original files, reproducing the uniform file item for item) and
`official_group(item) -> str` (the benchmark's published score grouping). Only the harness looks at
these; the engine never branches on a benchmark's name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ..items import ItemFileError, ToMItem, read_items

#: benchmark name -> module name in this package
BENCHMARKS: dict[str, str] = {
    "tomi": "tomi",
    "bigtom": "bigtom",
    "mmtom_qa": "mmtom_qa",
    "muma_tom": "muma_tom",
    "hitom": "hitom",
}


def module(benchmark: str) -> ModuleType:
    if benchmark not in BENCHMARKS:
        raise ItemFileError(f"unknown benchmark '{benchmark}'; known: {', '.join(BENCHMARKS)}")
    return importlib.import_module(f"{__name__}.{BENCHMARKS[benchmark]}")


def load_uniform(tom_dir: str | Path, benchmark: str) -> list[ToMItem]:
    """The uniform file `<tom_dir>/<benchmark>.jsonl`."""
    module(benchmark)
    return read_items(Path(tom_dir) / f"{benchmark}.jsonl")


def load_official(raw_dir: str | Path, benchmark: str) -> list[ToMItem]:
    """The benchmark's original files under `raw_dir` (e.g. shared/data/tom/raw/<benchmark>)."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise ItemFileError(f"no such directory of official {benchmark} files: {raw}")
    items: list[ToMItem] = module(benchmark).load_official(raw)
    return items


def official_group(item: ToMItem) -> str | None:
    """The item's group in its benchmark's official scoring (None for unknown benchmarks)."""
    if item.benchmark not in BENCHMARKS:
        return None
    group: str = module(item.benchmark).official_group(item)
    return group


__all__ = ["BENCHMARKS", "load_official", "load_uniform", "module", "official_group"]
