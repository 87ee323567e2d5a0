"""A submission cannot game the verdict: a plugin that tells scored runs from audit runs is marked inconsistent,
and one that retrains from scratch is over the compute budget (real CLI, sandboxed plugins, digits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.core.results import read_results

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "suites" / "gaming-digits.toml"
PLUGINS = ROOT / "tests" / "plugins_gaming"

pytestmark = pytest.mark.slow  # one CLI run: 3 seeds x 5 methods, 8 audit runs each (~1 min)


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> pd.DataFrame:
    tmp = tmp_path_factory.mktemp("gaming")
    cmd = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", str(SUITE), "--results", str(tmp / "results"),
           "--cache-dir", str(tmp / "cache"), "--no-progress", "--methods", "original,retrain,finetune", "--set", "finetune.epochs=3",
           "--plugin", str(PLUGINS / "audit_guesser.py"), "--plugin", str(PLUGINS / "fresh_retrain.py")]
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frame = read_results(tmp / "results", "gaming-digits")
    assert (frame["status"] == "ok").all(), frame[["method", "error"]]
    return frame


def test_a_plugin_that_guesses_its_audit_runs_is_marked_inconsistent(rows):
    cheat = rows[rows["method"] == "audit-guesser"]
    assert len(cheat) == 3 and cheat["inconsistent"].all()
    assert cheat["consistency_evidence"].str.contains("scored runs differ from audit runs").all()
    # the evidence: it barely moves the scored originals, while every audit run replaces the model
    assert (cheat["consistency_shift"] < 0.5 * cheat["consistency_audit_shift"]).all()
    # and the per-method attack alone would have been fooled: its U-LiRA sits near the retrain floor
    floor = rows.loc[rows["method"] == "retrain", "ulira_acc"].iloc[0]
    original = rows.loc[rows["method"] == "original", "ulira_acc"].iloc[0]
    assert abs(cheat["ulira_acc"].iloc[0] - floor) < abs(original - floor) + 5


def test_honest_methods_are_consistent(rows):
    for method in ("finetune", "original", "fresh-retrain"):
        mine = rows[rows["method"] == method]
        assert not mine["inconsistent"].fillna(False).astype(bool).any(), (method, mine["consistency_evidence"])


def test_a_fresh_retrain_is_over_the_budget_and_cheap_methods_are_not(rows):
    retrain = rows[rows["method"] == "fresh-retrain"]
    assert retrain["over_budget"].all() and (retrain["time_budget"] == 0.5).all()
    assert (retrain["time_ratio"] > 0.5).all()
    finetune = rows[rows["method"] == "finetune"]
    # judged as the leaderboard judges an entry (most of its runs): on digits an oracle trains in ~0.1 s of CPU, so
    # one short run's fixed cost (loading the job, validating the answer) can put a single run over 0.5
    assert finetune["over_budget"].sum() <= len(finetune) // 2 and finetune["time_ratio"].median() < 0.5
    assert (rows["cpu_time_s"] > 0).all() and rows["oracle_cpu_s"].notna().all()
