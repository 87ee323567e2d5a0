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


def _difficulty_rows(suite, data, split_hashes: list[str]) -> pd.DataFrame:
    from harness.training.reference_models import model_key

    original = model_key(suite, data, "original", suite.original_positions(data, 0), 0)
    return pd.DataFrame([{"suite": suite.name, "suite_version": suite.version, "status": "ok",
                          "scenario": "memorised-10-high", "seed": 0, "method": f"m{i}", "split_hash": h,
                          "original_key": original, "oracle_key": "o0", "oracle_keys": '["o0", "o1"]'}
                         for i, h in enumerate(split_hashes)])


def test_leaderboard_verifies_difficulty_rows_from_cached_scores_or_their_agreement(tmp_path, monkeypatch):
    """The leaderboard's integrity check never trains: a difficulty split is recomputed from the scores when the
    cache holds them; without them its rows are checked for agreement (and the original key), not all rejected
    as 'scenario not valid' (found on fmnist-scenarios: no memorised or entangled entry was ranked)."""
    from harness.training.difficulty import scores_key
    from harness.training.reference_models import oracle_key
    from leaderboard.integrity import canonical_keys, mark_integrity

    path = str(SUITES / "scenarios-digits.toml")
    suite = load_suite(path)
    data = suite.load_data()
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    pair = ("memorised-10-high", 0)
    canon = canonical_keys(suite, {pair})[pair]
    assert canon.split_hash is None and canon.oracle_keys is None  # no scores cached: not recomputable here
    marked = mark_integrity(_difficulty_rows(suite, data, ["h", "h"]), suite_file=path)
    assert marked["verified"].all(), marked["integrity"].tolist()
    marked = mark_integrity(_difficulty_rows(suite, data, ["h", "other"]), suite_file=path)
    assert not marked["verified"].any() and "differ between the rows" in marked["integrity"].iloc[0]

    # with the scores in the cache, the split and oracle keys are recomputed and checked
    ws = Workspace(suite, data, ArtifactCache(), torch.device("cpu"))
    scores = np.random.default_rng(0).random(len(data.train_y))
    ws.cache.get_or_compute("difficulty", scores_key(ws, "memorised"), lambda: torch.as_tensor(scores),
                            parts={"suite": suite.name, "score": "memorised"}, tally=False)
    split = suite.split(data, "memorised-10-high", 0, scores)
    canon = canonical_keys(suite, {pair})[pair]
    assert canon.split_hash == split.hash
    assert canon.oracle_keys == tuple(oracle_key(suite, data, split, k) for k in range(suite.oracles))
    rows = _difficulty_rows(suite, data, [split.hash, "h"])
    rows["oracle_key"], rows["oracle_keys"] = canon.oracle_keys[0], pd.Series(
        [f'["{canon.oracle_keys[0]}", "{canon.oracle_keys[1]}"]'] * 2)
    marked = mark_integrity(rows, suite_file=path)
    assert marked["verified"].tolist() == [True, False] and "split_hash differs" in marked["integrity"].iloc[1]
