"""Leaderboard statistics: known answers for the pure functions, then aggregation, integrity and ``compare``
on a real digits-smoke run (references, finetune in two configurations, one with fewer seeds, and a plugin
method that crashes). Verdicts and rankings: test_leaderboard_verdicts.py and test_leaderboard_ranking.py."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from harness.commands.cli import main
from harness.core.results import read_results, row_hash
from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.methods import all_methods
from harness.protocol.suite import load_suite
from leaderboard.aggregate import sort_key
from leaderboard.board import build_suite_board
from leaderboard.compare import compare_entries, to_json, to_text
from leaderboard.markdown import render_markdown
from leaderboard.stats import holm, paired_test, rank_values, summarize

SUITE = "digits-smoke"
# rmia: the class scenarios' avg_gap has the RMIA forget-vs-test AUC as its privacy term.
FIXTURE_EVALUATORS = ["accuracy", "salun_mia", "distribution", "rmia"]
CRASHY = '''
from harness import register_method

@register_method("crashy", scenarios=("random", "class"), needs_retain=False)
def crashy(task):
    """Always raises, so its runs are stored as failed."""
    raise RuntimeError("crashy always fails")
'''


# ---------------------------------------------------------------- pure statistics, known answers


def test_summarize_matches_hand_computed_t_interval():
    s = summarize([1, 2, 3, 4, 5])
    # mean 3, s = sqrt(2.5), half-width = t_{0.975,4} * s / sqrt(5) = 2.776445 * 0.707107
    assert s.n == 5 and s.mean == 3 and s.std == pytest.approx(math.sqrt(2.5))
    assert s.half_width == pytest.approx(2.776445105 * 0.7071067812, rel=1e-8)
    lo, hi = stats.t.interval(0.95, 4, loc=3, scale=stats.sem([1, 2, 3, 4, 5]))
    assert (s.lo, s.hi) == pytest.approx((lo, hi))


def test_summarize_one_value_and_nans():
    one = summarize([7.0, math.nan])
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.std) and math.isnan(one.lo)
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)


def test_paired_t_matches_scipy():
    a = np.array([3.0, 5.0, 4.5, 6.0, 2.0, 4.0, 7.0])
    b = np.array([2.0, 3.5, 4.0, 4.0, 1.5, 3.0, 6.5])
    t = paired_test(a, b, lower_is_better=False)  # the default is the t-test, whatever n
    ref = stats.ttest_rel(a, b)
    assert t.test == "t" and t.n == 7
    assert t.p == pytest.approx(ref.pvalue) and t.statistic == pytest.approx(ref.statistic)
    d = a - b
    assert t.mean_diff == pytest.approx(d.mean()) and t.d_z == pytest.approx(d.mean() / d.std(ddof=1))
    assert (t.wins_a, t.wins_b, t.ties) == (7, 0, 0)  # higher is better and a > b on every pair
    with pytest.raises(ValueError, match="test must be one of"):
        paired_test(a, b, test="welch")


def test_wilcoxon_with_enough_pairs_exact_answer():
    a = np.arange(1.0, 9.0)
    b = np.zeros(8)
    t = paired_test(a, b, test="auto")  # lower is better: b wins every pair
    assert t.test == "wilcoxon"
    assert t.p == pytest.approx(2 / 2**8)  # exact two-sided: all 8 signs agree
    assert (t.wins_a, t.wins_b) == (0, 8)
    mixed_a, mixed_b = [1, -2, 3, 4, 5, 6, 7, -8, 9], [0] * 9
    assert paired_test(mixed_a, mixed_b, test="auto").p == pytest.approx(stats.wilcoxon(mixed_a).pvalue)
    assert paired_test([1, 2, 3, 4, 5], [0] * 5, test="auto").test == "t"  # too few pairs for Wilcoxon


def test_paired_test_degenerate_cases():
    same = paired_test([1, 2, 3], [1, 2, 3])
    assert same.test == "identical" and same.p == 1.0 and same.ties == 3
    single = paired_test([1.0], [2.0])
    assert single.test == "none" and math.isnan(single.p) and single.wins_a == 1
    constant = paired_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])  # one difference repeated: the t limit
    assert constant.p == 0.0 and math.isinf(constant.d_z)
    d = paired_test([2, 3, 5], [1, 1, 2])  # differences 1, 2, 3: mean 2, sd 1
    assert d.d_z == pytest.approx(2.0)
    assert (d.ci_lo, d.ci_hi) == pytest.approx((2 - 4.302652730 / math.sqrt(3), 2 + 4.302652730 / math.sqrt(3)))


def test_rank_values_ties_and_direction():
    ranks = rank_values([3.0, 1.0, 3.0, math.nan])
    assert ranks[:3] == [2.5, 1.0, 2.5] and math.isnan(ranks[3])
    assert rank_values([3.0, 1.0], lower_is_better=False) == [1.0, 2.0]


# ---------------------------------------------------------------- a real digits-smoke run


def build_digits_results(base: Path, cache_dir: Path) -> Path:
    """Run digits-smoke (idempotent: stored runs are skipped) and return the results folder."""
    results = base / "lb-digits-results"
    plugin = base / "crashy_plugin.py"
    plugin.write_text(CRASHY)
    # The cheap evaluators, plus RMIA (the class avg_gap's privacy term; its references are the suite's 4 tiny
    # shadow originals): U-LiRA and MIA-NN would make this fixture take minutes (test_leaderboard_shared.py
    # covers U-LiRA). Splits and model keys do not depend on evaluators.
    suite = load_suite(SUITE)
    suite = dataclasses.replace(suite, evaluate={**suite.evaluate, "evaluators": FIXTURE_EVALUATORS})
    common = {"results_root": results, "cache_dir": cache_dir, "device": "cpu", "progress": False}
    # Short finetune runs keep the fixture cheap; the leaderboard only needs real rows, not good ones.
    # The plugin registers "crashy" once per process; a second load would be a (real) plugin-load failure.
    plugins = [] if "crashy" in all_methods() else [str(plugin)]
    run_suite(suite, RunOptions(methods=["retrain", "original", "finetune", "crashy"], plugins=plugins,
                                overrides={"finetune": {"epochs": 3}}, **common))
    # A second finetune configuration, on seed 0 only: an entry with fewer seeds.
    run_suite(suite, RunOptions(methods=["finetune"], seeds=[0], overrides={"finetune": {"epochs": 1}}, **common))
    return results


@pytest.fixture(scope="session")
def digits_results(tmp_path_factory, session_cache) -> Path:
    return build_digits_results(tmp_path_factory.getbasetemp(), session_cache.root)


@pytest.fixture(scope="session")
def digits_board(digits_results):
    """Ranked by avg_gap: these tests check the per-metric machinery (the default two-axis ranking:
    test_leaderboard_axes.py)."""
    return build_suite_board(read_results(digits_results, SUITE), sort="avg_gap")


def _entry(board, scenario: str, label_start: str, n: int | None = None) -> dict:
    table = next(b for b in board.scenarios if b.scenario == scenario).table
    rows = [r for r in table.to_dict("records") if str(r["entry"]).startswith(label_start)
            and (n is None or r["n"] == n)]
    assert len(rows) == 1, [r["entry"] for r in table.to_dict("records")]
    return rows[0]


def test_entries_per_configuration_with_failed_and_fewer_seeds(digits_board):
    for scenario in digits_board.scenarios:
        labels = list(scenario.table["entry"])
        assert labels[0] == "retrain"  # the oracle is the reference row on top
        finetunes = [e for e in labels if e.startswith("finetune")]
        assert len(finetunes) == 2 and all(e.startswith("finetune [") for e in finetunes)
        short = _entry(digits_board, scenario.scenario, "finetune", n=1)
        assert short["n_expected"] == 2 and short["seeds"] == [0]
        crashy = _entry(digits_board, scenario.scenario, "crashy")
        assert crashy["failed"] == 2 and crashy["n"] == 0 and math.isnan(crashy["avg_gap_mean"])
        assert math.isnan(crashy["rank"])
    text = render_markdown(digits_board)
    assert "| 1/2 |" in text  # fewer seeds: shown with its n, of the scenario's seeds
    assert "crashy" in text and "## Configurations" in text and "epochs=1," in text


def test_means_and_cis_equal_the_raw_rows(digits_results, digits_board):
    frame = read_results(digits_results, SUITE)
    rows = frame[(frame["method"] == "finetune") & (frame["scenario"] == "class-3") & (frame["status"] == "ok")]
    full = rows.groupby("config_hash").filter(lambda g: len(g) == 2)
    values = full["avg_gap"].to_numpy()
    entry = _entry(digits_board, "class-3", "finetune", n=2)
    assert entry["avg_gap_mean"] == pytest.approx(values.mean())
    lo, hi = stats.t.interval(0.95, 1, loc=values.mean(), scale=stats.sem(values))
    assert (entry["avg_gap_lo"], entry["avg_gap_hi"]) == pytest.approx((lo, hi))
    floor = _entry(digits_board, "class-3", "retrain")
    oracle_rows = frame[(frame["method"] == "retrain") & (frame["scenario"] == "class-3")]
    # The floor row is measured (one oracle against the others), not 0 by construction.
    assert floor["avg_gap_mean"] == pytest.approx(oracle_rows["avg_gap"].mean()) and floor["avg_gap_mean"] > 0
    assert floor["method_kind"] == "reference" and math.isnan(floor["rank"]) and floor["vs_floor_state"] == "floor"


def test_each_entry_is_tested_against_the_floor_paired_by_seed(digits_results, digits_board):
    frame = read_results(digits_results, SUITE)
    for board in digits_board.scenarios:
        assert board.floor == "retrain"
        ok = frame[(frame["scenario"] == board.scenario) & (frame["status"] == "ok")]
        floor = ok[ok["method"] == "retrain"].set_index("seed")["avg_gap"]
        for r in board.table[board.table["rank"].notna()].to_dict("records"):
            mine = ok[ok["config_hash"] == r["config_hash"]].set_index("seed")["avg_gap"]
            seeds = sorted(set(mine.index) & set(floor.index))
            assert r["vs_floor_n"] == len(seeds)
            assert r["vs_floor_diff"] == pytest.approx((mine.loc[seeds] - floor.loc[seeds]).mean())
            if len(seeds) == 1:  # the one-seed configuration: no test
                assert r["vs_floor_state"] == "too few seeds" and math.isnan(r["vs_floor_p"])
            else:
                assert r["vs_floor_p"] == pytest.approx(stats.ttest_rel(mine.loc[seeds], floor.loc[seeds]).pvalue)


def test_ranking_across_scenarios_leaves_out_partial_entries(digits_board):
    overall = digits_board.overall
    # Only the full finetune configuration is ranked with every seed in both scenarios.
    assert len(overall.entries) == 1 and overall.entries[0].startswith("finetune [")
    partial = [e for e in overall.excluded if e.startswith("finetune [")]
    assert len(partial) == 1 and "1/2 seeds" in overall.excluded[partial[0]]
    assert "crashy" in overall.excluded and "no result" in overall.excluded["crashy"]
    assert not any(e.startswith(("retrain", "original")) for e in [*overall.entries, *overall.excluded])
    row = overall.table.iloc[0]
    assert row["mean_rank"] == 1.0 and row["p_best"] == 1.0


def test_sort_by_metric_uses_its_direction(digits_results, digits_board):
    meta = digits_board.meta
    assert sort_key("forget_acc", meta).column == "gap_forget_acc"  # match-oracle: rank by the gap
    assert sort_key("time_ratio", meta).lower_is_better
    with pytest.raises(KeyError, match="did you mean"):
        sort_key("forget_ac", meta)
    board = build_suite_board(read_results(digits_results, SUITE), sort="gap_retain_acc")
    for scenario in board.scenarios:
        ranked = scenario.table[scenario.table["rank"].notna()].sort_values("rank")
        assert ranked["gap_retain_acc_mean"].is_monotonic_increasing


def _rewrite(path: Path, change: dict, rehash: bool) -> None:
    row = pq.read_table(path).to_pylist()[0]
    row.update(change)
    if rehash:
        row["row_hash"] = row_hash(row)
    pq.write_table(pa.Table.from_pylist([row]), path)


def test_integrity_marks_and_verified_only(digits_results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(digits_results, copy)
    frame = read_results(copy, SUITE)
    finetune = frame[(frame["method"] == "finetune") & (frame["status"] == "ok")]
    paths = [copy / SUITE / f"{run_id}.parquet" for run_id in finetune["run_id"][:3]]
    _rewrite(paths[0], {"forget_acc": 0.0}, rehash=False)  # edited by hand: hash mismatch
    _rewrite(paths[1], {"split_hash": "0" * 16}, rehash=True)  # another split, consistently hashed
    _rewrite(paths[2], {"suite_version": "0"}, rehash=True)  # an older suite version
    (copy / SUITE / "truncated.parquet").write_bytes(b"PAR1 cut off")
    board = build_suite_board(read_results(copy, SUITE))
    assert board.unreadable == 1
    unverified = [r for s in board.scenarios for r in s.table.to_dict("records") if not r["verified"]]
    reasons = " | ".join(r["integrity"] for r in unverified)
    assert "row hash mismatch" in reasons and "split_hash differs" in reasons and "suite version 0" in reasons
    assert all(math.isnan(r["rank"]) for r in unverified)
    assert "⚠ unverified" in render_markdown(board)
    strict = build_suite_board(read_results(copy, SUITE), verified_only=True)
    assert strict.excluded_unverified == 3
    assert all(r["verified"] for s in strict.scenarios for r in s.table.to_dict("records"))


def test_compare_paired_statistics(digits_results):
    frame = read_results(digits_results, SUITE)
    with pytest.raises(KeyError, match="several configurations"):
        compare_entries(frame, "finetune", "original")
    ok = frame[frame["status"] == "ok"]
    full_hash = ok[ok["method"] == "finetune"].groupby("config_hash").size().idxmax()
    results = compare_entries(frame, f"finetune@{full_hash[:4]}", "original")
    assert {r.scenario for r in results} == {"class-3", "random-10"}
    for r in results:
        assert r.seeds == [0, 1]
        rows = ok[ok["scenario"] == r.scenario]
        a = rows[rows["config_hash"] == full_hash].sort_values("seed")
        b = rows[rows["method"] == "original"].sort_values("seed")
        m = next(m for m in r.metrics if m.metric == "avg_gap")
        diff = a["avg_gap"].to_numpy() - b["avg_gap"].to_numpy()
        assert m.diff == pytest.approx(diff.mean()) and m.n == 2
        if np.ptp(diff) > 0:
            assert m.p == pytest.approx(stats.ttest_rel(a["avg_gap"], b["avg_gap"]).pvalue)
        assert m.wins_a + m.wins_b + m.ties == 2
        assert [x.p_holm for x in r.metrics] == pytest.approx(holm([x.p for x in r.metrics]), nan_ok=True)
        assert "forget_acc" not in [x.metric for x in r.metrics]  # compared by its gap to the oracle
    parsed = json.loads(to_json(results))
    assert parsed[0]["metrics"][0]["metric"] == "avg_gap"
    assert "p_holm" in to_text(results) and all(m.unit == "seed" for r in results for m in r.metrics)


def test_cli_compare_and_leaderboard(digits_results, tmp_path, capsys):
    ok = read_results(digits_results, SUITE)
    full_hash = ok[(ok["method"] == "finetune") & (ok["status"] == "ok")].groupby("config_hash").size().idxmax()
    code = main(["compare", f"finetune@{full_hash}", "original", "--results", str(digits_results),
                 "--suite", SUITE, "--metric", "avg_gap,forget_acc", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [m["metric"] for m in out[0]["metrics"]] == ["avg_gap", "gap_forget_acc"]
    assert main(["compare", "finetune", "original", "--results", str(digits_results), "--suite", SUITE]) == 2
    assert "several configurations" in capsys.readouterr().err
    out_dir = tmp_path / "site"
    assert main(["leaderboard", "--results", str(digits_results), "--suite", SUITE, "--out", str(out_dir),
                 "--sort", "forget_acc"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{SUITE} · ranked by forget_acc (its gap to the oracle, gap_forget_acc)")
    assert str(out_dir / f"{SUITE}.md") in printed and (out_dir / "index.html").is_file()
    markdown = (out_dir / f"{SUITE}.md").read_text()
    assert "**Ranked by** forget_acc (its gap to the oracle, gap_forget_acc)" in markdown
    assert main(["leaderboard", "--results", str(digits_results), "--suite", SUITE, "--out", str(out_dir),
                 "--sort", "forget_acc", "--markdown"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == markdown.rstrip("\n")
