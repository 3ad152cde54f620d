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


def _frozen(path: str | None, category: str) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(style coefficients, their centre) of one category in an earlier results.json."""
    if path is None:
        return None, None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    block = (data.get("categories") or {}).get(category, data)
    coef = block.get("style_coefficients") if isinstance(block, dict) else None
    if not isinstance(coef, dict) or not coef:
        raise UserFacingError(f"{path}: no style_coefficients for category {category!r}; give the results.json "
                              "of an earlier arena run on the same categories")
    centre = block.get("style_centre")
    return ({str(k): float(v) for k, v in coef.items()},
            {str(k): float(v) for k, v in centre.items()} if isinstance(centre, dict) else None)


def arena_hard_folder(folder: str, answer_files: tuple[str, ...], baseline: str | None,
                      category_baselines: tuple[str, ...], judgments_from: str | None, freeze_style: str | None,
                      export_dir: str | None, judge_spec: str, base_url: str | None, cache_path: str | None,
                      no_cache: bool, offline: bool, out_dir: str, max_tokens: int, retries: int, samples: int,
                      seed: int, limit: int | None, as_json: bool, method: str = "arena-hard-auto",
                      categories: tuple[str, ...] = ()) -> None:
    """Score (or judge, then score) an arena-hard-auto folder, one table per category.

    A category without judgments (or, when judging, without its baseline's answers) is reported on stderr,
    listed under `skipped` in results.json and left out; only a folder where nothing can be scored fails.
    """
    from thoughttrace.align import arun_games, index_answers
    from thoughttrace.align.arena_hard import (
        categories_markdown,
        read_answers,
        read_judgments,
        read_questions,
        score_by_category,
        skipped_categories,
        write_answers,
        write_judgments,
    )
    from thoughttrace.align.arena_hard import (
        category_baselines as baselines_for,
    )
    from thoughttrace.align.records import iter_jsonl, write_json

    from .align import durable_usage, finish_usage

    root = Path(folder)
    qs = read_questions(root)
    if categories:
        known = sorted({q.category or "uncategorised" for q in qs})
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise UserFacingError(f"--category {', '.join(unknown)}: not in {root / 'question.jsonl'}; "
                                  f"its categories are {', '.join(known)}")
        qs = [q for q in qs if (q.category or "uncategorised") in categories]
    qs = qs[:limit] if limit is not None else qs
    sources = list(answer_files) or [str(root / "model_answer")]
    answers = index_answers([a for f in sources for a in read_answers(f)])
    baselines = baselines_for(qs, _pairs(category_baselines), baseline)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    usage: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if judgments_from:
        jdir = root / "model_judgment" / judgments_from
        if not jdir.is_dir():
            raise UserFacingError(f"{jdir}: no such folder; --judgments-from names a folder under model_judgment/")
        keep = {q.question_id for q in qs}
        judgments = [j for j in read_judgments(jdir) if j.question_id in keep]
    else:
        judge = build_model(judge_spec, base_url, cache_path, no_cache, offline)
        recorder = durable_usage(judge, out / "usage.jsonl")
        judgments = []
        for cat, base in baselines.items():
            cat_qs = [q for q in qs if (q.category or "uncategorised") == cat]
            if base not in answers:
                skipped[cat] = f"no answers from its baseline {base!r}"
                continue
            judgments += judge.run(arun_games(cat_qs, answers, base, judge, out=out / "judgments.jsonl",
                                              max_tokens=max_tokens, retries=retries))
        usage = finish_usage(recorder, print_usage(judge))
    for cat, why in skipped_categories(judgments, qs, baselines).items():
        skipped.setdefault(cat, why)
    for cat, why in skipped.items():
        click.echo(f"category {cat!r}: {why}; skipped (--category picks the ones to score)", err=True)
    results = {}
    for cat, base in baselines.items():
        if cat in skipped:
            continue
        coef, centre = _frozen(freeze_style, cat)
        part = score_by_category(judgments, answers, qs, {cat: base}, samples=samples, seed=seed,
                                 frozen_style=coef, frozen_centre=centre, method=method)
        results.update(part)
    if not results:
        raise UserFacingError(f"{root}: no category can be scored ({'; '.join(f'{c}: {w}' for c, w in skipped.items())})"
                              "; check --judgments-from, --baseline / --category-baseline")
    table = categories_markdown(results)
    if usage:
        table += f"\nUsage (all runs into {out}, resumes included): {usage['summary']}\n"
    payload = {"format_version": 1, "source": str(root), "baselines": baselines, "method": method,
               "categories": {c: r.as_dict() for c, r in results.items()}, "skipped": skipped, "usage": usage}
    write_json(payload, out / "results.json")
    (out / "results.md").write_text(table, encoding="utf-8")
    if export_dir:
        exp = Path(export_dir)
        write_answers([a for m in answers.values() for a in m.values()], qs, exp / "model_answer")
        write_judgments(judgments, qs, exp / "model_judgment")
        keep = {q.question_id for q in qs}
        (exp / "question.jsonl").write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n"
                                                      for _, rec in iter_jsonl(root / "question.jsonl")
                                                      if str(rec.get("uid", rec.get("question_id"))) in keep),
                                             encoding="utf-8")  # the lines as read: every field kept
    if as_json:
        echo_json(payload)
    else:
        click.echo(table, nl=False)
