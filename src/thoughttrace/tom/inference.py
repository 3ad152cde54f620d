"""Exact inference over a grounded `ProblemModel`, in log space.

Per timestep, every assignment of the latent variables is enumerated and weighted by the product of
its factors P(V | parents) (from any factor function: the LLM, or a table in tests). Across time the
belief is filtered: the previous step's posterior over Belief becomes the prior of PrevBelief (a
forward pass, as in an HMM). A constant Goal is enumerated outermost, so the evidence of every step
combines for it: P(g | all steps) ∝ P(g) * prod_t p(step t | g, past). Hypotheses of latent non-query
variables whose likelihood falls below `prune_threshold` for every parent value are pruned before their
children are scored (that saves calls); a belief carried with probability >= `propagate_threshold`
is passed to the next step as certain. With a `row` function, a latent variable's factor is asked a whole
row at a time (one distribution over its values per parent assignment) where the row function takes it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .factors import NOTHING_OBSERVED
from .model_space import (
    ACTION,
    BELIEF,
    OBS,
    PREV_BELIEF,
    UTTER,
    Node,
    ProblemModel,
    parent_graph,
    topological,
)

#: factor(step_index, variable, value, ((parent, parent_value), ...)) -> probability in (0, 1]
FactorFn = Callable[[int, str, str, tuple[tuple[str, str], ...]], Awaitable[float]]
#: row(step_index, variable, values, parents) -> P(value | parents) for every value, or None (ask per value)
RowFn = Callable[[int, str, list[str], tuple[tuple[str, str], ...]], Awaitable[list[float] | None]]
NEG_INF = float("-inf")
T = TypeVar("T")


async def gather_settled(coros: Sequence[Awaitable[T]]) -> list[T]:
    """`asyncio.gather` that lets every request finish before re-raising the first error (e.g. a spent
    budget), so no call is still in flight, and uncounted, after the question has been answered."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)  # type: ignore[arg-type]


def logsumexp(values: Sequence[float]) -> float:
    finite = [v for v in values if v != NEG_INF]
    if not finite:
        return NEG_INF
    m = max(finite)
    return m + math.log(sum(math.exp(v - m) for v in finite))


def normalise_log(logw: Sequence[float]) -> list[float]:
    """Probabilities from log-weights; all -inf gives the uniform distribution (nothing to go on)."""
    z = logsumexp(logw)
    if z == NEG_INF:
        return [1.0 / len(logw)] * len(logw)
    return [math.exp(v - z) if v != NEG_INF else 0.0 for v in logw]


def entropy(p: Sequence[float]) -> float:
    """Shannon entropy in nats."""
    return -sum(x * math.log(x) for x in p if x > 0)


def ties(p: Sequence[float], *, least: bool = False, tol: float = 1e-9) -> list[int]:
    """Indices sharing the best (or, for 'least likely' questions, the worst) probability."""
    target = min(p) if least else max(p)
    return [i for i, x in enumerate(p) if abs(x - target) <= tol]


PruneRule = Literal["ratio", "absolute"]
CarryRule = Literal["lazy", "eager"]


@dataclass
class InferenceConfig:
    prune_threshold: float = 0.05
    propagate_threshold: float = 0.95
    #: how `prune_threshold` is applied to a latent non-query hypothesis (see `prune_keep`)
    prune_rule: PruneRule = "ratio"
    #: latent variables whose marginal at every step goes into the trace (`step["marginals"]`); empty by
    #: default, so first-order traces are unchanged (the belief-of-state sub-inference asks for State, Belief)
    marginals: frozenset[str] = frozenset()
    #: when approximations that save requests are applied: "lazy" (default) only where they do save some:
    #: a latent hypothesis is pruned only at a step where the variable has a child (whose requests pruning
    #: saves), and the carried belief is approximated (held as certain at >= propagate_threshold, values
    #: under prune_threshold dropped when there are more than two) only on entering a step that pays for
    #: each carried value (a belief transition asked of the model, or an Action / Utterance that depends on
    #: the belief). "eager" (before): at every step, so a 0.96 belief carried into a last step with nothing
    #: observed became an exact 1.0 by the persistence rule
    carry_rule: CarryRule = "lazy"


def prune_keep(best: dict[int, float], cfg: InferenceConfig) -> list[int]:
    """The hypotheses of a latent variable kept at a step, from each one's best likelihood over its parents.

    - "ratio" (default): drop a hypothesis only when its likelihood is below `prune_threshold` times the best
      hypothesis's, i.e. when, under a uniform prior, its posterior is under 1/20 of the best one's. The rule
      is normalised per step, so it is the same whatever scale the model's numbers have, and it never empties
      the set: when every hypothesis scores low (P(Likely) 0.034 vs 0.040 given "nothing new"), they are all
      kept, because the step does not tell them apart.
    - "absolute" (engine v2 before the fix; for replaying old runs): drop every hypothesis below
      `prune_threshold`, and when none passes keep only the single best. That turned a 0.46 / 0.54 step into
      certainty, and the persistence rule then carried the exact 0 to the answer: the three dev items with
      posterior exactly 1.0 (bigtom-00006, bigtom-00206, mmtom_qa-00001) all came from this.
    """
    if cfg.prune_rule == "absolute":
        keep = [vi for vi, p in best.items() if p >= cfg.prune_threshold]
        return keep or [max(best, key=lambda vi: best[vi])]
    if cfg.prune_rule != "ratio":
        raise ValueError(f"unknown prune_rule {cfg.prune_rule!r}; use 'ratio' or 'absolute'")
    top = max(best.values())
    return [vi for vi, p in best.items() if p >= cfg.prune_threshold * top]


@dataclass
class InferenceResult:
    posterior: list[float]
    log_evidence: float
    constant_posterior: dict[str, list[float]] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)
    factor_calls: int = 0


@dataclass
class _Chain:
    log_evidence: float
    log_joint_query: list[float] | None
    steps: list[dict[str, Any]]
    calls: int


async def infer(pm: ProblemModel, factor: FactorFn, config: InferenceConfig | None = None,
                row: RowFn | None = None) -> InferenceResult:
    """The posterior over the query's values given everything observed in `pm`."""
    cfg = config or InferenceConfig()
    latent_const = {n: c for n, c in pm.constant.items() if not c.observed}
    fixed_obs = {n: c.values[0] for n, c in pm.constant.items() if c.observed}
    if len(latent_const) > 1:
        raise ValueError("at most one latent constant variable is supported")
    if not latent_const:
        chain = await _run_chain(pm, fixed_obs, set(), factor, cfg, row)
        if chain.log_joint_query is None:
            raise ValueError(f"the query {pm.query} is not a latent variable of the last step")
        return InferenceResult(normalise_log(chain.log_joint_query), chain.log_evidence,
                               trace=[{"given": {}, "steps": chain.steps}], factor_calls=chain.calls)
    (cname, cnode), = latent_const.items()
    prior = _log_prior(cnode)
    chains = await gather_settled([
        _run_chain(pm, {**fixed_obs, cname: value}, {cname}, factor, cfg, row) for value in cnode.values
    ])
    log_post_const = [lp + ch.log_evidence for lp, ch in zip(prior, chains)]
    const_post = normalise_log(log_post_const)
    calls = sum(ch.calls for ch in chains)
    trace = [{"given": {cname: v}, "log_evidence": ch.log_evidence, "steps": ch.steps}
             for v, ch in zip(cnode.values, chains)]
    if pm.query == cname:
        return InferenceResult(const_post, logsumexp(log_post_const), {cname: const_post}, trace, calls)
    joint: list[list[float]] = []
    for lp, ch in zip(prior, chains):
        if ch.log_joint_query is None:
            raise ValueError(f"the query {pm.query} is not a latent variable of the last step")
        joint.append([lp + x for x in ch.log_joint_query])
    combined = [logsumexp([row[k] for row in joint]) for k in range(len(joint[0]))]
    return InferenceResult(normalise_log(combined), logsumexp(combined), {cname: const_post}, trace, calls)


def _pays_for_carried(nodes: dict[str, Node]) -> bool:
    """Whether each value of the carried belief costs requests at this step: its belief transition is asked
    of the model (something was, or may have been, observed), or an Action / Utterance depends on the belief.
    Otherwise the step's belief factors are all fixed (persistence) and carrying the full distribution is free."""
    if ACTION in nodes or UTTER in nodes:
        return True
    obs = nodes.get(OBS)
    return obs is not None and not (obs.observed and obs.values[0] in NOTHING_OBSERVED)


def _approximate_carried(marg: list[tuple[str, float]], cfg: InferenceConfig
                         ) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    """A belief held with >= propagate_threshold is carried as certain; with more than two values, values the
    evidence all but ruled out (< prune_threshold) are dropped: each carried value costs one transition
    request per hypothesis at a step with an observation."""
    probs = normalise_log([lp for _, lp in marg])
    best_k = max(range(len(marg)), key=lambda k: probs[k])
    if probs[best_k] >= cfg.propagate_threshold:
        return [(marg[best_k][0], 0.0)], {"propagated": marg[best_k][0]}
    if len(marg) > 2:
        keep = [k for k in range(len(marg)) if probs[k] >= cfg.prune_threshold] or [best_k]
        if len(keep) < len(marg):
            return [marg[k] for k in keep], {"pruned_prev": [marg[k][0] for k in range(len(marg)) if k not in keep]}
    return marg, {}


def _log_prior(node: Node) -> list[float]:
    if node.prior is None:
        return [-math.log(len(node.values))] * len(node.values)
    total = sum(node.prior)
    return [math.log(p / total) if p > 0 else NEG_INF for p in node.prior]


async def _run_chain(pm: ProblemModel, fixed: dict[str, str], varying_const: set[str], factor: FactorFn,
                     cfg: InferenceConfig, row: RowFn | None = None) -> _Chain:
    message: list[tuple[str, float]] | None = None
    evidence = 0.0
    steps_trace: list[dict[str, Any]] = []
    calls = 0
    last = len(pm.steps) - 1
    log_joint_query: list[float] | None = None
    for pos, step in enumerate(pm.steps):
        nodes: dict[str, Node] = dict(step.nodes)
        for name, value in fixed.items():
            nodes[name] = Node(name, [value], observed=True)
        has_prev = message is not None and BELIEF in nodes
        pre: dict[str, Any] = {}
        if has_prev and message is not None and cfg.carry_rule == "lazy" and _pays_for_carried(nodes):
            message, pre = _approximate_carried(message, cfg)
        if has_prev and message is not None:
            nodes[PREV_BELIEF] = Node(PREV_BELIEF, [v for v, _ in message], prior=[math.exp(lp) for _, lp in message])
        graph = parent_graph(nodes, with_prev_belief=has_prev)
        varying = {n for n, node in nodes.items() if not node.observed} | (varying_const & set(nodes))
        domain = {n: list(range(len(node.values))) for n, node in nodes.items()}
        table: dict[tuple[str, int, tuple[int, ...]], float] = {}
        included: list[str] = []
        pruned: dict[str, list[str]] = {}
        is_query = pos == last
        for var in topological(graph):
            parents = graph[var]
            if not parents or not (var in varying or any(p in varying for p in parents)):
                continue
            included.append(var)
            combos = list(itertools.product(*[domain[p] for p in parents]))
            values = [nodes[var].values[vi] for vi in domain[var]]
            given = [tuple((p, nodes[p].values[c]) for p, c in zip(parents, combo)) for combo in combos]
            rows_got: list[list[float] | None] = [None] * len(combos)
            if row is not None and not nodes[var].observed and len(values) > 1:
                rows_got = await gather_settled([row(step.index, var, values, g) for g in given])
            keys = [(vi, ci) for vi in domain[var] for ci in range(len(combos)) if rows_got[ci] is None]
            probs = await gather_settled([factor(step.index, var, nodes[var].values[vi], given[ci]) for vi, ci in keys])
            calls += len(keys) + sum(r is not None for r in rows_got)
            for (vi, ci), p in zip(keys, probs):
                table[(var, vi, combos[ci])] = p
            for ci, got in enumerate(rows_got):
                if got is not None:
                    if len(got) != len(values):
                        raise ValueError(f"a row of {var} has {len(got)} values for {len(values)} hypotheses")
                    for vi, p in zip(domain[var], got):
                        table[(var, vi, combos[ci])] = p
            node = nodes[var]
            saves = cfg.carry_rule == "eager" or any(var in graph[c] for c in graph if c != var)
            if not node.observed and var != PREV_BELIEF and not (is_query and var == pm.query) \
                    and len(domain[var]) > 1 and saves:
                best = {vi: max(table[(var, vi, c)] for c in combos) for vi in domain[var]}
                keep = prune_keep(best, cfg)
                if len(keep) < len(domain[var]):
                    pruned[var] = [node.values[vi] for vi in domain[var] if vi not in keep]
                    domain[var] = keep
        latent = [n for n, node in nodes.items() if not node.observed]
        rows: list[tuple[dict[str, int], float]] = []
        for assignment in itertools.product(*[domain[n] for n in latent]):
            idx = dict(zip(latent, assignment))
            lw = 0.0
            for name in latent:
                node = nodes[name]
                if node.prior is not None or name not in included:
                    lw += _log_prior(node)[idx[name]]
            for var in included:
                parents = graph[var]
                key = (var, idx.get(var, 0), tuple(idx.get(p, 0) for p in parents))
                lw += math.log(max(table[key], 1e-300))
            rows.append((idx, lw))
        total = logsumexp([lw for _, lw in rows])
        step_info: dict[str, Any] = {
            "index": step.index,
            "variables": {n: {"values": node.values, "observed": node.observed} for n, node in nodes.items()},
            "parents": {v: list(graph[v]) for v in included},
            "factors": [{"variable": v, "value": nodes[v].values[vi],
                         "parents": {p: nodes[p].values[c] for p, c in zip(graph[v], combo)}, "p": p}
                        for (v, vi, combo), p in table.items()],
            "pruned": pruned,
            **({"carried_in": pre} if pre else {}),
        }
        for name in sorted(cfg.marginals & set(latent)):
            vals = nodes[name].values
            lp = [logsumexp([lw for idx, lw in rows if idx[name] == k]) for k in domain[name]]
            step_info.setdefault("marginals", {})[name] = dict(zip([vals[k] for k in domain[name]], normalise_log(lp)))
        if pos == last:
            if pm.query in latent:
                qnode = nodes[pm.query]
                log_joint_query = [
                    evidence + logsumexp([lw for idx, lw in rows if idx[pm.query] == k])
                    for k in range(len(qnode.values))
                ]
                step_info["posterior"] = {pm.query: normalise_log(log_joint_query)}
            evidence += total
        else:
            evidence += total
            if BELIEF in nodes and not nodes[BELIEF].observed:
                bvals = nodes[BELIEF].values
                marg = [(bvals[k], logsumexp([lw for idx, lw in rows if idx[BELIEF] == k]) - total)
                        for k in domain[BELIEF]]
                probs_b = normalise_log([lp for _, lp in marg])
                step_info["posterior"] = {BELIEF: dict(zip([v for v, _ in marg], probs_b))}
                if cfg.carry_rule == "eager":
                    marg, info = _approximate_carried(marg, cfg)
                    step_info.update(info)
                message = marg
            elif BELIEF in nodes:
                message = [(nodes[BELIEF].values[0], 0.0)]
            else:
                message = None
        steps_trace.append(step_info)
    return _Chain(evidence, log_joint_query, steps_trace, calls)
