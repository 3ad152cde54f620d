"""Style features of an answer for style control: length and Markdown density (as arena-hard-auto uses).

Counted on the raw Markdown: headers (#..######), list items (ordered and unordered) and bold spans.
Code blocks are removed first so a '#' comment in code is not a header.
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
