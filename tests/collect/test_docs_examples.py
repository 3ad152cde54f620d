"""Every YAML/TOML example in docs/platform.md loads through the real study loader (a file on disk)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thoughttrace.collect.study import load_study

DOCS = Path(__file__).resolve().parents[2] / "docs" / "platform.md"
BLOCK = re.compile(r"```(yaml|toml)\n(.*?)```", re.S)
EXAMPLES = BLOCK.findall(DOCS.read_text(encoding="utf-8"))


def test_the_page_has_examples():
    assert len(EXAMPLES) >= 1, f"no ```yaml or ```toml block found in {DOCS}"


@pytest.mark.parametrize("n", range(len(EXAMPLES)))
def test_every_config_example_loads(n, tmp_path):
    lang, body = EXAMPLES[n]
    path = tmp_path / f"example{n}.{lang}"
    path.write_text(body, encoding="utf-8")
    study = load_study(path)  # raises StudyConfigError listing every problem by field path
    assert study.models, f"example {n} ({lang}) has no models"
