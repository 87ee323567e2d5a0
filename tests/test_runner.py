"""The runner end to end on digits-smoke: rows, skipping, resume, overrides, errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from harness.core.results import read_results
from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.suite import Suite, load_suite

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
    # the reference row is one oracle against the other (a floor); without a privacy evaluator there is no
    # headline: AMUN's avg_gap needs its MIA term, and a mean over fewer terms would mean something else
    floor = oracle_rows[["gap_forget_acc", "gap_retain_acc", "gap_test_acc"]]
    assert floor.notna().all().all() and (floor.sum(axis=1) > 0).all() and oracle_rows["avg_gap"].isna().all()
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
    cmd = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", "fmnist-quik", "--results", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown suite 'fmnist-quik'; did you mean 'fmnist-quick'" in proc.stderr
    assert "Traceback" not in proc.stderr


IDENTITY_PLUGIN = '''
from harness import register_method

@register_method("identity-test", scenarios=("random", "class"), needs_retain=False, source="test: returns the original")
def identity(task):
    return task.model
'''


def test_a_method_that_returns_the_original_is_flagged_noop(run_dirs, tmp_path):
    plugin = tmp_path / "identity_plugin.py"
    plugin.write_text(IDENTITY_PLUGIN)
    summary = run_suite(light_suite(), _options(run_dirs, methods=["identity-test", "finetune", "retrain"],
                                               plugins=[str(plugin)]))
    assert summary.failed == 0
    frame = read_results(run_dirs[0], "digits-smoke").set_index(["scenario", "method"])
    for scenario in ("random-10", "class-3"):
        assert frame.loc[(scenario, "identity-test"), "noop"]
        assert frame.loc[(scenario, "identity-test"), "noop_tv"] == 0.0
        assert not frame.loc[(scenario, "finetune"), "noop"] and not frame.loc[(scenario, "retrain"), "noop"]
        assert frame.loc[(scenario, "retrain"), "noop_ratio"] == pytest.approx(1.0, rel=0.5)


def test_an_evaluator_failure_is_a_failed_row_and_the_others_go_on(run_dirs):
    from harness.evaluate.base import EVALUATORS, MetricInfo, register_evaluator

    @register_evaluator("explodes-on-finetune", metrics=[MetricInfo("boom", "raises for finetune")])
    def explode(model, ctx):
        if ctx.method is not None and ctx.method.name == "finetune":
            raise ZeroDivisionError("evaluator bug")
        return {"boom": 1.0}

    try:
        suite = dataclasses.replace(load_suite("digits-smoke"),
                                    evaluate={"evaluators": ["accuracy", "explodes-on-finetune"]})
        summary = run_suite(suite, _options(run_dirs))
    finally:
        EVALUATORS.pop("explodes-on-finetune")
    frame = read_results(run_dirs[0], "digits-smoke")
    bad = frame[frame["status"] != "ok"]
    assert set(bad["method"]) == {"finetune"} and summary.failed == len(bad) == 2
    assert bad["error"].str.contains("evaluator 'explodes-on-finetune' failed").all()
    assert bad["error"].str.contains("ZeroDivisionError").all()
    assert frame.loc[frame["method"] == "original", "boom"].eq(1.0).all()


def test_a_second_run_in_the_same_process_writes_its_own_side_tables(tmp_path):
    """Per-process memos must not outlive a run: a memoised U-LiRA result would skip the second run's tables."""
    from harness.core.results import EXAMPLES_DIR

    suite = dataclasses.replace(load_suite("digits-smoke"), evaluate={"evaluators": ["accuracy", "ulira"],
                                                                       "shadow_models": 2})
    for name in ("first", "second"):
        run_suite(suite, RunOptions(methods=["original"], seeds=[0], scenarios=["random-10"], device="cpu",
                                    results_root=tmp_path / name, cache_dir=tmp_path / "cache", progress=False))
        assert list((tmp_path / name / "digits-smoke" / EXAMPLES_DIR).glob("ulira-*.parquet")), name
