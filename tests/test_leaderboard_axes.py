"""The two axes, the Pareto ranking, attack agreement and the marks, on constructed frames whose answers are
known: a dominated entry is never ranked above its dominator (while avg_gap would rank it first), an entry
leaky on one attack gets that attack as its worst, an attack that cannot detect the original stays off the
axis, a lower-is-better attack is normalised in its own direction, and τ on a hand-computed case."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leaderboard.agreement import agreement, disagrees, kendall, summary_line, tau_b
from leaderboard.attacks import FALLBACK, attack_metrics, gap_function, independent_gap
from leaderboard.board import assemble
from leaderboard.json_out import to_json
from leaderboard.markdown import render_markdown
from leaderboard.metrics import metric_meta
from leaderboard.pareto import dominates, fronts, rank
from leaderboard.shadows import ShadowTables
from leaderboard.terminal import summary

SEEDS = 5
NOISE = [0.0, 0.1, -0.1, 0.05, -0.05]  # per-seed wiggle: gives every paired test a variance


def meta_json(axis: bool = True, klom: bool = False) -> str:
    meta = {m: {"direction": "match-oracle", "evaluator": "accuracy", "scenarios": ["random", "class"]}
            for m in ("forget_acc", "retain_acc", "test_acc")}
    meta["salun_mia"] = {"direction": "match-oracle", "evaluator": "salun_mia", "scenarios": ["random"],
                         "privacy": True}
    meta["rmia_ft_auc"] = {"direction": "match-oracle", "evaluator": "rmia", "scenarios": ["random", "class"],
                           "privacy": True}
    if klom:
        meta["klom_forget_p50"] = {"direction": "lower", "evaluator": "klom", "per_method": True,
                                   "scenarios": ["random", "class"], "privacy": True}
    if axis:
        for info in meta.values():
            info["axis"] = "privacy" if info.get("privacy") else ""
    meta["avg_gap"] = {"direction": "lower", "terms": ["forget_acc", "retain_acc", "test_acc", "salun_mia"]}
    return json.dumps(meta)


def rows_of(spec: dict[str, dict[str, float]], scenario: str = "random-10", axis: bool = True,
            flags: dict[str, dict[str, list[bool]]] | None = None, klom: bool = False) -> pd.DataFrame:
    """One scenario's verified rows. ``spec``: method -> {utility, salun, rmia, avg_gap (per-seed means of
    gaps), klom (a per-method value)}; every seed adds NOISE (scaled) so paired tests have a variance. The
    forget/retain/test gaps are all ``utility`` (their mean is the utility_gap)."""
    rows = []
    for method, v in spec.items():
        for seed in range(SEEDS):
            wiggle = NOISE[seed]
            reference = method in ("retrain", "original")
            row = {"suite": "t", "scenario": scenario, "seed": seed, "method": method,
                   "method_kind": "reference" if reference else "baseline", "config_hash": f"{method}-h",
                   "hparams": "{}", "status": "ok", "verified": True, "integrity": "", "entry": method,
                   "split_hash": f"s{seed}", "original_key": f"o{seed}", "noop": False,
                   "metric_meta": meta_json(axis, klom), "time_ratio": v.get("cost", 0.5)}
            for m in ("forget_acc", "retain_acc", "test_acc"):
                row[m], row[f"gap_{m}"] = 50.0, v["utility"] * (1 + wiggle)
            row["salun_mia"], row["gap_salun_mia"] = 20.0, v["salun"] * (1 + wiggle)
            row["rmia_ft_auc"], row["gap_rmia_ft_auc"] = 50.0, v["rmia"] * (1 + wiggle)
            row["avg_gap"] = v.get("avg_gap", v["utility"]) * (1 + wiggle)
            if klom:
                row["klom_forget_p50"] = v["klom"]
            for col, per_seed in ((flags or {}).get(method) or {}).items():
                row[col] = per_seed[seed]
            rows.append(row)
    return pd.DataFrame(rows)


FLOOR = {"utility": 0.5, "salun": 0.6, "rmia": 0.8}
ORIGINAL = {"utility": 4.0, "salun": 10.0, "rmia": 14.0}


def board_of(spec: dict, sort: str = "pareto", **kwargs):
    return assemble(rows_of({"retrain": FLOOR, "original": ORIGINAL, **spec}, **kwargs), "t", sort)


# ---------------------------------------------------------------- Pareto, pure


def test_fronts_and_ranks_known_answer():
    points = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [6, 6], [2, 2]], float)
    assert list(fronts(points)) == [1, 1, 1, 2, 3, 1]  # [3, 3] is dominated by [2, 2]; equal points tie
    front, ranks = rank(points, names=list("abcdef"))
    assert list(front) == [1, 1, 1, 2, 3, 1]
    # within front 1 by the worse axis: b, f (2) before a, c (5); ties by the other axis, then the name
    assert list(ranks) == [3, 1, 4, 5, 6, 2]
    assert dominates([1, 1], [1, 2]) and not dominates([1, 2], [1, 2]) and not dominates([1, 3], [2, 1])


def test_no_dominated_point_is_ranked_above_its_dominator():
    rng = np.random.default_rng(3)
    for _ in range(50):
        points = rng.integers(0, 6, size=(12, 2)).astype(float)
        scale = rng.uniform(0.1, 10, size=2)
        _, ranks = rank(points, scale)
        for i, j in itertools.permutations(range(12), 2):
            if dominates(points[i], points[j]):
                assert ranks[i] < ranks[j]


# ---------------------------------------------------------------- the counter-example


def test_dominated_entry_is_never_ranked_above_its_dominator_though_avg_gap_would():
    # "leaky" has the best avg_gap (AMUN's headline) but is worse than "clean" on both axes.
    spec = {"clean": {"utility": 1.0, "salun": 1.0, "rmia": 1.5, "avg_gap": 2.0},
            "leaky": {"utility": 1.4, "salun": 8.0, "rmia": 12.0, "avg_gap": 1.0},
            "middle": {"utility": 2.0, "salun": 3.0, "rmia": 2.0, "avg_gap": 3.0},
            # the best utility, nearly as leaky as doing nothing: front 1 (nobody beats its utility), but the
            # tie-break by the worse axis puts it after the entry that is close on both
            "fast-leaky": {"utility": 0.6, "salun": 9.0, "rmia": 13.0, "avg_gap": 0.9}}
    old = board_of(spec, sort="avg_gap").scenarios[0].table.set_index("entry")
    assert old.loc["leaky", "rank"] < old.loc["clean", "rank"]  # the old headline puts the leaky one first
    board = board_of(spec).scenarios[0]
    t = board.axes.table
    assert t.loc["clean", "rank"] < t.loc["leaky", "rank"]
    assert t.loc["clean", "front"] == 1 and t.loc["leaky", "front"] == 2  # clean dominates leaky
    assert t.loc["fast-leaky", "front"] == 1 and t.loc["clean", "rank"] == 1
    assert t.loc["fast-leaky", "rank"] == 2  # last of front 1: its worse axis (privacy 0.93) is the worst there
    ranked = board.table.set_index("entry")["rank"]
    assert ranked["clean"] < ranked["leaky"]  # the displayed rank is the Pareto rank
    assert next(iter(board.table.loc[board.table["rank"].notna(), "entry"])) == "clean"


def test_cross_scenario_ranking_keeps_dominance():
    frames = []
    for scenario, shift in (("random-10", 0.0), ("class-0", 0.3)):
        spec = {"retrain": FLOOR, "original": ORIGINAL,
                "a": {"utility": 1.0 + shift, "salun": 1.0, "rmia": 1.2, "avg_gap": 3.0},
                "b": {"utility": 1.5 + shift, "salun": 5.0, "rmia": 6.0, "avg_gap": 1.0},  # dominated by a
                "c": {"utility": 0.8 + shift, "salun": 7.0, "rmia": 8.0, "avg_gap": 2.0}}
        frames.append(rows_of(spec, scenario))
    frame = pd.concat(frames, ignore_index=True)
    old = assemble(frame, "t", "avg_gap").overall
    assert old.entries.index("b") < old.entries.index("a")  # one metric: the dominated entry first
    overall = assemble(frame, "t").overall
    assert overall.entries.index("a") < overall.entries.index("b")
    assert overall.blocks == "scenario" and "Pareto" in overall.rule
    assert overall.table["p_best"].sum() == pytest.approx(1.0)
    assert overall.table.set_index("entry").loc["b", "p_best"] == 0.0  # dominated in every resample too


# ---------------------------------------------------------------- the privacy axis


def test_leaky_on_one_attack_gets_that_attack_as_its_worst():
    board = board_of({"one-leak": {"utility": 1.0, "salun": 0.7, "rmia": 11.0},
                      "other": {"utility": 1.2, "salun": 5.0, "rmia": 0.9}}).scenarios[0]
    axes = board.axes
    assert set(axes.in_axis) == {"salun_mia", "rmia_ft_auc"}
    row = axes.table.loc["one-leak"]
    assert row["worst_attack"] == "rmia_ft_auc" and row["verdict_attack"] == "rmia_ft_auc"
    original_gap = axes.attack("rmia_ft_auc").gap.at["original", "gap"]
    assert row["privacy"] == pytest.approx(axes.attack("rmia_ft_auc").gap.at["one-leak", "gap"] / original_gap)
    assert row["privacy_state"] == "worse" and not row["matches"]
    assert axes.table.loc["other", "worst_attack"] == "salun_mia"
    assert axes.table.loc["original", "privacy"] == pytest.approx(1.0)  # the original's own share


def test_attack_that_cannot_detect_the_original_is_left_out():
    # SalUn's MIA: the original's gap equals the floor's (0.6), so it cannot tell doing nothing from retraining.
    original = {**ORIGINAL, "salun": 0.6}
    board = assemble(rows_of({"retrain": FLOOR, "original": original,
                              "m": {"utility": 1.0, "salun": 5.0, "rmia": 1.0}}), "t").scenarios[0]
    axes = board.axes
    assert axes.in_axis == ["rmia_ft_auc"]
    assert "cannot detect the original" in axes.attack_notes["salun_mia"]
    assert axes.table.loc["m", "worst_attack"] == "rmia_ft_auc"  # its large SalUn gap does not count
    assert "Not on the axis: SalUn MIA" in render_markdown(assemble(
        rows_of({"retrain": FLOOR, "original": original, "m": {"utility": 1.0, "salun": 5.0, "rmia": 1.0}}), "t"))


def test_no_attack_detects_the_original_ranks_by_utility_alone():
    original = {**ORIGINAL, "salun": 0.6, "rmia": 0.8}
    board = assemble(rows_of({"retrain": FLOOR, "original": original, "a": {"utility": 2.0, "salun": 1, "rmia": 1},
                              "b": {"utility": 1.0, "salun": 9, "rmia": 9}}), "t").scenarios[0]
    assert board.axes.in_axis == [] and "utility" in board.axes.rule
    assert board.axes.table.loc["b", "rank"] == 1 and math.isnan(board.axes.table.loc["b", "privacy"])


def test_matches_retraining_needs_both_axes():
    board = board_of({"twin": {"utility": 0.5, "salun": 0.6, "rmia": 0.8},
                      "useful-leaky": {"utility": 0.5, "salun": 0.6, "rmia": 9.0}}).scenarios[0]
    t = board.axes.table
    assert t.loc["twin", "u_state"] == "equivalent" and t.loc["twin", "privacy_state"] == "equivalent"
    assert t.loc["twin", "matches"]
    assert t.loc["useful-leaky", "u_state"] == "equivalent" and not t.loc["useful-leaky", "matches"]


def test_old_rows_without_axis_use_the_declared_list():
    frame = rows_of({"retrain": FLOOR, "original": ORIGINAL}, axis=False)
    meta = metric_meta(frame)
    assert all(m.axis is None for m in meta.values())
    assert attack_metrics(meta, "random") == [m for m in FALLBACK if m in meta] == ["rmia_ft_auc", "salun_mia"]
    assert attack_metrics(meta, "class") == ["rmia_ft_auc"]  # salun_mia cannot vary on class forgetting
    declared = metric_meta(rows_of({"retrain": FLOOR}, axis=True))
    assert attack_metrics(declared, "random") == ["rmia_ft_auc", "salun_mia"]


def test_utility_gap_is_derived_for_old_rows():
    board = board_of({"m": {"utility": 2.0, "salun": 1.0, "rmia": 1.0}}).scenarios[0]
    assert board.axes.table.loc["m", "utility"] == pytest.approx(2.0)  # the mean of three gaps of 2.0 (+ noise)


# ---------------------------------------------------------------- a lower-is-better per-method attack (KLoM)


def write_draws(root, scenario: str, values: dict[str, np.ndarray]) -> ShadowTables:
    folder = root / "t" / "_examples"
    folder.mkdir(parents=True, exist_ok=True)
    for method, draws in values.items():
        pd.DataFrame({"draw": np.arange(len(draws)), "metric": "klom_forget_p50", "value": draws}).to_parquet(
            folder / f"klom-draws-{scenario}-{method}-{method}-h.parquet")
    return ShadowTables(root, "t")


def test_lower_is_better_attack_is_normalised_in_its_own_direction(tmp_path):
    # KLoM: lower is better and the floor's value is the target. "under" sits below the floor (gap 0); "over"
    # sits halfway between the floor and the original. Reading the direction as higher-is-better would swap them.
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.05, 1000)  # the shared resampled shadows: draws are paired
    values = {"retrain": 1.0, "original": 5.0, "under": 0.6, "over": 3.0}
    tables = write_draws(tmp_path, "random-10", {m: v + base + rng.normal(0, 0.02, 1000) for m, v in values.items()})
    spec = {"retrain": {**FLOOR, "klom": 1.0}, "original": {**ORIGINAL, "klom": 5.0},
            "under": {"utility": 1.0, "salun": 0.7, "rmia": 0.9, "klom": 0.6},
            "over": {"utility": 1.0, "salun": 0.7, "rmia": 0.9, "klom": 3.0}}
    board = assemble(rows_of(spec, klom=True), "t", tables=tables).scenarios[0]
    axes = board.axes
    klom = axes.attack("klom_forget_p50")
    assert "klom_forget_p50" in axes.in_axis and klom.unit == "paired draw"
    assert klom.gap.at["under", "gap"] == 0.0 and klom.gap.at["over", "gap"] == pytest.approx(2.0)
    assert axes.table.at["over", "share:klom_forget_p50"] == pytest.approx(0.5)
    assert axes.table.at["under", "share:klom_forget_p50"] == 0.0
    assert axes.verdicts["klom_forget_p50"]["under"].state == "better"
    assert axes.verdicts["klom_forget_p50"]["over"].state == "worse"
    assert axes.table.at["over", "worst_attack"] == "klom_forget_p50"
    # the floor's own gap: E max(0, X - Y) over independent draws of it, small but not 0
    assert 0 < klom.floor_gap < 0.1


def test_klom_without_draws_is_not_tested_and_off_the_axis():
    spec = {"retrain": {**FLOOR, "klom": 1.0}, "original": {**ORIGINAL, "klom": 5.0},
            "m": {"utility": 1.0, "salun": 0.7, "rmia": 0.9, "klom": 3.0}}
    axes = assemble(rows_of(spec, klom=True), "t").scenarios[0].axes
    assert "klom_forget_p50" not in axes.in_axis
    assert "not tested" in axes.attack_notes["klom_forget_p50"]
    assert axes.verdicts["klom_forget_p50"]["m"].state == "not tested"
    assert axes.attack("klom_forget_p50").gap.at["m", "gap"] == pytest.approx(2.0)  # shown all the same


def test_gap_functions_and_the_floors_independent_gap():
    assert gap_function("lower")(np.array([0.5, 2.0]), 1.0).tolist() == [0.0, 1.0]
    assert gap_function("higher")(np.array([0.5, 2.0]), 1.0).tolist() == [0.5, 0.0]
    assert gap_function("match-oracle")(np.array([0.5, 2.0]), 1.0).tolist() == [0.5, 1.0]
    mean, _, _ = independent_gap(np.array([0.0, 1.0, 3.0]), gap_function("match-oracle"))
    assert mean == pytest.approx((1 + 3 + 2) * 2 / 6)  # Gini's mean difference over ordered pairs i != j
    half, _, _ = independent_gap(np.array([0.0, 1.0, 3.0]), gap_function("lower"))
    assert half == pytest.approx(mean / 2)


# ---------------------------------------------------------------- attack agreement


def test_kendall_tau_known_answer_and_the_rule():
    x = np.arange(1.0, 9.0)
    y = np.array([1, 2, 3, 4, 5, 6, 8, 7], float)  # one discordant pair of 28: tau = (27 - 1) / 28
    tau, lo, hi, p = kendall(x, y)
    assert tau == pytest.approx(26 / 28) and lo <= tau <= hi and p < 0.01
    assert not disagrees(tau, lo)
    rev, lo_r, _, _ = kendall(x, x[::-1])
    assert rev == pytest.approx(-1.0) and disagrees(rev, lo_r)
    assert disagrees(0.6, -0.1) and disagrees(0.4, 0.1)  # the interval reaches 0 / tau below 0.5
    rng = np.random.default_rng(2)
    for _ in range(50):  # the vectorised tau-b of the bootstrap is scipy's, ties included
        a, b = rng.integers(0, 4, 9).astype(float), rng.integers(0, 4, 9).astype(float)
        expected = stats.kendalltau(a, b).statistic
        assert (math.isnan(expected) and math.isnan(tau_b(a, b))) or tau_b(a, b) == pytest.approx(expected)


def test_agreement_table_and_the_line_above_it():
    gaps = pd.DataFrame({"A": np.arange(8.0), "B": np.arange(8.0) + 0.5, "C": np.arange(8.0)[::-1]},
                        index=[f"e{i}" for i in range(8)])
    pairs = {(p.a, p.b): p for p in agreement(gaps)}
    assert pairs[("A", "B")].tau == pytest.approx(1.0) and not pairs[("A", "B")].disagree
    assert pairs[("A", "C")].tau == pytest.approx(-1.0) and pairs[("A", "C")].disagree
    line = summary_line(list(pairs.values()))
    assert "A vs C τ = -1.00" in line and "A vs B" not in line
    assert summary_line([pairs[("A", "B")]]) == ""


def test_disagreeing_attacks_are_named_on_the_page():
    # SalUn MIA and RMIA order the entries in opposite ways.
    spec = {f"m{i}": {"utility": 1.0 + i / 10, "salun": 1.0 + i, "rmia": 9.0 - i} for i in range(6)}
    board = board_of(spec)
    text = render_markdown(board)
    assert "The attacks disagree" in text and "RMIA vs SalUn MIA τ = -1.00" in text
    assert "### Attack agreement" in text


# ---------------------------------------------------------------- marks


def test_over_budget_and_inconsistent_entries_are_shown_not_ranked(tmp_path):
    flags = {"slow": {"over_budget": [True, True, True, False, False], "time_budget": [2.0] * 5},
             "odd": {"inconsistent": [True, True, True, True, False],
                     "consistency_evidence": ["re-run differs: forget_acc 12.0 vs 80.1"] * 5},
             "fine": {"over_budget": [True, False, False, False, False]}}
    spec = {"slow": {"utility": 0.1, "salun": 0.1, "rmia": 0.1}, "odd": {"utility": 0.1, "salun": 0.1, "rmia": 0.1},
            "fine": {"utility": 1.0, "salun": 1.0, "rmia": 1.0}}
    board = assemble(rows_of({"retrain": FLOOR, "original": ORIGINAL, **spec}, flags=flags), "t")
    scenario = board.scenarios[0]
    table = scenario.table.set_index("entry")
    assert table.loc["slow", "vs_floor_state"] == "over budget" and math.isnan(table.loc["slow", "rank"])
    assert table.loc["odd", "vs_floor_state"] == "inconsistent" and math.isnan(table.loc["odd", "rank"])
    assert table.loc["fine", "rank"] == 1  # one of five runs over budget is not "more than half"
    assert scenario.axes.table.loc["slow", "role"] == "marked"
    text = render_markdown(board)
    assert "slow (over budget)" in text and "3 of 5 runs over the time budget (2)" in text
    assert "odd (inconsistent)" in text and "re-run differs: forget_acc 12.0 vs 80.1" in text
    from leaderboard.html import render_html

    page = render_html([board])
    assert "over budget (not ranked): 3 of 5 runs over the time budget" in page  # the hover
    marks = json.loads(to_json([board]))["suites"][0]["scenarios"][0]["entries"]
    slow = next(e for e in marks if e["entry"] == "slow")
    assert slow["marks"]["over_budget"] and slow["rank"] is None
    assert board.overall.excluded.get("slow") == "random-10: over budget"


def test_terminal_summary_shows_both_axes_in_100_columns():
    spec = {"a-very-long-method-name-indeed": {"utility": 1.0, "salun": 1.0, "rmia": 1.5},
            "b": {"utility": 2.0, "salun": 0.7, "rmia": 1.0}}
    text = summary([board_of(spec)], {})
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "privacy [95% CI]" in text and "utility [95% CI]" in text and "ranked by Pareto fronts" in text
