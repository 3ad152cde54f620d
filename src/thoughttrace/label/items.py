"""What gets labelled: one `LabelItem` per thought, conversation or user turn, with the text a model sees.

Item ids are stable (`kind:conversation:message:index`), so a labels file can be resumed, merged and
compared with the dataset's own labels (`gold`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from thoughttrace.data import Conversation


@dataclass(frozen=True)
class LabelItem:
    kind: str
    conversation_id: str
    message_id: str | None
    index: int | None
    fields: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    gold: str | None = None

    @property
    def item_id(self) -> str:
        return make_item_id(self.kind, self.conversation_id, self.message_id, self.index)


def make_item_id(kind: str, conversation_id: str, message_id: str | None, index: int | None) -> str:
    return f"{kind}:{conversation_id}:{message_id or ''}:{'' if index is None else index}"


def clip(text: str, limit: int) -> str:
    """Shorten long messages for the prompt (head, ellipsis) so tiny models keep the item in view."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def extract_items(
    conversations: Iterable[Conversation],
    kinds: Sequence[str],
    *,
    only_missing: bool = False,
    max_chars: int = 500,
) -> Iterator[LabelItem]:
    """Items of the requested kinds, in file order. `only_missing` skips thoughts/domains already labelled."""
    for conv in conversations:
        msgs = conv.messages
        if "domain" in kinds and not (only_missing and conv.domain):
            users = " / ".join(clip(m.content, 200) for m in conv.user_messages[:3])
            yield LabelItem("domain", conv.id, None, None, {"message": users}, conv.domain)
        prev_user = None
        for i, m in enumerate(msgs):
            before = msgs[i - 1] if i > 0 else None
            if m.type == "user":
                if "reason" in kinds:
                    ctx = f"Previous assistant answer (excerpt): {clip(before.content, 200)}" if before else \
                        "(first message of the conversation)"
                    for j, t in enumerate(m.reasons or ()):
                        if only_missing and t.label:
                            continue
                        yield LabelItem("reason", conv.id, m.id, j, {
                            "message": clip(m.content, max_chars), "thought": clip(t.content, max_chars),
                            "context": ctx}, t.label)
                if "relation" in kinds and prev_user is not None:
                    yield LabelItem("relation", conv.id, m.id, None, {
                        "previous": clip(prev_user.content, max_chars), "message": clip(m.content, max_chars),
                        "context": clip(before.content, 200) if before is not None else ""}, None)
                prev_user = m
            elif "reaction" in kinds:
                ctx = f"User message it answers: {clip(before.content, 200)}" if before else ""
                for j, t in enumerate(m.reactions or ()):
                    if only_missing and t.label:
                        continue
                    yield LabelItem("reaction", conv.id, m.id, j, {
                        "message": clip(m.content, max_chars), "thought": clip(t.content, max_chars),
                        "context": ctx}, t.label)
