"""Long reads (exports) that never stall a participant: one snapshot, consumed piece by piece.

Why: on SQLite the platform's transactions run on the event loop and take the write lock at BEGIN;
an export done the same way held both for its whole length (1,000 participants: 2.8 s during which
no participant request was answered). Here the export reads from `Database.snapshot()` (a WAL reader
on a connection of its own) and its generator is advanced one piece at a time: on SQLite on the loop,
which gets back to participants between pieces (each a few milliseconds, and a short pause after each
so pending requests run first); on PostgreSQL in the database threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import TypeVar

from sqlalchemy.orm import Session

from .db import Database

T = TypeVar("T")
_END = object()
#: work on the loop for at most this long, then let pending participant requests run
SLICE_SECONDS = 0.004
#: how long the export steps aside after each slice (participants' requests run meanwhile)
PAUSE_SECONDS = 0.002


async def snapshot_pieces(db: Database, make: Callable[[Session], Iterator[T]]) -> AsyncIterator[T]:
    """Yield what `make(session)` yields, read from one snapshot, without holding the loop for long."""

    def pieces() -> Generator[T, None, None]:
        with db.snapshot() as s:
            yield from make(s)

    it = pieces()
    loop = asyncio.get_running_loop()
    try:
        while True:
            if db.executor is None:
                started = time.perf_counter()
                batch: list[T] = []
                while time.perf_counter() - started < SLICE_SECONDS:
                    piece = next(it, _END)
                    if piece is _END:
                        break
                    batch.append(piece)  # type: ignore[arg-type]
                else:
                    piece = None
                for x in batch:
                    yield x
                if piece is _END:
                    return
                await asyncio.sleep(PAUSE_SECONDS)
            else:
                got = await loop.run_in_executor(db.executor, next, it, _END)
                if got is _END:
                    return
                yield got  # type: ignore[misc]
    finally:
        it.close()


async def run_snapshot(db: Database, work: Callable[[Session], T]) -> T:
    """Run a short researcher's read (one page of the participant list) on a snapshot.

    SQLite: on the loop (like a participant's transaction, but taking no lock); not in a thread: a
    thread busy in C code holds the interpreter lock for up to a quarter of a second at a time, which
    stalled the loop longer than the read itself. Long reads go through `snapshot_pieces`.
    PostgreSQL: in the database threads."""

    def job() -> T:
        with db.snapshot() as s:
            return work(s)

    if db.executor is None:
        return job()
    return await asyncio.get_running_loop().run_in_executor(db.executor, job)
