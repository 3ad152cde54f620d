"""What every method returns: a posterior over the choices, the answer (ties reported), a trace, usage."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from .inference import ties as tied_indices
from .items import letter
from .usage import QuestionUsage


class Answer(BaseModel):
    format_version: int = 1
    method: str
    choices: list[str]
    posterior: list[float]
    answer: int
    letter: str
    ties: list[int]
    least_likely: bool = False
    trace: dict[str, Any] = Field(default_factory=dict)
    usage: QuestionUsage = Field(default_factory=QuestionUsage)
    error: str | None = None

    @classmethod
    def from_posterior(cls, method: str, choices: list[str], posterior: list[float], *, least: bool = False,
                       trace: dict[str, Any] | None = None, usage: QuestionUsage | None = None,
                       error: str | None = None, candidates: list[int] | None = None) -> Answer:
        """argmax (argmin for 'least likely'); a tie keeps every tied index in `ties`, the first is shown.
        `candidates`: the choices that can be answered (default all); one left out of the inference (posterior 0)
        is never the answer, not even the argmin."""
        total = sum(posterior)
        post = [p / total for p in posterior] if total > 0 else [1.0 / len(choices)] * len(choices)
        pool = sorted(set(candidates)) if candidates else list(range(len(choices)))
        tied = [pool[i] for i in tied_indices([post[i] for i in pool], least=least)]
        return cls(method=method, choices=choices, posterior=post, answer=tied[0], letter=letter(tied[0]),
                   ties=tied, least_likely=least, trace=trace or {}, usage=usage or QuestionUsage(), error=error)

    @property
    def is_tie(self) -> bool:
        return len(self.ties) > 1

    def summary(self) -> str:
        kind = "least likely" if self.least_likely else "answer"
        tie = f" (tie between {', '.join(letter(i) for i in self.ties)})" if self.is_tie else ""
        return f"{kind}: {self.letter}. {self.choices[self.answer]}{tie}"

    def explain(self) -> str:
        """The trace as readable text (what `tom solve --explain` prints)."""
        lines = [self.summary(), "", "posterior:"]
        for i, (c, p) in enumerate(zip(self.choices, self.posterior)):
            lines.append(f"  {letter(i)}. {p:6.3f}  {c}")
        t = self.trace
        if "question" in t:
            q = t["question"].get("result", {})
            lines += ["", f"question parse ({q.get('source')}): agents={q.get('agents')} variable={q.get('variable')} "
                      f"known={[k['value'] for k in q.get('known', [])]} least_likely={q.get('least_likely')}"]
        if "timeline" in t:
            lines += ["", f"timeline ({len(t['timeline'])} steps):"]
            for s in t["timeline"]:
                lines.append(f"  step {s['index']}: observation={_short(s['observation'])} action={_short(s['action'])}"
                             f" utterance={_short(s['utterance'])}")
        bos = t.get("belief_of_state")
        if isinstance(bos, dict) and "outer_posterior" in bos:
            lines += ["", f"belief of state ({bos['outer']} about {bos['inner']}):"]
            for s in bos["outer_posterior"]:
                post = ", ".join(f"{_short(k, 40)}={p:.2f}" for k, p in s["posterior"].items())
                lines.append(f"  step {s['step']}: what {bos['outer']} believes is true: {post}")
            if bos.get("inner_belief"):
                post = ", ".join(f"{_short(k, 50)}={p:.2f}" for k, p in bos["inner_belief"].items())
                lines.append(f"  what {bos['outer']} believes {bos['inner']} believes: {post}")
            if bos.get("note"):
                lines.append(f"  note: {bos['note']}")
        if "hypotheses" in t and t["hypotheses"]:
            lines += ["", "hypotheses:"] + [f"  {k}: {v}" for k, v in t["hypotheses"].items()]
        if "discovery" in t:
            d = t["discovery"]
            lines += ["", f"model discovery (stopped: {d['stopped_because']}), chosen model {d['model']}:"]
            for h in d["history"]:
                if "posterior" in h:
                    post = ", ".join(f"{p:.2f}" for p in h["posterior"])
                    lines.append(f"  {h['phase']:<20} {h['model']:<55} U={h['utility']:.3f}  P=[{post}]")
        if "inference" in t:
            lines += ["", "likelihoods of the chosen model:"]
            for chain in t["inference"]:
                given = f" given {chain['given']}" if chain["given"] else ""
                for s in chain["steps"]:
                    for f in s["factors"]:
                        pa = "; ".join(f"{k}={_short(v, 40)}" for k, v in f["parents"].items())
                        lines.append(f"  step {s['index']}{given}: P({f['variable']}={_short(f['value'], 50)} | {pa}) = {f['p']:.3f}")
                    if s.get("pruned"):
                        lines.append(f"  step {s['index']}: pruned {s['pruned']}")
        if "reasoning" in t:
            lines += ["", "reasoning:", t["reasoning"]]
        u = self.usage
        lines += ["", f"usage: {u.calls} calls, {u.cache_hits} cache hits, {u.tokens} tokens, {u.seconds:.1f} s"]
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False)


def _short(text: Any, n: int = 70) -> str:
    if text is None:
        return "-"
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"
