"""End to end on the real default suite (slow): signal, reference rows, the CLI and the leaderboard."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.core.results import read_results
from harness.protocol.datasets import DatasetNotFound, load_dataset


def _need_fmnist() -> None:
    try:
        load_dataset("fashion-mnist")
    except DatasetNotFound as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")


@pytest.mark.slow
def test_fmnist_quick_one_seed_has_signal(tmp_path):
    """The default suite must be able to rank methods: the original and the oracles differ on the forget set,
    the reference row is a measured floor, and U-LiRA separates methods in the class scenario."""
    _need_fmnist()
    results, cache, site = tmp_path / "results", tmp_path / "cache", tmp_path / "site"
    cmd = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", "fmnist-quick", "--seeds", "0",
           "--methods", "original,retrain,finetune,random-label,gradient-ascent", "--results", str(results),
           "--cache-dir", str(cache), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    frame = read_results(results, "fmnist-quick")
    assert (frame["status"] == "ok").all(), frame.loc[frame["status"] != "ok", ["method", "error"]]
    frame = frame.set_index(["scenario", "method"])
    gap = frame.loc[("random-10", "original"), "forget_acc"] - frame.loc[("random-10", "retrain"), "forget_acc"]
    assert gap >= 5.0, f"fmnist-quick lost its signal: original-oracle forget accuracy gap {gap:.2f} < 5 points"
    assert frame.loc[("class-0", "retrain"), "forget_acc"] == 0.0
    assert frame.loc[("class-0", "original"), "forget_acc"] > 80.0
    for scenario in ("random-10", "class-0"):
        retrain, original = frame.loc[(scenario, "retrain")], frame.loc[(scenario, "original")]
        assert retrain["avg_gap"] > 0 and retrain["oracles"] == 3  # measured against the other oracles
        assert retrain["ulira_acc"] != 50.0 and abs(retrain["ulira_acc"] - 50) < 4
        assert original["ulira_acc_boot_lo"] > retrain["ulira_acc_boot_hi"]
    ulira = frame.xs("class-0")["ulira_acc"]
    assert ulira.max() - ulira.min() >= 5 and (ulira < 95).all(), ulira
    board = subprocess.run([sys.executable, "-m", "harness.commands.cli", "leaderboard", "--results", str(results),
                            "--out", str(site), "--suite", "fmnist-quick"], capture_output=True, text=True,
                           timeout=300)
    assert board.returncode == 0, board.stderr
    assert "finetune" in board.stdout and (site / "fmnist-quick.md").is_file()


@pytest.mark.slow
def test_digits_smoke_full_cli(tmp_path):
    """Every registered method and evaluator on one digits seed through the real CLI."""
    results, cache = tmp_path / "results", tmp_path / "cache"
    cmd = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", "digits-smoke", "--seeds", "0",
           "--results", str(results), "--cache-dir", str(cache), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    frame = read_results(results, "digits-smoke")
    assert frame["run_id"].is_unique and len(frame) >= 4
    bad = frame[frame["status"] != "ok"]
    assert bad.empty, bad[["method", "scenario", "status", "error"]].to_string()
    # a reconstructed method says so in its rows and in the leaderboard; the others do not
    rebuilt = frame.groupby("method")["method_reconstructed"].all()
    assert rebuilt["trw"] and not rebuilt["finetune"] and not rebuilt["amun"]
    site = tmp_path / "site"
    board = subprocess.run([sys.executable, "-m", "harness.commands.cli", "leaderboard", "--results", str(results),
                            "--out", str(site), "--suite", "digits-smoke", "--quiet"], capture_output=True,
                           text=True, timeout=300)
    assert board.returncode == 0, board.stderr
    text = (site / "digits-smoke.md").read_text()
    assert "| trw (reconstructed) |" in text and "(reconstructed) after a method" in text
    assert "finetune (reconstructed)" not in text
