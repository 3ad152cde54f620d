from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.evals import LeakageError, check_no_leakage, find_leaks

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=3, max_size=120).filter(lambda t: t.strip())


@given(words, words, words)
@settings(max_examples=100, deadline=None)
def test_an_inserted_forbidden_text_is_always_found(before: str, secret: str, after: str) -> None:
    prompt = [{"role": "user", "content": f"{before}\n{secret.upper()}\n{after}"}]
    assert find_leaks(prompt, [secret]) == [secret]
    with pytest.raises(LeakageError):
        check_no_leakage(prompt, [secret])


def test_a_truncated_copy_is_a_leak_too() -> None:
    secret = "I want to plan meals for the whole week because I am busy and want to save money on groceries"
    prompt = f"Conversation: User: {secret[:60]} [... omitted ...]"
    assert find_leaks(prompt, [secret])


def test_text_that_is_legitimately_in_the_context_is_not_a_leak() -> None:
    prompt = "User: thanks\n\nAssistant: you are welcome"
    assert find_leaks(prompt, ["thanks"], allowed=["thanks", "you are welcome"]) == []
    assert find_leaks(prompt, ["thanks"]) == ["thanks"]
    assert find_leaks(prompt, ["something else entirely"]) == []
