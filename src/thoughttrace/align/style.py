"""Style features of an answer for style control: length and Markdown counts, and two ways to compare them.

Counted on the raw Markdown: headers (#..######), list items (ordered and unordered) and bold spans.
Code blocks are removed first so a '#' comment in code is not a header.

Two comparisons of a pair of answers (a, b):
- `arena_style_diff` (arena-hard-auto v2.0's `show_result.py`, the default): length as (la - lb) / (la + lb);
  each Markdown count as a density d = count / (length + 1), compared as (da - db) / (da + db + 1).
  The scorer then centres and standardises each column over the battle rows.
- `style_diff` (ThoughtTrace's own, `--method thoughttrace`): (a - b) / (a + b) of the raw counts, scaled
  but not centred, so theta is the strength at equal style.
"""

from __future__ import annotations

import re

import numpy as np

STYLE_FEATURES: tuple[str, ...] = ("length", "headers", "lists", "bold")

_CODE = re.compile(r"```.*?```", re.DOTALL)
_HEADER = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def style_counts(text: str) -> dict[str, float]:
    """length (whitespace tokens, code included), header, list-item and bold counts."""
    prose = _CODE.sub("", text)
    return {
        "length": float(len(text.split())),
        "headers": float(len(_HEADER.findall(prose))),
        "lists": float(len(_LIST.findall(prose))),
        "bold": float(len(_BOLD.findall(prose))),
    }


def style_diff(a: dict[str, float], b: dict[str, float]) -> np.ndarray:
    """Normalised differences (a - b) / (a + b) per feature, 0 where both are 0 (bounded in [-1, 1])."""
    out = np.zeros(len(STYLE_FEATURES))
    for i, k in enumerate(STYLE_FEATURES):
        s = a[k] + b[k]
        out[i] = (a[k] - b[k]) / s if s > 0 else 0.0
    return out


def arena_style_diff(a: dict[str, float], b: dict[str, float]) -> np.ndarray:
    """arena-hard-auto's style features of `a` against `b`: length difference and Markdown density differences.

    Why densities: a long answer has more headers by length alone; dividing by length + 1 separates
    formatting from verbosity. Both lengths 0 gives 0 (arena-hard-auto would produce NaN and stop).
    """
    out = np.zeros(len(STYLE_FEATURES))
    la, lb = a["length"], b["length"]
    out[0] = (la - lb) / (la + lb) if la + lb > 0 else 0.0
    for i, k in enumerate(STYLE_FEATURES[1:], start=1):
        da, db = a[k] / (la + 1), b[k] / (lb + 1)
        out[i] = (da - db) / (da + db + 1)
    return out
