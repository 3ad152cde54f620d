"""tests/conftest.py's suite-wide rules. The weights guard: outside `model` tests, resolving real weights fails
the test at once. The hypothesis profile: no property test has a deadline (flaky under load otherwise).

Why: `-m "not model"` promises a run without weights. If the guard were never installed (or installed the wrong
way round), a test that forgot its marker would load weights silently and fail only on a machine without them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.llm import embeddings, weights


def test_real_weights_are_refused_outside_model_tests(request: pytest.FixtureRequest) -> None:
    for resolve, name in ((weights.resolve_weights, "smollm2"), (weights.resolve_weights, "qwen0.5b"),
                          (embeddings.resolve_embedding_spec, "minilm")):
        with pytest.raises(RuntimeError, match=f"{request.node.nodeid} loads real weights: mark it @pytest.mark.model"):
            resolve(name)


@pytest.mark.model
def test_model_tests_resolve_the_real_weights() -> None:
    # the guard is not in the way of a marked test: the real lookup answers (a path, or a ConfigurationError)
    assert weights.resolve_weights("smollm2").name == weights.KNOWN["smollm2"].filename


@given(st.integers())
@settings(max_examples=3)
def test_property_tests_have_no_deadline(x: int) -> None:
    # a test's own @settings keeps the suite's profile for what it does not set
    assert settings().deadline is None and settings.default.deadline is None
