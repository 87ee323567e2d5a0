"""Verdicts against the noise floor, rankings across scenarios, and a custom suite end to end.

Two kinds of data: constructed frames whose verdicts are known exactly, and a real multi-seed run of
``tests/suites/stats-digits.toml`` (a custom suite file: 6 seeds, 2 oracles, two scenarios) made once per
session through the real CLI, whose verdicts are recomputed here from the raw rows with independent code
(scipy's ``ttest_rel``, Holm's formula written out, statsmodels' ``ttost_paired``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from harness.commands.cli import main
from harness.core.results import read_results
from leaderboard.aggregate import Metric, SortKey, aggregate_scenario
from leaderboard.board import build_suite_board
from leaderboard.overall import rank_overall
from leaderboard.render import build_boards

ROOT = Path(__file__).resolve().parent.parent
SUITE_FILE = ROOT / "tests" / "suites" / "stats-digits.toml"
PLUGIN = ROOT / "tests" / "suites" / "stats_methods.py"
SUITE = "stats-digits"
ALPHA = 0.05


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``unlearn-bench ARGS`` in a fresh interpreter (its plugins never leak into this process's registry)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "harness.commands.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def build_stats_results(base: Path, cache_dir: Path) -> Path:
    """One real run of the stats-digits suite file (once per session; later calls reuse it): references,
    finetune (two configurations, one on a single seed), random-label, a no-op and an independent retrain.
    --no-isolation keeps it quick (seconds); it also marks every row sandbox = off."""
    results = base / "stats-digits-results"
    done = results / ".complete"
    if not done.is_file():
        common = ["--suite", str(SUITE_FILE), "--results", str(results), "--cache-dir", str(cache_dir),
                  "--no-progress", "--no-isolation", "--no-references"]
        run_cli("run", *common, "--plugin", str(PLUGIN), "--methods",
                "retrain,original,finetune,random-label,stats-noop,stats-retrain", "--set", "finetune.epochs=2")
        run_cli("run", *common, "--methods", "finetune", "--seeds", "0", "--set", "finetune.epochs=1")
        done.touch()
    return results


@pytest.fixture(scope="session")
def stats_results(tmp_path_factory, session_cache) -> Path:
    return build_stats_results(tmp_path_factory.getbasetemp(), session_cache.root)


@pytest.fixture(scope="session")
def stats_frame(stats_results) -> pd.DataFrame:
    return read_results(stats_results, SUITE)


def board_for(results: Path, sort: str = "avg_gap"):
    return build_boards(results, str(SUITE_FILE), sort=sort)[0]


# ---------------------------------------------------------------- independent recomputation


def holm_by_hand(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out: p_(i) * (m - i + 1), running maximum, capped at 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def expected_states(frame: pd.DataFrame, scenario: str, column: str, lower: bool, margin: float | None
                    ) -> dict[str, str]:
    """Verdict of every tested entry, from the raw rows: paired t (scipy ttest_rel) and TOST (statsmodels)
    against the retrain floor row on shared seeds, Holm across the scenario's tested entries."""
    ok = frame[(frame["status"] == "ok") & (frame["scenario"] == scenario)]
    floor = ok[ok["method"] == "retrain"].set_index("seed")[column]
    methods = ok[ok["method_kind"] != "reference"]
    labels = {}
    for (method, chash), rows in methods.groupby(["method", "config_hash"]):
        several = methods[methods["method"] == method]["config_hash"].nunique() > 1
        labels[(method, chash)] = f"{method} [{chash[:6]}]" if several else method
    tests, noop, few = {}, [], []
    for key, rows in methods.groupby(["method", "config_hash"]):
        if rows["noop"].astype(bool).sum() > 0.5 * len(rows):
            noop.append(labels[key])
            continue
        values = rows.set_index("seed")[column]
        seeds = sorted(set(values.index) & set(floor.index))
        if len(seeds) < 2:
            few.append(labels[key])
            continue
        a, b = values.loc[seeds].to_numpy(float), floor.loc[seeds].to_numpy(float)
        p = float(stats.ttest_rel(a, b).pvalue)
        p_eq = float(ttost_paired(a, b, -margin, margin)[0]) if margin else math.nan
        tests[labels[key]] = (float(np.mean(a - b)), p, p_eq)
    names = list(tests)
    p_holm = dict(zip(names, holm_by_hand([tests[n][1] for n in names])))
    eq_names = [n for n in names if math.isfinite(tests[n][2])]
    e_holm = dict(zip(eq_names, holm_by_hand([tests[n][2] for n in eq_names])))
    out = {n: "no-op" for n in noop} | {n: "too few seeds" for n in few}
    for n in names:
        diff = tests[n][0]
        favourable = diff < 0 if lower else diff > 0
        if p_holm[n] < ALPHA and favourable:
            out[n] = "better"
        elif e_holm.get(n, 1.0) < ALPHA:
            out[n] = "equivalent"
        else:
            out[n] = "worse" if p_holm[n] < ALPHA else "inconclusive"
    return out


SORTS = {"avg_gap": ("avg_gap", True, True), "avg_gap_rmia": ("avg_gap_rmia", True, True),
         "salun_mia": ("gap_salun_mia", True, True), "retain_acc": ("gap_retain_acc", True, True),
         "time_ratio": ("time_ratio", True, False)}


@pytest.mark.parametrize("sort", list(SORTS))
def test_real_verdicts_match_an_independent_recomputation(stats_results, stats_frame, sort):
    column, lower, is_gap = SORTS[sort]
    board = board_for(stats_results, sort)
    for scenario in board.scenarios:
        if column not in stats_frame or stats_frame.loc[stats_frame["scenario"] == scenario.scenario, column].isna().all():
            continue
        ok = stats_frame[(stats_frame["scenario"] == scenario.scenario) & (stats_frame["status"] == "ok")]
        floor_mean = ok.loc[ok["method"] == "retrain", column].mean()
        margin = floor_mean if is_gap and floor_mean > 0 else None
        assert (scenario.margin == pytest.approx(floor_mean)) if margin else math.isnan(scenario.margin)
        expected = expected_states(stats_frame, scenario.scenario, column, lower, margin)
        got = {r["entry"]: r["vs_floor_state"] for r in scenario.table.to_dict("records")
               if r["method_kind"] != "reference"}
        assert got == expected, (sort, scenario.scenario)


def test_real_data_reaches_every_verdict(stats_results):
    states: dict[str, set[str]] = {}
    for sort in SORTS:
        for scenario in board_for(stats_results, sort).scenarios:
            for entry, state in zip(scenario.table["entry"], scenario.table["vs_floor_state"]):
                states.setdefault(state, set()).add(entry)
    assert {"worse", "better", "equivalent", "inconclusive", "no-op", "too few seeds"} <= set(states)
    assert states["no-op"] == {"stats-noop"}  # returns the original untouched
    assert all(e.startswith("finetune [") for e in states["too few seeds"])  # the configuration run on one seed


def test_real_differences_and_intervals_are_paired_by_seed(stats_results, stats_frame):
    board = board_for(stats_results)
    scenario = next(s for s in board.scenarios if s.scenario == "class-3")
    row = next(r for r in scenario.table.to_dict("records") if r["entry"] == "random-label")
    ok = stats_frame[(stats_frame["scenario"] == "class-3") & (stats_frame["status"] == "ok")]
    a = ok[ok["method"] == "random-label"].set_index("seed")["avg_gap"].sort_index()
    b = ok[ok["method"] == "retrain"].set_index("seed")["avg_gap"].sort_index()
    d = (a - b).to_numpy()
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert row["vs_floor_diff"] == pytest.approx(d.mean())  # entry − floor: the sign says which is larger
    assert (row["vs_floor_lo"], row["vs_floor_hi"]) == pytest.approx((lo, hi))
    assert row["vs_floor_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["vs_floor_n"] == 6 and row["vs_floor_unit"] == "seed"


def test_real_ranking_is_friedman_over_complete_blocks(stats_results, stats_frame):
    board = board_for(stats_results)
    overall = board.overall
    # The no-op and the one-seed configuration are left out, with the reason.
    assert "stats-noop" in overall.excluded and "no-op" in overall.excluded["stats-noop"]
    one_seed = next(e for e in overall.excluded if e.startswith("finetune ["))
    assert "1/6 seeds" in overall.excluded[one_seed]
    ok = stats_frame[stats_frame["status"] == "ok"]
    labels = {e: e.split(" [")[0] for e in overall.entries}
    blocks = []
    for (scenario, seed), rows in ok.groupby(["scenario", "seed"]):
        values = []
        for entry, method in labels.items():
            sel = rows[rows["method"] == method]
            if entry != method:  # a labelled configuration: match its hash prefix
                sel = sel[sel["config_hash"].str.startswith(entry.split("[")[1].rstrip("]"))]
            values.append(float(sel["avg_gap"].iloc[0]))
        blocks.append(values)
    matrix = np.array(blocks)
    assert overall.friedman.n_blocks == 12 and overall.friedman.k == len(labels)
    assert overall.friedman.chi2 == pytest.approx(stats.friedmanchisquare(*matrix.T).statistic)
    ranks = np.array([stats.rankdata(row) for row in matrix]).mean(axis=0)
    table = overall.table.set_index("entry")
    assert [table.loc[e, "mean_rank"] for e in labels] == pytest.approx(list(ranks))
    assert table["p_best"].sum() == pytest.approx(1.0)
    q = stats.studentized_range.ppf(0.95, len(labels), np.inf) / math.sqrt(2)
    assert overall.friedman.cd == pytest.approx(q * math.sqrt(len(labels) * (len(labels) + 1) / (6 * 12)))


# ---------------------------------------------------------------- your own suite, end to end


def test_custom_suite_leaderboard_through_the_cli(stats_results, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["leaderboard", "--suite", str(SUITE_FILE), "--results", str(stats_results), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if not line.startswith(f"  {out}")]  # the file paths
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert f"{out / 'stats-digits.md'}" in printed and f"{out / 'index.html'}" in printed
    for needle in ("retrain (floor)", "worse", "no-op", "P(best)", "utility [95% CI]", "privacy [95% CI]",
                   "ranked by Pareto fronts", "few = too few seeds"):
        assert needle in printed, needle
    # the configuration run on one seed: too few seeds for its utility test
    assert any("finetune [" in line and " few " in line for line in printed.splitlines())
    text = (out / "stats-digits.md").read_text()
    assert "⚠" not in text and "unverified" not in text.split("## Ranking")[1]  # every row verified
    assert "§" in text  # --no-isolation runs are marked
    # Without the file: the definition stored in the rows verifies them.
    board = build_suite_board(read_results(stats_results, SUITE), results=stats_results)
    assert all(s.table["verified"].all() for s in board.scenarios)
    assert board.overall.entries and board.overall.friedman is not None


def test_custom_suite_verification_and_errors(stats_results, tmp_path, capsys):
    edited = tmp_path / "stats-digits.toml"
    edited.write_text(SUITE_FILE.read_text().replace('description = "', 'description = "edited: '))
    board = build_boards(stats_results, str(edited))[0]
    reasons = {r for s in board.scenarios for r in s.table["integrity"]}
    assert reasons == {f"suite file differs from {edited}"}  # same splits and keys, different file
    assert board.overall.empty  # nothing verified, nothing ranked
    assert main(["leaderboard", "--suite", "stats-digit", "--results", str(stats_results),
                 "--out", str(tmp_path / "x")]) == 2
    assert "did you mean 'stats-digits'" in capsys.readouterr().err
    missing = tmp_path / "other.toml"
    missing.write_text(SUITE_FILE.read_text().replace('name = "stats-digits"', 'name = "other-suite"'))
    assert main(["leaderboard", "--suite", str(missing), "--results", str(stats_results)]) == 2
    err = capsys.readouterr().err
    assert "no results under" in err and "names suite 'other-suite'" in err


def test_custom_suite_compare_through_the_cli(stats_results, stats_frame, capsys):
    chash = stats_frame[(stats_frame["method"] == "finetune")].groupby("config_hash").size().idxmax()
    assert main(["compare", f"finetune@{chash[:6]}", "random-label", "--suite", str(SUITE_FILE), "--results",
                 str(stats_results), "--metric", "avg_gap", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["scenario"] for r in out} == {"class-3", "random-10"}
    m = out[0]["metrics"][0]
    assert m["unit"] == "seed" and m["n"] == 6 and m["test"] == "t"


# ---------------------------------------------------------------- constructed frames: exact answers

META = {"forget_acc": Metric("forget_acc", "match-oracle", unit="%")}
GAP = SortKey("avg_gap", "avg_gap", True)


def frame_of(entries: dict[str, list[float]], noop: dict[str, list[bool]] | None = None,
             column: str = "avg_gap") -> pd.DataFrame:
    """Rows of one scenario: ``{method: per-seed values}`` (NaN = no row for that seed); retrain is the floor."""
    rows = []
    for method, values in entries.items():
        for seed, value in enumerate(values):
            if isinstance(value, float) and math.isnan(value):
                continue
            rows.append({"suite": "t", "scenario": "class-0", "seed": seed, "method": method,
                         "method_kind": "reference" if method in ("retrain", "original") else "baseline",
                         "config_hash": f"{method}-hash", "hparams": "{}", "status": "ok", "verified": True,
                         "integrity": "", "entry": method, "split_hash": f"s{seed}", "original_key": f"o{seed}",
                         column: value, "noop": (noop or {}).get(method, [False] * len(values))[seed]})
    return pd.DataFrame(rows)


FLOOR = [1.0, 1.1, 0.9, 1.0, 1.05]


def states_of(frame: pd.DataFrame, sort: SortKey = GAP) -> dict[str, str]:
    board = aggregate_scenario(frame, META, sort, "t", "class-0")
    return dict(zip(board.table["entry"], board.table["vs_floor_state"]))


def test_constructed_every_path():
    frame = frame_of({
        "retrain": FLOOR,
        "far": [4.0, 4.3, 3.8, 4.1, 4.2],  # gap four times the floor's, tight: worse
        "close": [1.02, 1.12, 0.93, 0.99, 1.06],  # the floor plus tiny noise: equivalent
        "below": [0.10, 0.12, 0.08, 0.11, 0.10],  # well under the floor, tight: better
        "noisy": [0.2, 3.0, 0.4, 2.6, 1.1],  # around the floor with a large spread: inconclusive
        "lonely": [2.0, math.nan, math.nan, math.nan, math.nan],  # one seed: too few
        "idle": [1.0, 1.1, 0.9, 1.0, 1.05],  # returned the original on 3 of 5 seeds: no-op
    }, noop={"idle": [True, True, True, False, False]})
    assert states_of(frame) == {"retrain": "floor", "far": "worse", "close": "equivalent", "below": "better",
                   "noisy": "inconclusive", "lonely": "too few seeds", "idle": "no-op"}


def test_constructed_significant_but_within_the_floor_is_equivalent():
    # +0.3 on every seed with tiny spread: the t-test rejects (worse), but 0.3 is inside the margin (1.02).
    shifted = [v + 0.3 + e for v, e in zip(FLOOR, [0.01, -0.01, 0.0, 0.02, -0.02])]
    board = aggregate_scenario(frame_of({"retrain": FLOOR, "m": shifted}), META, GAP, "t", "class-0")
    row = board.table.set_index("entry").loc["m"]
    assert row["vs_floor_p_holm"] < 0.001 and row["vs_floor_p_equiv_holm"] < ALPHA
    assert row["vs_floor_state"] == "equivalent" and board.margin == pytest.approx(np.mean(FLOOR))


def test_constructed_holm_not_raw_p_decides():
    # Three entries, each with raw p just under 0.05 and an equivalence test that fails: Holm makes them all
    # inconclusive. Deciding on the raw p would call them worse.
    floor = [0.5, 0.5, 0.5, 0.5, 0.5]
    bumps = [0.1, 1.9, 0.4, 1.6, 1.2]  # mean 1.04, sd 0.76: one-sample t p ≈ 0.04
    frame = frame_of({"retrain": floor, **{f"m{i}": [f + b + 0.001 * i for f, b in zip(floor, bumps)]
                                          for i in range(3)}})
    board = aggregate_scenario(frame, META, GAP, "t", "class-0")
    table = board.table.set_index("entry")
    raw = stats.ttest_1samp(bumps, 0.0).pvalue
    assert 0.03 < raw < ALPHA
    for i in range(3):
        assert table.loc[f"m{i}", "vs_floor_p"] == pytest.approx(raw, rel=1e-2)
        assert table.loc[f"m{i}", "vs_floor_p_holm"] > ALPHA
        assert table.loc[f"m{i}", "vs_floor_state"] == "inconclusive"


def test_constructed_direction_for_higher_is_better():
    sort = SortKey("score", "score", False)
    meta = {"score": Metric("score", "higher")}
    frame = frame_of({"retrain": [50.0, 51.0, 49.0, 50.0, 50.5], "up": [60.0, 61.5, 59.0, 60.2, 60.8],
                      "down": [40.0, 41.0, 39.5, 40.1, 40.4]}, column="score")
    board = aggregate_scenario(frame, meta, sort, "t", "class-0")
    table = board.table.set_index("entry")
    assert table.loc["up", "vs_floor_state"] == "better" and table.loc["down", "vs_floor_state"] == "worse"
    assert table.loc["up", "rank"] == 1 and table.loc["down", "rank"] == 2
    assert math.isnan(board.margin)  # not a gap: no equivalence margin


def test_constructed_old_rows_without_a_measured_floor():
    # Rows from before the noise floor was measured: the retrain row's gap is exactly 0. No margin, so no
    # equivalence verdict; the difference test still runs.
    frame = frame_of({"retrain": [0.0] * 5, "m": [0.2, 0.3, 0.25, 0.22, 0.28]})
    board = aggregate_scenario(frame, META, GAP, "t", "class-0")
    assert math.isnan(board.margin) and "gap is 0" in board.margin_note
    assert board.table.set_index("entry").loc["m", "vs_floor_state"] == "worse"


def test_overall_ranks_only_entries_complete_everywhere():
    boards = []
    for scenario, extra in (("class-0", {"partial": [0.5] * 5}), ("random-10", {})):
        frame = frame_of({"retrain": FLOOR, "a": [1.0, 1.2, 1.1, 0.9, 1.0], "b": [2.0, 2.1, 1.8, 2.2, 2.0],
                          "c": [3.0, 2.5, 3.1, 2.9, 3.3], "gappy": [1.5, 1.5, math.nan, 1.5, 1.5], **extra})
        frame["scenario"] = scenario
        boards.append(aggregate_scenario(frame, META, GAP, "t", scenario))
    overall = rank_overall(boards, GAP, n_boot=200)
    assert overall.entries == ["a", "b", "c"]  # every block ranks a < b < c
    assert overall.excluded == {"partial": "random-10: not run", "gappy": "class-0: 4/5 seeds; random-10: 4/5 seeds"}
    assert overall.table.set_index("entry")["mean_rank"].to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert overall.table.set_index("entry").loc["a", "p_best"] == 1.0
    assert overall.friedman.n_blocks == 10 and overall.friedman.p < 0.001


def test_per_method_metrics_never_enter_seed_tests():
    # A per-method metric is one value copied to every seed: paired over seeds its differences are constant
    # (p = 0 for any difference). Without per-example tables it is not tested at all.
    meta = {"ulira_acc": Metric("ulira_acc", "match-oracle", per_method=True)}
    sort = SortKey("ulira_acc", "gap_ulira_acc", True)
    frame = frame_of({"retrain": [0.0] * 5, "salun": [49.8] * 5, "rl": [49.75] * 5},
                     column="gap_ulira_acc")
    frame["ulira_acc"] = 50.0 + frame["gap_ulira_acc"]
    board = aggregate_scenario(frame, meta, sort, "t", "class-0")
    table = board.table.set_index("entry")
    assert (table.loc[["salun", "rl"], "vs_floor_state"] == "not tested").all()
    assert table[["vs_floor_p", "vs_floor_p_holm"]].isna().all().all()
    assert math.isnan(table.loc["salun", "gap_ulira_acc_lo"])  # no seed interval either


def test_overall_per_method_metric_blocks_are_scenarios():
    # Without per-example tables there is nothing to resample, but the blocks must still be the scenarios:
    # the seeds of a per-method metric are copies, and counting them as blocks would overstate the evidence.
    meta = {"ulira_acc": Metric("ulira_acc", "match-oracle", per_method=True)}
    sort = SortKey("ulira_acc", "gap_ulira_acc", True)
    boards = []
    for scenario in ("class-0", "random-10"):
        frame = frame_of({"retrain": [0.0] * 5, "a": [1.0] * 5, "b": [2.0] * 5, "c": [3.0] * 5},
                         column="gap_ulira_acc")
        frame["scenario"] = scenario
        boards.append(aggregate_scenario(frame, meta, sort, "t", scenario))
    overall = rank_overall(boards, sort, per_method=True)
    assert overall.blocks == "scenario" and overall.friedman.n_blocks == 2
    assert overall.table["p_best"].isna().all()  # no shadow tables: no resampling, no made-up probability
