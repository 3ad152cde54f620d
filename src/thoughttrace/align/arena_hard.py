"""arena-hard-auto interoperability: read and write its question, answer and judgment files (v0.1 and v2).

The layout of an arena-hard-auto data folder (`data/<bench>/`):
- `question.jsonl`: `{uid, category, prompt}` (v2 adds `subcategory`; v0.1 has `cluster`);
- `model_answer/<model>.jsonl`: `{uid, ans_id, model, messages: [{role: user, content}, {role: assistant,
  content: {answer}}], tstamp, metadata: {token_len, header_count: {h1..h6}, list_count: {ordered,
  unordered}, bold_count: {"**", "__"}}}`; the metadata is what its style control uses. Older v0.1 answer
  files have `{question_id, answer_id, model_id, choices: [{turns: [{content, token_len}]}]}`; both read.
- `model_judgment/<judge>/<model>.jsonl`: `{uid, category, judge, model, baseline, games: [g1, g2]}`, game 1
  with the baseline as A and game 2 swapped, each `{score: "A>B" ..., judgment: {answer}, prompt}`.

Each category is scored against its own baseline (`resources/arena_hard_baselines.yaml`, as v2 does), so a
folder of arena-hard-auto files gives a table per category comparable with its `show_result.py`.
Style features from its metadata are used as they are (token_len is its tokenizer's count); an answer
without metadata is counted by `align.style` (whitespace words). The export writes every line it read back
as read (ans_id, tstamp, metadata and any other field); only answers made here get computed metadata.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from thoughttrace.data.io import iter_json_objects

from .answers import Answer, Question
from .judge import Judgment
from .records import AlignError, read_resource
from .style import _BOLD, _CODE, style_counts

#: arena-hard-auto's verdict spellings -> ours (it also writes A<B for B>A and the like)
_VERDICTS = {"A>>B": "A>>B", "A>B": "A>B", "A=B": "A=B", "B>A": "B>A", "B>>A": "B>>A",
             "A<B": "B>A", "A<<B": "B>>A", "B<A": "A>B", "B<<A": "A>>B", "B=A": "A=B"}


def default_baselines() -> dict[str, str]:
    data = yaml.safe_load(read_resource("resources/arena_hard_baselines.yaml"))
    return {str(k): str(v) for k, v in data["baselines"].items()}


def _read_lines(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    return iter_json_objects(path, error=AlignError)


def read_questions(folder: str | Path) -> list[Question]:
    path = Path(folder) / "question.jsonl"
    if not path.exists():
        raise AlignError(f"{folder}: no question.jsonl; point at an arena-hard-auto data folder (data/<bench>/)")
    return [Question.model_validate(rec) for _, rec in _read_lines(path)]


def style_from_metadata(md: Any) -> dict[str, float] | None:
    """Our style features from arena-hard-auto's answer metadata (None when it has none)."""
    if not isinstance(md, dict) or "token_len" not in md:
        return None

    def total(v: Any) -> float:
        return float(sum(v.values())) if isinstance(v, dict) else float(v or 0)

    return {"length": float(md["token_len"]), "headers": total(md.get("header_count")),
            "lists": total(md.get("list_count")), "bold": total(md.get("bold_count"))}


def arena_metadata(text: str) -> dict[str, Any]:
    """arena-hard-auto's metadata shape for an answer (token_len as whitespace words: no tokenizer here)."""
    import re

    prose = _CODE.sub("", text)
    headers = {f"h{i}": len(re.findall(rf"^{'#' * i}\s+\S", prose, re.MULTILINE)) for i in range(1, 7)}
    return {"token_len": int(style_counts(text)["length"]), "header_count": headers,
            "list_count": {"ordered": len(re.findall(r"^\s*\d+[.)]\s+\S", prose, re.MULTILINE)),
                           "unordered": len(re.findall(r"^\s*[-*+]\s+\S", prose, re.MULTILINE))},
            "bold_count": {"**": sum(1 for m in _BOLD.findall(prose) if m.startswith("**")),
                           "__": sum(1 for m in _BOLD.findall(prose) if m.startswith("__"))}}


def answer_from_record(rec: dict[str, Any], where: str) -> Answer:
    """One answer line of either arena-hard-auto format (v2/current: uid+messages; old v0.1: question_id+choices)."""
    if "uid" in rec and "messages" in rec:
        msgs = rec["messages"]
        last = msgs[-1] if isinstance(msgs, list) and msgs else None
        content = last.get("content") if isinstance(last, dict) else None
        text = content.get("answer") if isinstance(content, dict) else content
        if not isinstance(text, str) or "model" not in rec:
            raise AlignError(f"{where}: expected messages[-1].content.answer (text) and model")
        return Answer(question_id=str(rec["uid"]), model=str(rec["model"]), answer=text,
                      generator=f"arena-hard-auto:{rec['model']}", style=style_from_metadata(rec.get("metadata")),
                      source=rec)
    if "question_id" in rec and "choices" in rec:
        try:
            turn = rec["choices"][0]["turns"][0]
        except (KeyError, IndexError, TypeError):
            raise AlignError(f"{where}: expected choices[0].turns[0].content") from None
        text = turn.get("content") if isinstance(turn, dict) else turn
        model = rec.get("model_id") or rec.get("model")
        if not isinstance(text, str) or not model:
            raise AlignError(f"{where}: expected choices[0].turns[0].content (text) and model_id")
        style = None
        if isinstance(turn, dict) and "token_len" in turn:
            style = style_counts(text) | {"length": float(turn["token_len"])}
        return Answer(question_id=str(rec["question_id"]), model=str(model), answer=text,
                      generator=f"arena-hard-auto:{model}", style=style, source=rec)
    if "question_id" in rec and "answer" in rec and "model" in rec:
        return Answer.model_validate(rec)  # our own answers format
    raise AlignError(f"{where}: not an arena-hard-auto answer (uid + model + messages, or question_id + "
                     "model_id + choices) nor a ThoughtTrace answer (question_id + model + answer)")


def read_answers(path: str | Path) -> list[Answer]:
    """An answers file, or every `*.jsonl` of a `model_answer/` folder."""
    p = Path(path)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise AlignError(f"{p}: no answer files (*.jsonl)")
    return [answer_from_record(rec, f"{f}: line {no}") for f in files for no, rec in _read_lines(f)]


def _source_text(src: dict[str, Any]) -> str | None:
    try:
        return answer_from_record(src, "source").answer
    except AlignError:
        return None


def _answer_record(a: Answer, prompt: str) -> dict[str, Any]:
    """The arena-hard-auto line for one answer: the line it was read from, unchanged, unless it is new.

    A v0.1 line is carried over to the current layout keeping its values (answer_id -> ans_id, tstamp,
    token_len); only the Markdown counts it never had are computed. An answer made here gets fresh
    metadata (token_len = whitespace words), a name-based ans_id and the time of writing.
    """
    src = a.source
    if src is not None and _source_text(src) == a.answer:
        if "uid" in src and "messages" in src:
            return src
        md = arena_metadata(a.answer)
        if a.style is not None:
            md["token_len"] = int(a.style["length"])
        rec = {"uid": a.question_id, "ans_id": src.get("answer_id"), "model": a.model,
               "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": {"answer": a.answer}}],
               "tstamp": src.get("tstamp"), "metadata": md}
        return rec | {k: v for k, v in src.items() if k not in {"question_id", "answer_id", "model_id", "choices",
                                                                  "tstamp", *rec}}
    md = arena_metadata(a.answer)
    if a.style is not None:
        md["token_len"] = int(a.style["length"])
    return {"uid": a.question_id, "ans_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{a.model}/{a.question_id}").hex,
            "model": a.model, "messages": [{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": {"answer": a.answer}}],
            "tstamp": time.time(), "metadata": md}


def write_answers(answers: Sequence[Answer], questions: Sequence[Question], out_dir: str | Path) -> list[Path]:
    """`<out_dir>/<model>.jsonl` per model in arena-hard-auto's current format (lines read from it kept as read)."""
    prompts = {q.question_id: q.prompt for q in questions}
    by_model: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        by_model[a.model].append(a)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for model, rows in by_model.items():
        path = out / f"{model}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for a in rows:
                fh.write(json.dumps(_answer_record(a, prompts.get(a.question_id, "")), ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


def _verdict(game: Any, where: str) -> str | None:
    if not isinstance(game, dict) or game.get("score") is None:
        return None  # a null game: arena-hard-auto drops it too
    v = _VERDICTS.get(str(game["score"]).strip())
    if v is None:
        raise AlignError(f"{where}: unknown verdict {game['score']!r}; expected one of {sorted(_VERDICTS)}")
    return v


def _raw(game: Any) -> str:
    if not isinstance(game, dict):
        return ""
    j = game.get("judgment")
    return str(j.get("answer", "")) if isinstance(j, dict) else str(j or "")


def read_judgments(path: str | Path) -> list[Judgment]:
    """arena-hard-auto judgment files (a file, or a `model_judgment/<judge>/` folder) as our games."""
    p = Path(path)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    out: list[Judgment] = []
    for f in files:
        for no, rec in _read_lines(f):
            where = f"{f}: line {no}"
            for key in ("uid", "model", "baseline", "games"):
                if key not in rec:
                    raise AlignError(f"{where}: an arena-hard-auto judgment needs {key!r}")
            games = rec["games"] if isinstance(rec["games"], list) else []
            if len(games) != 2:
                raise AlignError(f"{where}: expected two games (baseline first, then swapped), got {len(games)}")
            judge = str(rec.get("judge", f.parent.name))
            line = {k: v for k, v in rec.items() if k != "games"}
            for game, (a, b) in ((1, (rec["baseline"], rec["model"])), (2, (rec["model"], rec["baseline"]))):
                g = games[game - 1]
                out.append(Judgment(question_id=str(rec["uid"]), game=game, model_a=str(a), model_b=str(b),
                                    judge=judge, verdict=_verdict(g, f"{where}: games[{game - 1}]"),  # type: ignore[arg-type]
                                    attempts=1, raw=_raw(g), source={"line": line, "game": g}))
    return out


def _game_out(g: Judgment | None) -> dict[str, Any] | None:
    if g is None:
        return None
    if g.source is not None:
        return g.source["game"]  # type: ignore[no-any-return]  # read from arena-hard-auto: as it was
    return {"score": g.verdict, "judgment": {"answer": g.raw}, "prompt": None}


def write_judgments(judgments: Sequence[Judgment], questions: Sequence[Question], out_dir: str | Path,
                    judge_name: str | None = None) -> list[Path]:
    """Our games as arena-hard-auto judgment files: `<out_dir>/<judge>/<model>.jsonl`, two games a line."""
    cats = {q.question_id: q.category for q in questions}
    pairs: dict[tuple[str, str, str, str], dict[int, Judgment]] = defaultdict(dict)
    for j in judgments:
        baseline, model = (j.model_a, j.model_b) if j.game == 1 else (j.model_b, j.model_a)
        pairs[(j.judge, j.question_id, model, baseline)][j.game] = j
    out = Path(out_dir)
    paths: dict[Path, list[str]] = defaultdict(list)
    for (judge, qid, model, baseline), games in pairs.items():
        name = judge_name or judge.replace("/", "_").replace(":", "_")

        rec: dict[str, Any] = {"uid": qid, "category": cats.get(qid), "judge": name, "model": model,
                               "baseline": baseline}
        read = next((g.source["line"] for g in games.values() if g.source is not None), None)
        if read is not None and judge_name in (None, read.get("judge")):
            rec = dict(read)  # the line's own fields (judge, category, any extra) as read
        rec["games"] = [_game_out(games.get(1)), _game_out(games.get(2))]
        paths[out / name / f"{model}.jsonl"].append(json.dumps(rec, ensure_ascii=False))
    for path, lines in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sorted(paths)


def category_baselines(questions: Sequence[Question], overrides: dict[str, str] | None = None,
                       baseline: str | None = None) -> dict[str, str]:
    """category -> baseline model for the categories of `questions` (--baseline sets all of them)."""
    table = default_baselines() | (overrides or {})
    out = {}
    for cat in sorted({q.category or "uncategorised" for q in questions}):
        b = baseline or table.get(cat)
        if b is None:
            raise AlignError(f"no baseline for category {cat!r}; pass --baseline MODEL or "
                             f"--category-baseline {cat}=MODEL")
        out[cat] = b
    return out


def _judged_in(judgments: Sequence[Judgment], questions: Sequence[Question], cat: str, base: str) -> list[Judgment]:
    cat_of = {q.question_id: q.category or "uncategorised" for q in questions}
    return [j for j in judgments if cat_of.get(j.question_id) == cat and base in (j.model_a, j.model_b)]


def skipped_categories(judgments: Sequence[Judgment], questions: Sequence[Question],
                       baselines: dict[str, str]) -> dict[str, str]:
    """category -> why it cannot be scored (no judgment against its baseline); the others are scored."""
    return {cat: f"no judgment against its baseline {base!r}" for cat, base in baselines.items()
            if not _judged_in(judgments, questions, cat, base)}


def score_by_category(judgments: Sequence[Judgment], answers: dict[str, dict[str, Answer]],
                      questions: Sequence[Question], baselines: dict[str, str], *, samples: int = 100,
                      seed: int = 0, frozen_style: dict[str, float] | None = None,
                      frozen_centre: dict[str, float] | None = None, method: str = "arena-hard-auto",
                      ) -> dict[str, Any]:
    """One ArenaResult per category with judgments, each against that category's baseline (games with it only).

    Categories without judgments are left out (`skipped_categories` says which and why); none at all is an error.
    """
    from .arena import score_arena

    out = {}
    for cat, base in baselines.items():
        mine = _judged_in(judgments, questions, cat, base)
        if not mine:
            continue
        if base not in answers:
            raise AlignError(f"category {cat!r}: no answers from its baseline {base!r}; add model_answer/{base}.jsonl "
                             "or pass --baseline / --category-baseline")
        out[cat] = score_arena(mine, answers, base, samples=samples, seed=seed, frozen_style=frozen_style,
                               frozen_centre=frozen_centre, method=method)
    if not out:
        raise AlignError("no judgment involves a category's baseline; check --baseline / --category-baseline")
    return out


def categories_markdown(results: dict[str, Any]) -> str:
    from .arena import results_markdown

    parts = []
    for cat, res in results.items():
        parts += [f"## Category: {cat} (baseline `{res.baseline}`)", "", results_markdown(res)]
    return "\n".join(parts)
