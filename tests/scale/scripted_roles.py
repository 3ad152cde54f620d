"""A deterministic scripted model for the `--engine ray` job tests: its answer is a function of the prompt only.

Every role gets an answer that varies with the prompt (judges give different scores), so the engines are
compared on records that differ from item to item, and the same prompt always gets the same answer in
every Ray worker. Registered with Ray's cloudpickle by value (workers cannot import the tests package).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def _h(messages: list[Any]) -> int:
    return int(hashlib.sha256("\n".join(m.content for m in messages).encode()).hexdigest()[:8], 16)


def answer(messages: list[Any], cfg: Any) -> str:
    text = "\n".join(m.content for m in messages)
    last = messages[-1].content
    h = _h(messages)
    if "Score: N" in text:
        hi = 100 if "from 0 to 100" in text else 5
        return f"Some overlap.\nScore: {1 + h % hi}"
    if "Decide what you send next" in last:
        return json.dumps({"reason": f"I need idea {h % 11}", "message": f"Give me {h % 5 + 2} more ideas"})
    if "Write your private reaction" in last:
        return json.dumps({"reaction": f"Useful list {h % 7}", "decision": "end" if h % 3 == 0 else "continue"})
    if 'give your final answer on the last line as "Answer: <letter>"' in last:
        return f"Sally did not see the move.\nAnswer: {'AB'[h % 2]}"
    label = re.search(r'of the type "([^"]+)"', text)
    if label:
        return f"Note: maybe {label.group(1)} ({h % 13})."
    if "## What to improve" in last:
        return f"A clearer answer, version {h % 17}, that covers what was missing."
    return f"Answer {h % 97}: the user wants more detail."
