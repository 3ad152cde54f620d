"""Seeded synthetic conversations in the ThoughtTrace schema, for scale tests and analysis checks.

Only 3 real conversations are available offline, so benchmarks and the analysis helpers need a generator
whose label mix is KNOWN: every share can be set, overall or per conversation stage, and the defaults are
the release's figures (taxonomy.yaml). The same seed always gives the same conversations.

Stages: a user (assistant) message's position among the conversation's user (assistant) messages is
mapped to one of 4 bins at 0/33/67/100% of the conversation by `stage_bin`, the same split the release
uses for its stage curves.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .schema import Conversation
from .stages import N_STAGES, stage_bin
from .taxonomy import load_taxonomy

__all__ = ["N_STAGES", "generate_conversations", "stage_bin", "write_synthetic"]

#: model name -> provider; names in the style of the release (20 models there).
DEFAULT_MODELS: dict[str, str] = {
    "GPT-5.4": "OpenAI",
    "GPT-5.4 mini": "OpenAI",
    "Claude Opus 4.6": "Anthropic",
    "Claude Sonnet 4.6": "Anthropic",
    "Gemini 3.1 Pro Preview": "Google",
    "Gemini 3 Flash": "Google",
    "Grok 4.20": "xAI",
    "GLM 5": "Zhipu AI",
    "DeepSeek V3.2": "DeepSeek",
    "Qwen3.5 Max": "Alibaba",
}

_TOPICS: dict[str, list[str]] = {
    "Culture & Lifestyle": ["planning a weekend trip to Lisbon", "a vegetarian dinner for six", "repotting a fiddle-leaf fig",
                            "a budget for a small flat", "choosing a first road bike", "a birthday party for a ten-year-old"],
    "Education & Knowledge": ["the causes of the Thirty Years' War", "how vaccines train the immune system",
                              "revising for a statistics exam", "the history of the printing press",
                              "why the sky is blue", "learning Spanish verb tenses"],
    "Business & Society": ["a cover letter for a data analyst job", "pricing for a small bakery",
                           "how a tenancy deposit works", "a pitch for a community garden", "reading a payslip"],
    "Health & Relationships": ["a beginner running plan", "sleeping better before exams", "a hard talk with a flatmate",
                               "meal prep for a busy week", "supporting a friend after a break-up"],
    "Technology": ["a Python script to rename photos", "choosing a laptop for video editing",
                   "setting up a home Wi-Fi mesh", "a regex for postcodes", "backing up a phone"],
    "Arts & Entertainment": ["a short story about a lighthouse keeper", "chords for a sad song in D minor",
                             "films like Spirited Away", "a poem for a wedding toast"],
    "Other Topics": ["naming a new puppy", "a riddle for a treasure hunt", "what to pack for a move"],
}

_USER_TEMPLATES: dict[str, list[str]] = {
    "Task Motivation & Goal": ["I need some help with {topic}.", "Can you help me with {topic}? It's for next week.",
                               "I'm working on {topic} and I'm a bit stuck."],
    "Task Continuation": ["Can you expand the second point?", "What about the cost side of it?",
                          "Okay, and what would the next step be?", "Could you give an example for that?"],
    "Context Grounding & Constraints": ["I only have about an hour a day for this.", "Keep in mind I'm on a tight budget.",
                                        "I live in a small flat without a garden."],
    "Content Expectation": ["Please include concrete numbers where you can.", "I want the main reasons, not every detail.",
                            "Can you list the pros and cons?"],
    "Social & Others": ["Thanks, that's great!", "Good morning!", "Haha, fair enough.", "You're very helpful today."],
    "Style Expectation": ["Can you put that in a table?", "Make it shorter and more casual please.",
                          "Use bullet points, please."],
    "Task Reorientation": ["Actually, let's switch to something else entirely.", "Forget that, I'd rather ask about {topic}."],
}

_REASON_TEMPLATES: dict[str, list[str]] = {
    "Task Motivation & Goal": ["I want to get {topic} done properly.", "This is the real reason I opened the chat."],
    "Task Continuation": ["The answer was fine, I want to go deeper.", "Same goal, just need the next piece."],
    "Context Grounding & Constraints": ["It has to fit my situation.", "The generic advice won't work for me."],
    "Content Expectation": ["I want substance, not fluff.", "I need the details that matter for my decision."],
    "Social & Others": ["Being polite.", "Just reacting to the answer."],
    "Style Expectation": ["The format was hard to read.", "I prefer short answers."],
    "Task Reorientation": ["This was going nowhere, so I changed course.", "I realised I needed something else."],
}

_REACTION_TEMPLATES: dict[str, list[str]] = {
    "Explicit Affirmation": ["Exactly what I needed.", "Clear and helpful, well done.", "Good answer."],
    "Content Relevance": ["It missed the point of my question.", "Some of this is not relevant to me."],
    "Presentation Style": ["Too formal for my taste.", "The structure is confusing."],
    "Scope Fit": ["Way too long.", "Too broad, I wanted something specific."],
    "Partial Satisfaction": ["Helpful, but it skipped the budget part.", "Good start, still a few gaps."],
}

_ASSISTANT_OPENERS = ["Sure! Here's a practical way to approach {topic}.", "Great question. Let's break down {topic}.",
                      "Happy to help with {topic}.", "Here is an overview of {topic}."]
_ASSISTANT_POINTS = ["**Start small**: pick one concrete step you can finish today.",
                     "**Check the constraints**: time, money and tools decide most of the plan.",
                     "**Compare options**: list two or three and note the trade-offs.",
                     "**Keep notes**: a short log makes the next step obvious.",
                     "**Ask for feedback** from someone who has done it before.",
                     "**Set a deadline** so the task does not drift."]
_ASSISTANT_CLOSERS = ["Would you like me to go into more detail on any of these?", "Let me know how it goes!",
                      "Want a shorter version?", ""]


def _normalise(shares: Mapping[str, float], what: str) -> tuple[list[str], list[float]]:
    labels = [k for k, v in shares.items() if v > 0]
    total = sum(shares[k] for k in labels)
    if not labels or total <= 0:
        raise ValueError(f"{what}: give at least one label with a positive share")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"{what}: shares must not be negative")
    return labels, [shares[k] / total for k in labels]


def _stage_tables(overall: Mapping[str, float], stages: Sequence[Mapping[str, float]] | None,
                  what: str) -> list[tuple[list[str], list[float]]]:
    if stages is None:
        return [_normalise(overall, what)] * N_STAGES
    if len(stages) != N_STAGES:
        raise ValueError(f"{what}: give one share dict per stage ({N_STAGES} stages at 0/33/67/100%), got {len(stages)}")
    return [_normalise(s, f"{what}[{i}]") for i, s in enumerate(stages)]


def _taxonomy_shares(kind: str) -> dict[str, float]:
    return {t.label: t.share for t in getattr(load_taxonomy(), kind)}


def generate_conversations(
    n: int,
    seed: int = 0,
    *,
    reason_shares: Mapping[str, float] | None = None,
    reaction_shares: Mapping[str, float] | None = None,
    stage_reason_shares: Sequence[Mapping[str, float]] | None = None,
    stage_reaction_shares: Sequence[Mapping[str, float]] | None = None,
    length_range: tuple[int, int] = (2, 16),
    models: Sequence[str] | None = None,
    domain_shares: Mapping[str, float] | None = None,
    thought_rate: float = 0.6,
    second_thought_rate: float = 0.05,
) -> Iterator[Conversation]:
    """Yield `n` conversations; deterministic for a given seed and arguments.

    `length_range` bounds the number of messages (rounded to even: each user message gets an answer); the
    default draw has a median of 8 like the release. Each message carries a thought with probability
    `thought_rate` (the release has ~0.6 thoughts per message), a second one with `second_thought_rate`.
    Stage shares (one dict per stage) override the overall shares at that stage. Labels need not come from
    the taxonomy, so a test can plant any label mix and check that an analysis recovers it.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    lo, hi = length_range
    lo_pairs, hi_pairs = max(1, (lo + 1) // 2), max(1, hi // 2)
    if hi_pairs < lo_pairs:
        raise ValueError(f"length_range {length_range}: needs room for at least one user+assistant pair")
    reason_tables = _stage_tables(reason_shares or _taxonomy_shares("reasons"), stage_reason_shares, "reason shares")
    reaction_tables = _stage_tables(reaction_shares or _taxonomy_shares("reactions"), stage_reaction_shares,
                                    "reaction shares")
    domains, domain_weights = _normalise(domain_shares or _taxonomy_shares("domains"), "domain shares")
    model_names = list(models) if models else list(DEFAULT_MODELS)
    spread = hi_pairs - lo_pairs
    p_pair = min(max((4 - lo_pairs) / spread, 0.05), 0.95) if spread else 0.0

    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    user, task, left_for_user = 0, 0, 0
    for i in range(n):
        if left_for_user == 0:
            user += 1
            task = 0
            left_for_user = rng.choice((1, 2, 2, 3))
        left_for_user -= 1
        task += 1
        pairs = lo_pairs + sum(rng.random() < p_pair for _ in range(spread))
        domain = rng.choices(domains, domain_weights)[0]
        topic = rng.choice(_TOPICS.get(domain, _TOPICS["Other Topics"]))
        model = rng.choice(model_names)
        conv_id = f"user{user}_task{task}_conversation{i + 1}"
        t = start + timedelta(minutes=17 * i + rng.randint(0, 16))
        created = t
        messages: list[dict[str, Any]] = []
        for j in range(pairs):
            stage = stage_bin(j, pairs)
            reasons = _thoughts(rng, reason_tables[stage], _REASON_TEMPLATES, topic, t, thought_rate,
                                second_thought_rate)
            first_label = reasons[0]["label"] if reasons else ("Task Motivation & Goal" if j == 0 else "Task Continuation")
            template = rng.choice(_USER_TEMPLATES.get(first_label, _USER_TEMPLATES["Task Continuation"]))
            messages.append({"id": f"{conv_id}-m{2 * j}", "timestamp": _iso(t), "type": "user",
                             "content": template.format(topic=topic), "reasons": reasons})
            t += timedelta(seconds=rng.randint(5, 40))
            reactions = _thoughts(rng, reaction_tables[stage], _REACTION_TEMPLATES, topic, t, thought_rate,
                                  second_thought_rate)
            messages.append({"id": f"{conv_id}-m{2 * j + 1}", "timestamp": _iso(t), "type": "assistant",
                             "content": _assistant_text(rng, topic), "reactions": reactions})
            t += timedelta(seconds=rng.randint(20, 240))
        yield Conversation.model_validate({
            "id": conv_id, "model_name": model, "model_provider": DEFAULT_MODELS.get(model),
            "created_at": _iso(created), "updated_at": _iso(t),
            "task_summary": f"I worked on {topic}.", "task_expectation": "Clear, practical help.",
            "survey_answers": None, "domain": domain, "topic": topic, "messages": messages,
        })


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _thoughts(rng: random.Random, table: tuple[list[str], list[float]], templates: Mapping[str, list[str]],
              topic: str, t: datetime, rate: float, second_rate: float) -> list[dict[str, Any]]:
    if rng.random() >= rate:
        return []
    count = 2 if rng.random() < second_rate else 1
    labels, weights = table
    out = []
    for label in rng.choices(labels, weights, k=count):
        text = rng.choice(templates.get(label, ["(no comment)"])).format(topic=topic)
        out.append({"content": text, "timestamp": _iso(t), "label": label})
    return out


def _assistant_text(rng: random.Random, topic: str) -> str:
    points = rng.sample(_ASSISTANT_POINTS, rng.randint(2, 4))
    body = "\n".join(f"{k + 1}. {p}" for k, p in enumerate(points))
    return f"{rng.choice(_ASSISTANT_OPENERS).format(topic=topic)}\n\n{body}\n\n{rng.choice(_ASSISTANT_CLOSERS)}".strip()


def write_synthetic(path: str | Path, n: int, seed: int = 0, **kw: Any) -> int:
    """Write `n` synthetic conversations as JSONL (streaming); returns the number written."""
    from .io import write_conversations

    return write_conversations(generate_conversations(n, seed, **kw), path)
