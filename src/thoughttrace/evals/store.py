"""Per-item JSONL written as items finish, and the resumable item runner.

An interrupted eval leaves a JSONL whose last line may be cut. On the next run `ItemStore` keeps the
complete records, drops a cut line, and the runner skips every item already stored; items that were lost
are recomputed, their model calls served from the response cache.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from tqdm import tqdm

from thoughttrace.llm import BadRequestError

FORMAT_VERSION = 1

T = TypeVar("T")


class ItemStore:
    """Append-only JSONL of per-item records, keyed by `key`."""

    def __init__(self, path: str | Path, key_field: str = "key") -> None:
        self.path = Path(path)
        #: the field that identifies a record ("key" for eval items, "id" for simulated conversations)
        self.key_field = key_field
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict[str, Any]] = {}
        self.dropped_lines = 0
        self._lock = asyncio.Lock()
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        good: list[str] = []
        text = self.path.read_text(encoding="utf-8")
        # split on "\n" only: str.splitlines() also breaks at U+0085/U+2028, which JSON strings may hold raw
        for line in text.split("\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                self.dropped_lines += 1
                continue
            if not isinstance(rec, dict) or self.key_field not in rec:
                self.dropped_lines += 1
                continue
            self._records[str(rec[self.key_field])] = rec
            good.append(line)
        if self.dropped_lines or (text and not text.endswith("\n")):
            # rewrite without the cut line (and with a final newline), so appends start on a fresh line
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(g + "\n" for g in good), encoding="utf-8")
            tmp.replace(self.path)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[dict[str, Any]]:
        return list(self._records.values())

    async def append(self, record: dict[str, Any]) -> None:
        async with self._lock:
            self._records[str(record[self.key_field])] = record
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                fh.flush()


class MemoryItemStore(ItemStore):
    """An ItemStore that keeps records in memory only: one shard of a batch run (the engine writes the shard)."""

    def __init__(self, key_field: str = "key") -> None:
        self.key_field = key_field
        self._records = {}
        self.dropped_lines = 0
        self._lock = asyncio.Lock()

    async def append(self, record: dict[str, Any]) -> None:
        self._records[str(record[self.key_field])] = record


class RunStats(BaseModel):
    """What one run did: items found done, computed now, and failed (not stored, retried next run)."""

    total: int
    skipped: int
    computed: int
    failed: int
    errors: list[str] = []


def first_items(items: Sequence[T], limit: int | None) -> list[T]:
    """The first `limit` items (all when None). A limit below 1 is refused: `items[:-1]` would quietly drop
    the last item instead of keeping the first ones."""
    if limit is None:
        return list(items)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of items >= 1 (got {limit!r}); leave it out for all items")
    return list(items[:limit])


async def run_items(
    items: Sequence[T],
    key: Callable[[T], str],
    work: Callable[[T], Awaitable[dict[str, Any]]],
    store: ItemStore,
    *,
    concurrency: int = 1,
    desc: str = "items",
    progress: bool | None = None,
) -> RunStats:
    """Run `work` on every item not in `store`, at most `concurrency` at a time; store each result at once.

    A request the model rejects (`BadRequestError`, e.g. a prompt over the context length) fails that item
    only; any other error (no connection, a missing capability, a leak) stops the run, since every item
    would fail the same way.
    """
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    todo = [it for it in items if key(it) not in store]
    stats = RunStats(total=len(items), skipped=len(items) - len(todo), computed=0, failed=0)
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(todo), desc=desc, disable=(not progress) if progress is not None else None, leave=False)

    async def one(item: T) -> None:
        async with sem:
            try:
                record = await work(item)
            except BadRequestError as exc:
                stats.failed += 1
                stats.errors.append(f"{key(item)}: {exc}")
                warnings.warn(f"item {key(item)} failed: {exc}", stacklevel=1)
                bar.update(1)
                return
            if store.key_field == "key":
                record = {"format_version": FORMAT_VERSION, "key": key(item), **record}
            await store.append(record)
            stats.computed += 1
            bar.update(1)

    try:
        async with asyncio.TaskGroup() as group:
            for it in todo:
                group.create_task(one(it))
    except BaseExceptionGroup as eg:
        # the first real error, not the group: callers branch on the package's typed errors
        raise eg.exceptions[0] from None
    finally:
        bar.close()
    return stats
