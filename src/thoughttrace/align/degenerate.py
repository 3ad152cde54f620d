"""Degenerate rewrites: outputs a small rewriter produces that would poison preference data as "chosen".

Seen in practice: the user's next message repeated ~20 times, the original answer returned with a word
changed, a loop of one sentence, an answer ten times as long as the original. `degenerate_reason`
names the first problem found (the pairs report counts each), or None for a usable rewrite.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

#: a rewrite longer than this many times the original (and than MIN_BLOWUP_CHARS) is a length blow-up
MAX_BLOWUP = 4.0
MIN_BLOWUP_CHARS = 600
#: share of repeated word 4-grams above which a text is a loop
MAX_REPEATED_NGRAMS = 0.5
#: similarity (difflib ratio on normalised text) at or above which a rewrite is a copy
COPY_SIMILARITY = 0.9


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def repeated_ngram_share(text: str, n: int = 4) -> float:
    """Share of word n-grams that are repeats of an earlier one (0 for a text with no repeats)."""
    words = _norm(text).split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 8:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def degenerate_reason(rewrite: str, original: str, next_message: str | None = None, *,
                      max_blowup: float = MAX_BLOWUP) -> str | None:
    """'repetitive', 'copies_next_message', 'copies_original', 'length_blowup', or None."""
    r, o = _norm(rewrite), _norm(original)
    if next_message:
        n = _norm(next_message)
        if len(n) >= 8 and (r.count(n) >= 2 or _similar(r, n) >= COPY_SIMILARITY
                            or (r.count(n) == 1 and len(n) >= 0.5 * len(r))):
            return "copies_next_message"
    if repeated_ngram_share(rewrite) > MAX_REPEATED_NGRAMS:
        return "repetitive"
    if o and r != o and _similar(r, o) >= COPY_SIMILARITY:
        return "copies_original"
    if len(rewrite) > max(max_blowup * len(original), MIN_BLOWUP_CHARS):
        return "length_blowup"
    return None
