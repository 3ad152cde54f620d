"""The thought-inference and next-message evals as inspect_ai tasks (`inspect eval ...`).

    inspect eval src/thoughttrace/evals/inspect_tasks.py@next_message -T file=data.jsonl -T condition=reaction \\
        --model openai-api/llamacpp/smollm2        # LLAMACPP_BASE_URL=http://127.0.0.1:PORT/v1, LLAMACPP_API_KEY=x

Samples, prompts (with the same leakage guards), the generation settings (temperature 0, the same
max_tokens), the answer cleaning, the judge rubric, its both-orders swap, retries and score parsing are
this package's own, so on the same model and items the mean score equals `thoughttrace eval` (the judge
is the evaluated model unless `-T judge=MODEL`; `--model-role` is not needed). Against llama.cpp, equal
outputs need a server whose output depends on the request alone: `python -m thoughttrace.llm.server
--parallel 1 --reproducible` (docs/evals.md says why). Needs `pip install thoughttrace[inspect]`.
"""

from __future__ import annotations

from typing import Any

try:
    from inspect_ai import Task, task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model
    from inspect_ai.scorer import Score, Target, mean, scorer, stderr
    from inspect_ai.solver import TaskState, generate
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"the inspect_ai tasks need inspect-ai: pip install 'thoughttrace[inspect]' ({exc})") from exc

from thoughttrace.data import read_conversations
from thoughttrace.evals.generation import clean_text
from thoughttrace.evals.judge import parse_score
from thoughttrace.evals.resources import load_prompt, load_rubric
from thoughttrace.evals.store import first_items
from thoughttrace.evals.transcript import ClipConfig
from thoughttrace.llm import ParseError

NEXT_MESSAGE_TOKENS = 160
THOUGHT_TOKENS = 96


def _messages(prompt: list[dict[str, str]]) -> list[Any]:
    return [ChatMessageSystem(content=m["content"]) if m["role"] == "system" else ChatMessageUser(content=m["content"])
            for m in prompt]


async def _judge_once(model: Any, rubric: Any, a: str, b: str, retries: int, max_tokens: int) -> int | None:
    msgs = rubric.render(a, b, "")
    convo: list[Any] = _messages(msgs)
    lo, hi = rubric.scale.min, rubric.scale.max
    for _ in range(retries + 1):
        out = await model.generate(convo, config=GenerateConfig(temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=0))
        raw = out.completion
        try:
            return parse_score(raw, lo, hi)
        except ParseError as exc:
            error = str(exc).split(" (raw output")[0]
            feedback = load_prompt("retry").fill(
                "user", error=error + f" End with a final line 'Score: N' (N from {lo} to {hi}).")
            from inspect_ai.model import ChatMessageAssistant

            convo = [*convo, ChatMessageAssistant(content=raw), ChatMessageUser(content=feedback)]
    return None


def _similarity_scorer(rubric_name: str, judge: str | None, first_paragraph: bool, retries: int,
                       max_tokens: int) -> Any:
    @scorer(metrics=[mean(), stderr()])
    def similarity() -> Any:
        rubric = load_rubric(rubric_name)

        async def score(state: TaskState, target: Target) -> Score:
            pred = clean_text(state.output.completion, first_paragraph=first_paragraph)
            if not pred:
                return Score(value=float("nan"), answer=pred, explanation="empty prediction (a generation failure)")
            model = get_model(judge) if judge else get_model()
            orders = [(pred, target.text), (target.text, pred)] if rubric.symmetric else [(pred, target.text)]
            scores = [s for a, b in orders if (s := await _judge_once(model, rubric, a, b, retries, max_tokens))
                      is not None]
            if not scores:
                return Score(value=float("nan"), answer=pred, explanation="no parseable judge score")
            return Score(value=sum(scores) / len(scores), answer=pred, metadata={"scores": scores})

        return score

    return similarity()


@task
def next_message(file: str, condition: str = "history", judge: str | None = None, limit: int | None = None,
                 judge_retries: int = 2, judge_max_tokens: int = 128) -> Task:
    """Predict each user message from what came before (history | reaction | reaction+reason); judged 0-100."""
    from thoughttrace.evals.next_message import build_prompt, extract_items, normalise_conditions

    cond = normalise_conditions([condition])[0]
    if cond == "inferred":
        raise ValueError("the inferred condition runs two model steps; use `thoughttrace eval next-message`")
    convs = {c.id: c for c in read_conversations(file)}
    items = first_items(extract_items(list(convs.values()), [cond]), limit)
    clip = ClipConfig()
    samples = [Sample(input=_messages(build_prompt(convs[i.conversation_id], i, clip)), target=i.reference,
                      id=f"{i.conversation_id}|{i.message_id}|{cond}",
                      metadata={"conversation_id": i.conversation_id, "message_id": i.message_id, "condition": cond})
               for i in items]
    return Task(dataset=MemoryDataset(samples), solver=generate(),
                config=GenerateConfig(temperature=0.0, top_p=1.0, max_tokens=NEXT_MESSAGE_TOKENS, seed=0),
                scorer=_similarity_scorer("message_similarity", judge, False, judge_retries, judge_max_tokens))


@task
def thought_inference(file: str, judge: str | None = None, limit: int | None = None, judge_retries: int = 2,
                      judge_max_tokens: int = 128) -> Task:
    """Infer each reason and reaction from its context (direct method); judged 1-5 against the user's note."""
    from thoughttrace.evals.leakage import check_no_leakage
    from thoughttrace.evals.thought_inference import (
        allowed_texts,
        direct_prompt,
        extract_items,
        forbidden_texts,
    )

    convs = {c.id: c for c in read_conversations(file)}
    items = first_items(extract_items(list(convs.values())), limit)
    clip = ClipConfig()
    samples = []
    for i in items:
        conv = convs[i.conversation_id]
        prompt = direct_prompt(conv, i, clip)
        check_no_leakage(prompt, forbidden_texts(conv, i), allowed_texts(conv, i), where=f"{i.kind} inference")
        samples.append(Sample(input=_messages(prompt), target=i.reference,
                              id=f"{i.conversation_id}|{i.message_id}|{i.kind}",
                              metadata={"kind": i.kind, "labels": i.labels}))
    return Task(dataset=MemoryDataset(samples), solver=generate(),
                config=GenerateConfig(temperature=0.0, top_p=1.0, max_tokens=THOUGHT_TOKENS, seed=0),
                scorer=_similarity_scorer("thought_similarity", judge, True, judge_retries, judge_max_tokens))
