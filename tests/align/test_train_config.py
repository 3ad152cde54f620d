"""DPO config file handling, metrics log and plot (no training here: see test_e2e.py, marked slow)."""

from __future__ import annotations

import json

import pytest

from thoughttrace.align import AlignError, load_config
from thoughttrace.align.train import load_pairs, plot_metrics, read_metrics


def test_default_config_and_overrides(tmp_path):
    cfg = load_config()
    assert cfg.beta == 0.1 and cfg.lora.enabled and cfg.lora.r == 16 and cfg.model == "smollm2"
    f = tmp_path / "c.yaml"
    f.write_text("beta: 0.3\nmax_length: 256\nlora: {r: 4}\n")
    cfg = load_config(f, max_steps=3, model=None)
    assert (cfg.beta, cfg.max_length, cfg.max_steps, cfg.lora.r, cfg.lora.alpha) == (0.3, 256, 3, 4, 32)


@pytest.mark.parametrize("text, needle", [
    ("betta: 0.3\n", "betta"),
    ("beta: -1\n", "beta"),
    ("lora: {rank: 4}\n", "lora.rank"),
    ("- a list\n", "mapping"),
])
def test_bad_config_says_which_field(tmp_path, text, needle):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(AlignError, match=needle):
        load_config(f)


def test_missing_pairs_and_mixed_formats(tmp_path):
    with pytest.raises(AlignError, match="no such file"):
        load_pairs([tmp_path / "none.jsonl"])
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(AlignError, match="no preference pairs"):
        load_pairs([empty])


def test_metrics_log_and_plot(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [{"step": 1, "loss": 0.69, "rewards/chosen": 0.0, "rewards/rejected": 0.0, "rewards/margins": 0.0,
             "rewards/accuracies": 0.0},
            {"step": 2, "loss": 0.6, "rewards/chosen": 0.1, "rewards/rejected": -0.1, "rewards/margins": 0.2,
             "rewards/accuracies": 1.0},
            {"step": 2, "loss": 0.55, "rewards/margins": 0.3}]  # a resumed run logged step 2 again
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_metrics(log)
    assert [r["step"] for r in got] == [1, 2] and got[1]["loss"] == 0.55
    png = plot_metrics(got, tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
