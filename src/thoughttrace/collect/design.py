"""The study's counterbalancing design: which models, in which order, and which task order each design
row gives, and the rule that made it.

Why a Williams design: with a plain cyclic Latin square (a b c / b c a / c a b) every model is at every
position equally often, but only the neighbour pairs a->b, b->c and c->a ever occur, so a within-person
comparison of models is confounded with what came before. A balanced Latin square (Williams 1949) has
each condition immediately precede each other condition equally often: n rows for an even n, a pair of
squares (2n rows, the second the mirror of the first) for an odd n. When a participant meets fewer
models than the pool holds (K < M), a truncated square cannot hold every ordered K-sequence, so the
design lists all of them (every K-permutation once), which is balanced for any order effect. Task
orders get a Williams square of their own, and design rows cross the two (every model order with
every task order once per cycle).

Rows are listed so that filling them in turn (least-filled first, ties: the lowest) keeps every
(model, position) and (task, position) cell within one of the others at any moment: model orders and
task orders both come in Latin blocks (M, resp. T, consecutive orders in which every condition is at
every position once), and `cross` lists the Rm x Rt (model order, task order) pairs so that every
aligned run of M rows holds one model block and every aligned run of T rows one task block. Where it
can (Rm a multiple of T), row r takes model order r mod Rm, so model orders themselves also stay
within one of each other at any moment.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: above this many K-permutations the design falls back to Williams rows (first K positions)
MAX_PERMUTATION_ROWS = 5040
DESIGN_FORMAT_VERSION = 1


def williams_square(n: int) -> list[list[int]]:
    """A balanced Latin square over conditions 0..n-1: n rows for even n, 2n rows for odd n.

    First row 0, 1, n-1, 2, n-2, ...; row i adds i (mod n). For odd n the mirrored rows are appended,
    so that over all rows each ordered pair (i, j), i != j, is adjacent equally often.
    """
    if n < 1:
        raise ValueError("a Latin square needs at least one condition")
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(x + i) % n for x in first] for i in range(n)]
    if n % 2 == 1 and n > 1:
        rows += [list(reversed(r)) for r in rows]
    return rows


def k_permutations(n: int, k: int) -> list[list[int]]:
    """Every ordered k-sequence of n conditions once, in Latin blocks of n rows (each a cyclic shift of a
    sequence starting with 0), so that rows filled in turn stay balanced over (condition, position)."""
    reps = [p for p in itertools.permutations(range(n), k) if p[0] == 0]
    return [[(x + i) % n for x in rep] for rep in reps for i in range(n)]


def model_orders(n_models: int, positions: int) -> tuple[list[list[int]], str]:
    """The model orders (indices into the pool, one per position) and the rule that made them."""
    if positions >= n_models:
        square = williams_square(n_models)
        rows = [[r[k % n_models] for k in range(positions)] for r in square]
        rule = (f"williams: balanced Latin square over {n_models} models ({len(square)} rows"
                f"{', a pair of mirrored squares for an odd count' if n_models % 2 and n_models > 1 else ''})")
        if positions > n_models:
            rule += f"; positions past {n_models} repeat the row from its start"
        return rows, rule
    count = math.perm(n_models, positions)
    if count <= MAX_PERMUTATION_ROWS:
        return k_permutations(n_models, positions), (
            f"permutations: every ordered sequence of {positions} of the {n_models} models once ({count} rows)")
    square = williams_square(n_models)
    return [r[:positions] for r in square], (
        f"williams-prefix: {count} sequences are too many rows; the first {positions} positions of a balanced "
        f"Latin square over {n_models} models ({len(square)} rows)")


def task_orders(n_tasks: int, rotate: bool, positions: int) -> tuple[list[list[int]], str]:
    """The task orders (indices into `tasks`) and their rule: a Williams square, or the listed order."""
    if not rotate or n_tasks < 2:
        return [list(range(positions))], "as listed: every participant gets the tasks in the listed order"
    square = williams_square(n_tasks)
    return square, f"williams: balanced Latin square over {n_tasks} tasks ({len(square)} rows)"


def cross(rm: int, m_block: int, rt: int, t_block: int) -> tuple[list[tuple[int, int]], str]:
    """Every (model order, task order) pair once, in the order described in the module docstring.

    "passes": pass q runs over all model orders i = 0..Rm-1 and gives order i the task order
    t_block * ((i // t_block + q) mod Bt) + (i + q) mod t_block (Bt = Rt / t_block task blocks), a
    bijection in q when Bt and t_block share no factor (true of Williams squares: one block for an even
    count, two for an odd one). "blocks": otherwise, each model block is crossed with each task block in
    turn, M x T rows a time, with the cyclic pairing (k mod M, (k + k // lcm(M, T)) mod T).
    """
    bt = rt // t_block
    if rt == 1:
        return [(i, 0) for i in range(rm)], "passes"
    if rm % t_block == 0 and math.gcd(bt, t_block) == 1:
        pairs = [(i, t_block * ((i // t_block + q) % bt) + (i + q) % t_block) for q in range(rt) for i in range(rm)]
        rule = "passes"
    else:
        lcm = math.lcm(m_block, t_block)
        pairs = [(a * m_block + k % m_block, b * t_block + (k + k // lcm) % t_block)
                 for b in range(bt) for a in range(rm // m_block) for k in range(m_block * t_block)]
        rule = "blocks"
    if len(set(pairs)) != rm * rt:  # a construction that missed a pair would bias the design: never
        raise AssertionError(f"design crossing is not a bijection ({rm} x {rt}, {rule})")
    return pairs, rule


@dataclass(frozen=True)
class DesignRow:
    index: int
    models: tuple[str, ...]
    tasks: tuple[int, ...]


@dataclass(frozen=True)
class Design:
    """The rows, the rules, and an id that changes whenever any of them does."""

    model_keys: tuple[str, ...]
    positions: int
    rows: tuple[DesignRow, ...]
    model_rule: str
    task_rule: str
    crossing: str
    design_id: str

    def row(self, index: int) -> DesignRow:
        return self.rows[index % len(self.rows)]

    def to_dict(self) -> dict[str, Any]:
        """The design as exported (design.json and the codebook)."""
        return {
            "format_version": DESIGN_FORMAT_VERSION, "design_id": self.design_id, "model_keys": list(self.model_keys),
            "positions": self.positions, "model_rule": self.model_rule, "task_rule": self.task_rule,
            "crossing": self.crossing,
            "assignment": "least-filled row first (ties: the lowest index), counting participants who did not "
                          "withdraw or screen out, skipping rows whose quota or model quota is full",
            "rows": [{"row": r.index, "models": list(r.models), "tasks": list(r.tasks)} for r in self.rows],
        }


#: every design built in this process, by id: the quota of a model counts participants of earlier
#: versions' designs too (their rows are read back through this)
_BUILT: dict[str, Design] = {}


def known_design(design_id: str) -> Design | None:
    """A design built in this process (every stored study version's is, at start-up), or None."""
    return _BUILT.get(design_id)


@lru_cache(maxsize=64)
def build_design(model_keys: tuple[str, ...], positions: int, n_tasks: int, rotate: bool) -> Design:
    """The design for a pool, a number of task positions and the listed tasks (cached: pure)."""
    m_rows, m_rule = model_orders(len(model_keys), positions)
    t_rows, t_rule = task_orders(n_tasks, rotate, positions)
    pairs, how = cross(len(m_rows), len(model_keys), len(t_rows), n_tasks if len(t_rows) > 1 else 1)
    rows = tuple(DesignRow(r, tuple(model_keys[x] for x in m_rows[i]), tuple(t_rows[j]))
                 for r, (i, j) in enumerate(pairs))
    crossing = (f"every model order with every task order once ({len(m_rows)} x {len(t_rows)} rows, "
                f"listed by '{how}': see thoughttrace.collect.design.cross)")
    digest = hashlib.sha256(json.dumps([list(model_keys), positions, [(x.models, x.tasks) for x in rows]])
                            .encode()).hexdigest()[:16]
    design = Design(model_keys, positions, rows, m_rule, t_rule, crossing, f"d-{digest}")
    _BUILT[design.design_id] = design
    return design
