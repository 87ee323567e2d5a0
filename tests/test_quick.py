"""``unlearn-bench try``: a quick look at a plugin next to the stored references, never a leaderboard result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.results import read_results

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "my_method.py"

pytestmark = pytest.mark.slow  # three CLI runs on digits (~30 s)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.commands.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600, check=False)


def test_try_prints_the_method_next_to_the_floor_and_never_reaches_the_leaderboard(tmp_path):
    results, cache, kept = tmp_path / "results", tmp_path / "cache", tmp_path / "quick"
    stored = cli("run", "--suite", "digits-smoke", "--seeds", "0", "--methods", "original,retrain,finetune",
                 "--results", str(results), "--cache-dir", str(cache), "--no-progress")
    assert stored.returncode == 0, stored.stderr
    before = sorted(p.name for p in (results / "digits-smoke").glob("*.parquet"))

    quick = cli("try", str(PLUGIN), "--suite", "digits-smoke", "--results", str(results), "--cache-dir", str(cache),
                "--keep", str(kept))
    assert quick.returncode == 0, quick.stderr
    out = quick.stdout
    assert "NOT a leaderboard result" in out
    for name in ("retrain (floor)", "original", "best baseline: finetune", "my-method"):
        assert name in out, out
    for block in out.split("\n\n"):  # every scenario's table: the floor, then the original, then the rest
        if "retrain (floor)" in block:
            assert block.index("retrain (floor)") < block.index("original") < block.index("my-method"), block
    assert "0 models trained" in out  # everything but the method's own runs came from the cache
    # the real results folder is untouched; the quick rows say what they are
    assert sorted(p.name for p in (results / "digits-smoke").glob("*.parquet")) == before
    rows = read_results(kept, "digits-smoke")
    assert set(rows["method"]) == {"my-method"} and (rows["grade"] == "quick").all()
    assert set(rows["scenario"]) == {"random-10", "class-3"} and set(rows["seed"]) == {0}
    assert "ulira_acc" not in rows and "rmia_ft_auc" in rows  # the cheap evaluators only

    board = cli("leaderboard", "--suite", "digits-smoke", "--results", str(kept), "--out", str(tmp_path / "site"))
    assert board.returncode == 2 and "not leaderboard results" in board.stderr

    mixed = cli("try", str(PLUGIN), "--suite", "digits-smoke", "--results", str(results), "--keep", str(results))
    assert mixed.returncode == 2 and "never mixed into real results" in mixed.stderr


def test_the_quick_look_takes_the_first_scenario_of_each_kind_the_method_handles():
    import dataclasses

    from harness.commands.quick import quick_suite
    from harness.protocol.suite import load_suite

    suite = dataclasses.replace(load_suite("digits-smoke"), scenarios=(
        "random-10", "memorised-10-high", "sequential-3x5", "class-0", "random-20", "memorised-10-low", "class-1"))
    assert quick_suite(suite, {"random"}).scenarios == ("random-10", "memorised-10-high")
    assert quick_suite(suite, {"random", "class"}).scenarios == ("random-10", "memorised-10-high", "class-0")
    only_class = quick_suite(suite, {"class"})
    assert only_class.scenarios == ("class-0",) and only_class.evaluators == ("accuracy", "rmia")
