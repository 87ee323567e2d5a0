"""The difficulty-tier and sub-class scenario kinds: known answers for the proxies, and both kinds through the real
CLI on tiny worlds (rows ok, deterministic split hashes, rows pass verify)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.protocol.suite import load_suite
from harness.training.cache import ArtifactCache
from harness.training.difficulty import difficulty_scores, entanglement, memorisation, scenario_split
from harness.training.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "tests" / "suites"


def test_memorisation_is_the_in_out_confidence_gap():
    member = np.array([[True, True], [False, False], [True, False], [False, True]])
    probs = np.array([[0.9, 0.6], [0.5, 0.6], [0.9, 0.6], [0.5, 0.6]])
    # example 0: 0.9 where trained on, 0.5 where not -> 0.4; example 1: the same everywhere -> 0
    np.testing.assert_allclose(memorisation(probs, member), [0.4, 0.0])


def test_entanglement_is_high_for_an_example_among_another_label():
    features = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [4.9, 5.1]])
    labels = torch.tensor([0, 0, 1, 1, 0])  # the last 0 sits inside the cluster of 1s
    score = entanglement(features, labels)
    assert score.argmax() == 4 and score[4] > 1 > score[0]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.commands.cli", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
@pytest.mark.parametrize("suite_file", ["scenarios-digits.toml", "subclass-digits.toml"])
def test_new_kinds_run_end_to_end_and_verify(tmp_path, suite_file):
    results, cache = tmp_path / "results", tmp_path / "cache"
    path = str(SUITES / suite_file)
    proc = _cli("run", "--suite", path, "--methods", "original,retrain,finetune", "--set", "finetune.epochs=1",
                "--results", str(results), "--cache-dir", str(cache), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    suite = load_suite(path)
    rows = pd.read_parquet(results / suite.name)
    assert (rows["status"] == "ok").all(), rows[["scenario", "method", "error"]]
    assert set(rows["scenario"]) == set(suite.scenarios)
    ws = Workspace(suite, suite.load_data(), ArtifactCache(cache), torch.device("cpu"))
    for scenario, hashes in rows.groupby("scenario")["split_hash"]:
        assert hashes.nunique() == 1
        again = scenario_split(ws, scenario, 0)
        assert again.hash == hashes.iloc[0] == scenario_split(ws, scenario, 0).hash  # a pure function
    if "memorised-10-high" in suite.scenarios:
        scores = difficulty_scores(ws, "memorised")
        split = scenario_split(ws, "memorised-10-high", 0)
        pool_scores = scores[split.pool.numpy()]
        # the high tier is the top third of the pool by the score
        assert scores[split.forget.numpy()].min() >= np.quantile(pool_scores, 0.66) - 1e-12
        assert rows.set_index("scenario")["split_hash"]["memorised-10-high"].iloc[0] != \
            rows.set_index("scenario")["split_hash"]["random-10"].iloc[0]
    check = _cli("verify", str(results), "--sample", "0", "--cache-dir", str(cache))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(rows)} of {len(rows)} re-run rows match" in check.stdout, check.stdout
