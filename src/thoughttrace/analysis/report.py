"""Analysis 6: one self-contained report.html built from stats.json and the saved figures.

Self-contained: figures are embedded as base64 PNG, the CSS is inline, nothing is fetched, so the file
opens offline and can be mailed. Every number shown comes from the stats dictionary also written to
stats.json; every figure listed in stats["figures"] appears exactly once as an <img>.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from string import Template
from typing import Any

from thoughttrace import __version__
from thoughttrace.data.intervals import SMALL_CELL

SECTIONS = [("overview", "Overview"), ("types", "Thought types"), ("stages", "Stages"),
            ("relations", "Turn relations"), ("semantic", "Semantic shift")]


def _e(x: Any) -> str:
    return html.escape(str(x))


def _pct(x: float | None) -> str:
    return "\u2013" if x is None else f"{100 * x:.1f}%"


class Small(str):
    """A cell's text from fewer than SMALL_CELL items: rendered greyed (`td.small`) with a `*`."""


def _pct_ci(table: Mapping[str, Any], label: str) -> str:
    """`share [low, high]` (Wilson 95%), greyed with `*` on a cell of fewer than SMALL_CELL items."""
    iv = (table.get("intervals") or {}).get(label)
    if not iv or iv.get("share") is None:
        return _pct(table["shares"].get(label)) if table.get("n") else "\u2013"
    text = f"{100 * iv['share']:.1f}% [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]"
    return Small(text + "*") if iv.get("small") else text


SMALL_NOTE = ('<p class="note">Shares: share [Wilson 95% interval]; n beside every table; '
              f'<span class="small">greyed, with <b>*</b></span>: a cell of fewer than {SMALL_CELL} items, '
              'too small to read much into.</p>')


def _cell(c: Any) -> str:
    return f'<td class="small">{_e(c)}</td>' if isinstance(c, Small) else f"<td>{_e(c)}</td>"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _with_count(share: str, count: int) -> str:
    """`share (count)`, keeping a small cell small."""
    text = f"{share} ({count:,})"
    return Small(text) if isinstance(share, Small) else text


def _figures(stats: Mapping[str, Any], images: Mapping[str, str], section: str) -> str:
    out = []
    for f in stats.get("figures", []):
        if f["section"] != section:
            continue
        out.append(
            f'<figure id="fig-{_e(f["id"])}"><img alt="{_e(f["title"])}" data-figure="{_e(f["id"])}" '
            f'src="data:image/png;base64,{images[f["id"]]}"><figcaption>{_e(f["title"])}. {_e(f["caption"])} '
            f'(<a href="{_e(f["svg"])}">SVG</a>, <a href="{_e(f["png"])}">PNG</a>)</figcaption></figure>'
        )
    return "\n".join(out)


def _overview(stats: Mapping[str, Any]) -> str:
    ov = stats["overview"]
    t1 = ov["table1"]
    rows = [("conversations", f"{t1['conversations']:,}"), ("users", f"{t1['users']:,}"),
            ("messages (turns)", f"{t1['messages']:,}"), ("user messages", f"{t1['user_messages']:,}"),
            ("assistant messages", f"{t1['assistant_messages']:,}"), ("thoughts", f"{t1['thoughts']:,}"),
            ("reasons", f"{t1['reasons']:,}"), ("reactions", f"{t1['reactions']:,}"), ("LLMs", f"{t1['models']:,}"),
            ("median messages / conversation", f"{t1['median_messages_per_conversation']:g}"),
            ("mean messages / conversation", f"{t1['mean_messages_per_conversation']:.2f}")]
    release = {"conversations": "2,155", "users": "1,058", "messages (turns)": "17,058", "thoughts": "10,174",
               "LLMs": "20", "median messages / conversation": "8"}
    html_rows = [(k, v, release.get(k, "")) for k, v in rows]
    parts = ["<h3>Table 1</h3>", _table(["figure", "this dataset", "release"], html_rows, "table1")]
    comp = [("this dataset", ov["messages_per_conversation"])] + list(ov.get("compare", {}).items())
    parts.append("<h3>Messages per conversation</h3>")
    parts.append(_table(["dataset", "conversations", "median", "mean", "Q1", "Q3", "max"],
                        [(n, f"{s['n']:,}", f"{s['median']:g}", f"{s['mean']:.2f}", f"{s['q1']:g}", f"{s['q3']:g}",
                          s["max"]) for n, s in comp]))
    parts.append('<p class="note">Release medians: ThoughtTrace 8, WildChat 2, LMSYS-Chat-1M 2.</p>')
    return "\n".join(parts)


def _types(stats: Mapping[str, Any]) -> str:
    parts = []
    for kind, title in (("reasons", "Reason types"), ("reactions", "Reaction types")):
        s = stats["thought_types"][kind]
        parts.append(f"<h3>{title} (n={s['n']:,}; unlabelled {s['unlabelled']:,})</h3>")
        parts.append(_table(["label", "count", "n", "share [95% CI]", "release share"],
                            [(lab, f"{s['counts'][lab]:,}", f"{s['n']:,}", _pct_ci(s, lab),
                              _pct(s["release_shares"].get(lab))) for lab in s["labels"]], f"shares-{kind}"))
        for group, group_title in (("by_model", "by model"), ("by_domain", "by domain")):
            tables = s.get(group) or {}
            if not tables:
                continue
            parts.append(f"<h4>{title} {group_title} (share, count)</h4>")
            parts.append(_table(
                [group_title.split()[-1], "n", *s["labels"]],
                [(name, f"{t['n']:,}", *(_with_count(_pct_ci(t, lab), t["counts"][lab]) for lab in s["labels"]))
                 for name, t in tables.items()],
                f"shares-{kind}-{group.replace('_', '-')}",
            ))
    parts.append(SMALL_NOTE)
    return "\n".join(parts)


def _stages(stats: Mapping[str, Any]) -> str:
    st = stats["stages"]
    parts = [f'<p class="note">Positions among the messages of the thought\'s own role '
             f'({_e(st["position"])}); each message goes to the nearest of {st["n_stages"]} points '
             f'({", ".join(st["stage_names"])}). Release: Task Motivation 57% \u2192 41% \u2192 18% \u2192 27%; '
             f'Task Continuation 4% \u2192 20% \u2192 36% \u2192 26%; Explicit Affirmation 67% \u2192 69% \u2192 76% '
             f'\u2192 79%.</p>']
    for kind in ("reasons", "reactions"):
        sec = st[kind]
        rows = [(lab, *[_pct_ci(s, lab) for s in sec["stages"]]) for lab in sec["labels"]]
        rows.append(("n", *[f"{s['n']:,}" for s in sec["stages"]]))
        parts.append(f"<h3>{kind.capitalize()}</h3>")
        parts.append(_table(["label", *st["stage_names"]], rows, f"stages-{kind}"))
    parts.append(SMALL_NOTE)
    return "\n".join(parts)


def _relations(stats: Mapping[str, Any]) -> str:
    rel = stats["relations"]
    if not rel.get("available"):
        return ('<p class="note">Not computed: turn relations are labelled by an LLM. Run '
                '<code>thoughttrace analyze FILE --out DIR --relations --model M</code>, or label them with '
                '<code>thoughttrace label FILE --kind relation --model M --out labels.jsonl</code> and pass '
                '<code>--labels labels.jsonl</code>.</p>')
    labels = rel["labels"]
    rows = [(r["turn"], f"{r['n']:,}", *[_pct_ci(r, lab) for lab in labels], r["unlabelled"])
            for r in rel["by_turn"]]
    ref = rel["release_turn2"]
    note = ", ".join(f"{k} {100 * v:.0f}%" for k, v in ref.items())
    src = rel.get("source", {})
    return (_table(["turn", "n", *labels, "unlabelled"], rows, "relations")
            + f'<p class="note">Release, turn 2: {_e(note)}. Labels: {_e(src.get("description", ""))}</p>'
            + SMALL_NOTE)


def _semantic(stats: Mapping[str, Any]) -> str:
    sem = stats["semantic"]
    if not sem.get("available"):
        return f'<p class="note">Not computed: {_e(sem.get("reason", "embeddings turned off"))}.</p>'
    rows = [(p["label"], f"{p['n']:,}", *(f"{p[k]:.3f}" if p.get(k) is not None else "\u2013"
                                           for k in ("mean", "median", "q1", "q3")))
            for p in sem["pairs"].values()]
    parts = [f'<p class="note">Embedding model: {_e(sem["model"]["spec"])} ({_e(sem["model"]["fingerprint"])}); '
             f'distance = {_e(sem["distance"])}.</p>',
             _table(["pair", "n", "mean", "median", "Q1", "Q3"], rows, "distances")]
    trows = []
    for t in sem["tests"]:
        for mode in ("unpaired", "paired"):
            r = t[mode]
            p = r.get("p_value")
            trows.append((f"{sem['pairs'][t['pair']]['label']} > {sem['pairs'][t['baseline']]['label']}",
                          r["test"], r.get("n", r.get("n1", "")) if mode == "paired" else f"{r['n1']} vs {r['n2']}",
                          "\u2013" if p is None else f"{p:.3g}",
                          "\u2013" if r.get("rank_biserial") is None else f"{r['rank_biserial']:+.3f} ({r['effect']})"))
    parts.append("<h3>Tests (one-sided: the thought pair shifts more than consecutive messages)</h3>")
    parts.append(_table(["hypothesis", "test", "n", "p", "rank-biserial r"], trows, "tests"))
    verdict = []
    for t in sem["tests"]:
        ok = t["supports_release_claim"]
        verdict.append(f'<span class="{"ok" if ok else "no"}">{_e(sem["pairs"][t["pair"]]["label"])}: '
                       f'{"supports" if ok else "does not support"}</span>')
    parts.append("<p>Release claim (thoughts shift more than consecutive messages): " + "; ".join(verdict) + "</p>")
    parts.append(f'<p class="note">Projection: {_e(sem["projection"]["note"])} ({sem["projection"]["points"]} points).</p>')
    return "\n".join(parts)


BUILDERS = {"overview": _overview, "types": _types, "stages": _stages, "relations": _relations, "semantic": _semantic}


def render_report(stats: Mapping[str, Any], images: Mapping[str, str], title: str = "ThoughtTrace analysis") -> str:
    """The report's HTML text."""
    body = []
    for sid, heading in SECTIONS:
        body.append(f'<section id="{sid}"><h2>{_e(heading)}</h2>\n{BUILDERS[sid](stats)}\n{_figures(stats, images, sid)}'
                    "</section>")
    inp = stats.get("input", {})
    subtitle = (f"{_e(inp.get('path', ''))} \u00b7 {stats['overview']['table1']['conversations']:,} conversations "
                f"\u00b7 thoughttrace {_e(__version__)} \u00b7 stats format v{stats['format_version']}")
    nav = "".join(f'<a href="#{sid}">{_e(h)}</a>' for sid, h in SECTIONS)
    tmpl = Template(resources.files("thoughttrace.analysis").joinpath("templates/report.html").read_text("utf-8"))
    return tmpl.substitute(title=_e(title), subtitle=subtitle, nav=nav, body="\n".join(body),
                           version=_e(__version__), format_version=stats["format_version"])
