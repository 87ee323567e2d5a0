"""Metrics scored once per method on the shadow bank (U-LiRA): never tested over seeds; their interval and
every comparison come from a paired bootstrap over shadow models, recomputed here from the per-example
tables."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from harness.commands.cli import main
from harness.core.attack_stats import shadow_bootstrap
from harness.core.results import EXAMPLES_DIR, read_results
from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.suite import load_suite
from leaderboard.render import build_boards, render_leaderboards
from leaderboard.stats import bootstrap_p

SUITE = "digits-smoke"


@pytest.fixture(scope="module")
def ulira_results(tmp_path_factory):
    base = load_suite(SUITE)
    suite = dataclasses.replace(base, evaluate={**base.evaluate, "evaluators": ["accuracy", "salun_mia", "ulira"]})
    root = tmp_path_factory.mktemp("ulira")
    options = RunOptions(methods=["original", "retrain", "finetune", "random-label"], seeds=[0, 1],
                         scenarios=["random-10"], results_root=root / "results", cache_dir=root / "cache",
                         device="cpu", progress=False)
    run_suite(suite, options)
    return root / "results"


def _table(results, method: str, frame: pd.DataFrame) -> pd.DataFrame:
    chash = frame.loc[frame["method"] == method, "config_hash"].iloc[0]
    return pd.read_parquet(results / SUITE / EXAMPLES_DIR / f"ulira-random-10-{method}-{chash}.parquet")


def test_per_method_metrics_have_a_shadow_interval_not_a_seed_interval(ulira_results, tmp_path):
    frame = read_results(ulira_results, SUITE)
    finetune = frame[frame["method"] == "finetune"]
    # the reason: both seeds carry the one value the method got on the shadow bank
    assert finetune["ulira_acc"].nunique() == 1 and finetune["forget_acc"].notna().all()
    render_leaderboards(ulira_results, tmp_path / "site", suite=SUITE)
    text = (tmp_path / "site" / f"{SUITE}.md").read_text()
    # the default page: the metrics beside the two axes, in the scenario's "Every metric" table
    metrics = text.split("### Every metric")[1]
    header = next(line for line in metrics.splitlines() if line.startswith("| method |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "ulira_acc†‡" in columns
    row = next(line for line in metrics.splitlines() if re.match(r"\| finetune( §)? \|", line))
    cells = [c.strip() for c in row.strip("|").split("|")]
    lo, hi = finetune["ulira_acc_boot_lo"].iloc[0], finetune["ulira_acc_boot_hi"].iloc[0]
    assert cells[columns.index("ulira_acc†‡")] == f"{finetune['ulira_acc'].iloc[0]:.2f} [{lo:.2f}, {hi:.2f}]"
    assert "±" in cells[columns.index("forget_acc")]  # seed statistics stay where they are real
    assert "bootstrap over shadow pairs" in text and "never tested over seeds" in text


def test_compare_on_ulira_is_a_paired_shadow_bootstrap(ulira_results, capsys):
    assert main(["compare", "finetune", "random-label", "--results", str(ulira_results), "--suite", SUITE,
                 "--metric", "ulira_acc", "--json"]) == 0
    metric = json.loads(capsys.readouterr().out)[0]["metrics"][0]
    assert metric["metric"] == "gap_ulira_acc" and metric["test"] == "bootstrap", metric
    assert metric["unit"] in ("shadow pair", "shadow") and metric["d_z"] is None
    assert math.isfinite(metric["diff"]) and 0 < metric["p"] <= 1  # never p = 0 from constant differences
    # Recomputed from the per-example tables: the same resampled clusters for A, B and the floor.
    frame = read_results(ulira_results, SUITE)
    tables = {m: _table(ulira_results, m, frame) for m in ("finetune", "random-label", "retrain")}
    unit = "pair" if "pair" in tables["retrain"] else "shadow"
    draws = {m: shadow_bootstrap(t["score"].to_numpy(), t["label"].to_numpy(), t[unit].to_numpy(), 1000, 0,
                                 auc=False)["accuracy"] for m, t in tables.items()}
    diff = np.abs(draws["finetune"] - draws["retrain"]) - np.abs(draws["random-label"] - draws["retrain"])
    lo, hi = np.nanpercentile(diff, [2.5, 97.5])
    assert (metric["ci_lo"], metric["ci_hi"]) == pytest.approx((lo, hi))
    assert metric["p"] == pytest.approx(bootstrap_p(diff))
    stored = frame.groupby("method")["gap_ulira_acc"].first()
    assert metric["diff"] == pytest.approx(stored["finetune"] - stored["random-label"], abs=1e-6)


def test_leaderboard_sorted_by_ulira_tests_over_shadows(ulira_results):
    board = build_boards(ulira_results, SUITE, sort="ulira_acc")[0]
    scenario = board.scenarios[0]
    tested = scenario.table[scenario.table["vs_floor_unit"] != ""]
    tested = tested[tested["method_kind"] != "reference"]
    assert len(tested) == 2 and set(tested["vs_floor_test"]) == {"bootstrap"}
    assert tested["vs_floor_unit"].str.startswith("shadow").all()
    assert (tested["vs_floor_p"] > 0).all()
    assert "bootstrap interval" in scenario.margin_note
