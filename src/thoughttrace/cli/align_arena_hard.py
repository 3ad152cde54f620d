"""`thoughttrace align arena DATA_FOLDER`: an arena-hard-auto data folder in, per-category tables out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import UserFacingError, build_model, echo_json, print_usage


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise UserFacingError(f"--category-baseline {item!r}: write CATEGORY=MODEL")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _frozen(path: str | None, category: str) -> dict[str, float] | None:
    if path is None:
        return None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    block = (data.get("categories") or {}).get(category, data)
    coef = block.get("style_coefficients") if isinstance(block, dict) else None
    if not isinstance(coef, dict) or not coef:
        raise UserFacingError(f"{path}: no style_coefficients for category {category!r}; give the results.json "
                              "of an earlier arena run on the same categories")
    return {str(k): float(v) for k, v in coef.items()}


def arena_hard_folder(folder: str, answer_files: tuple[str, ...], baseline: str | None,
                      category_baselines: tuple[str, ...], judgments_from: str | None, freeze_style: str | None,
                      export_dir: str | None, judge_spec: str, base_url: str | None, cache_path: str | None,
                      no_cache: bool, offline: bool, out_dir: str, max_tokens: int, retries: int, samples: int,
                      seed: int, limit: int | None, as_json: bool) -> None:
    """Score (or judge, then score) an arena-hard-auto folder, one table per category."""
    from thoughttrace.align import arun_games, index_answers
    from thoughttrace.align.arena_hard import (
        categories_markdown,
        read_answers,
        read_judgments,
        read_questions,
        score_by_category,
        write_answers,
        write_judgments,
    )
    from thoughttrace.align.arena_hard import (
        category_baselines as baselines_for,
    )
    from thoughttrace.align.records import write_json

    root = Path(folder)
    qs = read_questions(root)[:limit] if limit is not None else read_questions(root)
    sources = list(answer_files) or [str(root / "model_answer")]
    answers = index_answers([a for f in sources for a in read_answers(f)])
    baselines = baselines_for(qs, _pairs(category_baselines), baseline)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    usage: dict[str, Any] = {}
    if judgments_from:
        jdir = root / "model_judgment" / judgments_from
        if not jdir.is_dir():
            raise UserFacingError(f"{jdir}: no such folder; --judgments-from names a folder under model_judgment/")
        keep = {q.question_id for q in qs}
        judgments = [j for j in read_judgments(jdir) if j.question_id in keep]
    else:
        judge = build_model(judge_spec, base_url, cache_path, no_cache, offline)
        judgments = []
        for cat, base in baselines.items():
            cat_qs = [q for q in qs if (q.category or "uncategorised") == cat]
            if base not in answers:
                raise UserFacingError(f"category {cat!r}: no answers from its baseline {base!r}")
            judgments += judge.run(arun_games(cat_qs, answers, base, judge, out=out / "judgments.jsonl",
                                              max_tokens=max_tokens, retries=retries))
        usage = print_usage(judge)
    results = {}
    for cat, base in baselines.items():
        part = score_by_category(judgments, answers, qs, {cat: base}, samples=samples, seed=seed,
                                 frozen_style=_frozen(freeze_style, cat))
        results.update(part)
    table = categories_markdown(results)
    payload = {"format_version": 1, "source": str(root), "baselines": baselines,
               "categories": {c: r.as_dict() for c, r in results.items()}, "usage": usage}
    write_json(payload, out / "results.json")
    (out / "results.md").write_text(table, encoding="utf-8")
    if export_dir:
        exp = Path(export_dir)
        write_answers([a for m in answers.values() for a in m.values()], qs, exp / "model_answer")
        write_judgments(judgments, qs, exp / "model_judgment")
        (exp / "question.jsonl").write_text("".join(json.dumps({"uid": q.question_id, "category": q.category,
                                                                 "prompt": q.prompt}, ensure_ascii=False) + "\n"
                                                      for q in qs), encoding="utf-8")
    if as_json:
        echo_json(payload)
    else:
        click.echo(table, nl=False)
