"""Metrics scored once per method on the shadow bank (U-LiRA) are shown without a seed interval."""

from __future__ import annotations

import dataclasses
import re

from harness.results import read_results
from harness.runner import RunOptions, run_suite
from harness.suite import load_suite
from leaderboard.render import render_leaderboards


def test_per_method_metrics_have_no_seed_interval(tmp_path):
    base = load_suite("digits-smoke")
    suite = dataclasses.replace(base, evaluate={**base.evaluate, "evaluators": ["accuracy", "ulira"]})
    options = RunOptions(methods=["original", "retrain", "finetune"], seeds=[0, 1], scenarios=["random-10"],
                         results_root=tmp_path / "results", cache_dir=tmp_path / "cache", device="cpu",
                         progress=False)
    run_suite(suite, options)
    frame = read_results(tmp_path / "results", suite.name)
    finetune = frame[frame["method"] == "finetune"]
    # the reason: both seeds carry the one value the method got on the shadow bank
    assert finetune["ulira_acc"].nunique() == 1 and finetune["forget_acc"].notna().all()
    text = render_leaderboards(tmp_path / "results", tmp_path / "site", suite=suite.name)
    header = next(line for line in text.splitlines() if line.startswith("| # | method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "ulira_acc†‡" in columns
    row = next(line for line in text.splitlines() if re.match(r"\| \d+ \| finetune \|", line))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "±" not in cells[columns.index("ulira_acc†‡")]
    assert "±" in cells[columns.index("forget_acc")]  # seed statistics stay where they are real
    assert "‡ scored once per method configuration" in text
