"""The generative model: variables, the parent graph, the model space, and a problem's grounded model.

Kept apart from inference (inference.py) so that either can be tested alone: a `ProblemModel` is plain
data (which variables exist at which timestep, observed text or hypotheses), and the inference only
needs it plus a factor function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

STATE, OBS, BELIEF, ACTION, GOAL, UTTER = "State", "Observation", "Belief", "Action", "Goal", "Utterance"
PREV_BELIEF = "PrevBelief"
#: the full model space; State is always kept (the world the story describes)
ALL_VARIABLES: tuple[str, ...] = (STATE, OBS, BELIEF, ACTION, GOAL, UTTER)
SHORT = {"S": STATE, "O": OBS, "B": BELIEF, "A": ACTION, "G": GOAL, "U": UTTER}
#: the POMDP parent graph (plus utterances): O<-S, B<-{B_prev,O}, A<-{G,B}, U<-{G,B}
BASE_PARENTS: dict[str, tuple[str, ...]] = {
    STATE: (),
    OBS: (STATE,),
    PREV_BELIEF: (),
    BELIEF: (PREV_BELIEF, OBS),
    GOAL: (),
    ACTION: (GOAL, BELIEF),
    UTTER: (GOAL, BELIEF),
}
#: mental variables never take State as a parent, even after rewriting: the agent sees the world only
#: through its Observation (the guard against omniscient leakage)
MENTAL = frozenset({BELIEF, GOAL, ACTION, UTTER})
#: query variables the question parser may name, mapped onto the slot of the model they occupy
QUERY_SLOTS = {
    "belief": BELIEF, "belief_of_goal": BELIEF, "emotion": BELIEF, "state": BELIEF, "other": BELIEF,
    "goal": GOAL, "action": ACTION, "utterance": UTTER,
}


def normalise_name(name: str) -> str | None:
    """'B', 'belief', 'Beliefs' -> 'Belief'; unknown names -> None."""
    key = name.strip()
    if key in SHORT:
        return SHORT[key]
    low = key.lower().rstrip("s")
    for var in ALL_VARIABLES:
        if var.lower() == low:
            return var
    return None


def repair(variables: Iterable[str], query: str, observed: Iterable[str] = ()) -> frozenset[str]:
    """The nearest valid model: known names only, plus State, the query and variables the question fixes."""
    names = {n for n in (normalise_name(v) for v in variables) if n is not None}
    names |= {STATE, query}
    names |= set(observed)
    return frozenset(names)


def answerable(variables: Iterable[str], query: str) -> bool:
    """Whether a model can move the query off its prior: the query has a parent (a Goal, a root, needs a
    child instead: an Action or an Utterance that it explains)."""
    present = set(variables)
    if query not in present:
        return False
    if query == GOAL:
        return bool(present & {ACTION, UTTER})
    return bool(parent_graph(present)[query])


def valid_model(variables: Iterable[str], query: str, *, prefer_utterance: bool = False) -> frozenset[str]:
    """The nearest valid model (fewest variables added), as the method repairs a proposed model:

    - State and the query are always in;
    - a Goal needs something it explains: an Action (an Utterance when the story has only utterances);
    - an Action or Utterance query needs a Belief (its parent) and a Belief needs its Observation;
    so the query always has a parent (or, for a Goal, a child) and never gets a uniform posterior by
    construction.
    """
    v = set(variables) | {STATE, query}
    if GOAL in v and not v & {ACTION, UTTER}:
        v.add(UTTER if prefer_utterance else ACTION)
    if query in (ACTION, UTTER) and not v & {BELIEF, GOAL}:
        v.add(BELIEF)
    if BELIEF in v:
        v.add(OBS)
    out = frozenset(v)
    assert answerable(out, query), (out, query)  # the rules above guarantee it
    return out


def parent_graph(variables: Iterable[str], with_prev_belief: bool = False) -> dict[str, tuple[str, ...]]:
    """Parents of each present variable after rewriting out the absent ones.

    An absent variable is bypassed: its children inherit its (present, or recursively bypassed) parents;
    edges from State into mental variables are dropped. E.g. without Observation, Belief keeps only the
    previous belief (it is then inferred from actions), never the omniscient state.
    """
    present = set(variables)
    if with_prev_belief and BELIEF in present:
        present.add(PREV_BELIEF)

    def resolve(parent: str, seen: frozenset[str]) -> list[str]:
        if parent in present:
            return [parent]
        if parent in seen:
            return []
        out: list[str] = []
        for grand in BASE_PARENTS.get(parent, ()):
            out.extend(resolve(grand, seen | {parent}))
        return out

    graph: dict[str, tuple[str, ...]] = {}
    for var in present:
        parents: list[str] = []
        for p in BASE_PARENTS.get(var, ()):
            for q in resolve(p, frozenset({var})):
                if q == STATE and var in MENTAL:
                    continue
                if q not in parents and q != var:
                    parents.append(q)
        graph[var] = tuple(parents)
    return graph


def topological(graph: dict[str, tuple[str, ...]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(v: str) -> None:
        if v in done:
            return
        done.add(v)
        for p in graph.get(v, ()):
            visit(p)
        order.append(v)

    for v in sorted(graph, key=lambda n: ([*ALL_VARIABLES, PREV_BELIEF].index(n) if n in ALL_VARIABLES or n == PREV_BELIEF else 99)):
        visit(v)
    return order


@dataclass
class Node:
    """A variable at one timestep: observed text (one value) or latent hypotheses with an optional prior."""

    name: str
    values: list[str]
    observed: bool = False
    prior: list[float] | None = None

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"variable {self.name} has no values")
        if self.observed and len(self.values) != 1:
            raise ValueError(f"observed variable {self.name} must have exactly one value")
        if self.prior is not None and len(self.prior) != len(self.values):
            raise ValueError(f"prior of {self.name} has {len(self.prior)} entries for {len(self.values)} values")


@dataclass
class StepModel:
    """The variables present at one timestep (PrevBelief is added by the inference)."""

    index: int
    nodes: dict[str, Node]

    def names(self) -> list[str]:
        return list(self.nodes)


@dataclass
class ProblemModel:
    """A grounded model: timesteps, the query variable (at the last step, or the constant Goal), and
    constant variables (Goal) shared by every step."""

    agent: str
    steps: list[StepModel]
    query: str
    constant: dict[str, Node] = field(default_factory=dict)
    context: str = ""

    @property
    def query_values(self) -> list[str]:
        if self.query in self.constant:
            return self.constant[self.query].values
        return self.steps[-1].nodes[self.query].values

    def size(self) -> int:
        names = set(self.constant)
        for s in self.steps:
            names |= set(s.nodes)
        return len(names)
