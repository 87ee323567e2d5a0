"""The runner end to end on digits-smoke: rows, skipping, resume, overrides, errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from harness.results import read_results
from harness.runner import RunOptions, run_suite
from harness.suite import Suite, load_suite

METHODS = ["original", "retrain", "finetune"]


def light_suite() -> Suite:
    """digits-smoke with only the accuracy evaluator: these tests are about the runner, not the attacks."""
    return dataclasses.replace(load_suite("digits-smoke"), evaluate={"evaluators": ["accuracy"]})


def _options(run_dirs, **kw) -> RunOptions:
    results, cache = run_dirs
    base = dict(methods=METHODS, seeds=[0], results_root=results, cache_dir=cache, device="cpu", progress=False)
    base.update(kw)
    return RunOptions(**base)


def test_rows_reuse_and_resume(run_dirs):
    suite = light_suite()
    first = run_suite(suite, _options(run_dirs))
    assert first.written == 6 and first.failed == 0  # 3 methods x 2 scenarios x 1 seed
    frame = read_results(run_dirs[0], "digits-smoke")
    assert len(frame) == 6 and frame["run_id"].is_unique and not frame["tampered"].any()
    assert set(frame["method"]) == set(METHODS) and (frame["status"] == "ok").all()
    for column in ["split_hash", "oracle_key", "config_hash", "hparams", "git_sha", "packages", "suite_version"]:
        assert frame[column].notna().all() and (frame[column] != "").all(), column
    oracle_rows = frame[frame["method"] == "retrain"]
    assert (oracle_rows["avg_gap"] == 0).all()  # the oracle scored against itself
    original = frame[(frame["method"] == "original") & (frame["scenario"] == "class-3")]
    assert float(original["gap_forget_acc"].iloc[0]) > 50  # the original still knows the forgotten class

    again = run_suite(suite, _options(run_dirs))
    assert again.written == 0 and again.skipped == 6
    assert getattr(again, "cache_misses", 0) == 0  # nothing retrained on a warm rerun

    # resume: remove one row, exactly that run is recomputed
    victim = sorted(run_dirs[0].joinpath("digits-smoke").glob("*.parquet"))[0]
    victim.unlink()
    resumed = run_suite(suite, _options(run_dirs))
    assert resumed.written == 1 and len(read_results(run_dirs[0], "digits-smoke")) == 6

    forced = run_suite(suite, _options(run_dirs, methods=["finetune"], force=True))
    assert forced.written == 2 and len(read_results(run_dirs[0], "digits-smoke")) == 6


def test_overrides_make_a_separate_configuration(run_dirs):
    suite = light_suite()
    run_suite(suite, _options(run_dirs, methods=["finetune"], scenarios=["class-3"]))
    run_suite(suite, _options(run_dirs, methods=["finetune"], scenarios=["class-3"],
                              overrides={"finetune": {"epochs": "2"}}))
    frame = read_results(run_dirs[0], "digits-smoke")
    assert frame["config_hash"].nunique() == 2
    assert sorted(frame["hparams"].map(lambda h: __import__("json").loads(h)["epochs"])) == [2, 10]


def test_unknown_names_get_did_you_mean(run_dirs):
    suite = light_suite()
    with pytest.raises(KeyError, match="did you mean 'finetune'"):
        run_suite(suite, _options(run_dirs, methods=["fine-tune"]))
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        run_suite(suite, _options(run_dirs, methods=["finetune"], overrides={"finetune": {"epoch": "2"}}))
    with pytest.raises(ValueError, match="scenario"):
        run_suite(suite, _options(run_dirs, scenarios=["random-200"]))


def test_cli_errors_are_one_clear_line(tmp_path):
    cmd = [sys.executable, "-m", "harness.cli", "run", "--suite", "fmnist-quik", "--results", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown suite 'fmnist-quik'; did you mean 'fmnist-quick'" in proc.stderr
    assert "Traceback" not in proc.stderr
