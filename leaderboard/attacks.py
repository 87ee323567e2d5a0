"""The attacks of the privacy axis: which metrics they are, and each entry's gap to the floor row on each.

One metric per attack (metric_meta ``"axis": "privacy"``; rows from before that key: ``FALLBACK``), in the
scenario kinds where it can vary. Each is measured against the ``retrain`` floor row with its own resampling
unit:

* per-seed metrics: their stored ``gap_<m>`` (distance to the K oracles' mean), paired by seed against the
  floor row's own leave-one-out gap; margin of equivalence = the floor's mean gap;
* per-method metrics (one value per configuration, from a bank of extra models): the floor row's value is the
  target. Gap = ``|entry − floor|`` (match-oracle), ``max(0, entry − floor)`` (lower is better) or
  ``max(0, floor − entry)`` (higher is better). Tests are paired bootstraps: draw k of the entry and of the floor
  come from the same resample, either stored by the evaluator
  (``_examples/<evaluator>-draws-<scenario>-<method>-<config>.parquet``: draw, metric, value) or, for U-LiRA,
  recomputed from the per-example tables (``leaderboard.shadows``). Without draws: shown, not tested. Margin =
  the half-width of the floor's own 95% bootstrap interval. The floor's gap is the expected gap between two
  independent draws of the floor (an independent retrain scored the same way).

This module measures; ``leaderboard.axes`` corrects for multiplicity, gates and combines the attacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.core.attack_stats import percentile_interval
from leaderboard.aggregate import Metric, ScenarioBoard, rows_by_seed, seed_pairs
from leaderboard.shadows import N_BOOT, ShadowComparison, ShadowTables, draws_of, resamplable, shared_shadows
from leaderboard.shadows import cluster_column as shadow_unit
from leaderboard.stats import LEVEL, bootstrap_p
from leaderboard.verdicts import NOT_TESTED, RawTest, raw_seed_test, raw_shadow_test

# Rows written before metric_meta named an axis: the one metric per attack that the harness declares now.
FALLBACK = ("ulira_acc", "rmia_ft_auc", "salun_mia", "mia_nn", "klom_forget_p50")
LABELS = {"ulira": "U-LiRA", "rmia": "RMIA", "salun_mia": "SalUn MIA", "mia_nn": "MIA-NN", "klom": "KLoM",
          "relearn": "Relearn", "representation": "Linear probe"}
DRAWS = "draws"  # stored bootstrap draws: <evaluator>-draws-<scenario>-<method>-<config>.parquet
PAIRED_DRAW = "paired draw"


def attack_metrics(meta: dict[str, Metric], kind: str) -> list[str]:
    """The privacy axis's metrics in a scenario kind: declared ``axis = "privacy"``, or ``FALLBACK`` when no
    row declares an axis. Paper-comparable metrics are never part of a verdict."""
    declared = any(m.axis is not None for m in meta.values())
    names = [n for n, m in meta.items() if m.axis == "privacy"] if declared else [n for n in FALLBACK if n in meta]
    return [n for n in names if kind in meta[n].scenarios and not meta[n].paper_comparable and not meta[n].headline]


def attack_label(metric: str, meta: dict[str, Metric]) -> str:
    """'U-LiRA', 'KLoM', ...: the attack's name (its evaluator's), else the metric's."""
    info = meta.get(metric)
    return LABELS.get(info.evaluator if info else "", metric)


def gap_function(direction: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Distance of a per-method value to the floor's value that counts against the entry."""
    if direction == "lower":
        return lambda value, floor: np.maximum(0.0, np.asarray(value, float) - floor)
    if direction == "higher":
        return lambda value, floor: np.maximum(0.0, np.asarray(floor, float) - value)
    return lambda value, floor: np.abs(np.asarray(value, float) - floor)


def independent_gap(draws: np.ndarray, gap: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    level: float = LEVEL) -> tuple[float, float, float]:
    """The gap between two independent draws X, Y of the floor: (mean over all ordered pairs i != j, and its
    percentile interval). For |X − Y| the mean is Gini's mean difference; for max(0, X − Y) half of it."""
    x = np.asarray(draws, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan, math.nan
    pairs = gap(x[:, None], x[None, :])
    off = ~np.eye(len(x), dtype=bool)
    lo, hi = percentile_interval(pairs[off], level)
    return float(pairs[off].mean()), lo, hi


@dataclass
class Attack:
    """One attack in one scenario: each entry's gap to the floor row, its raw test, and the floor's own gap."""

    metric: str
    label: str
    per_method: bool
    direction: str
    gap: pd.DataFrame  # index entry: gap, lo, hi (entries with a value)
    raw: dict[str, RawTest] = field(default_factory=dict)  # entry -> test against the floor (competing + original)
    unit: str = "seed"  # resampling unit of the tests
    margin: float = math.nan
    margin_note: str = ""
    floor_gap: float = math.nan
    floor_lo: float = math.nan
    floor_hi: float = math.nan
    floor_note: str = ""
    test_note: str = ""  # why (some) entries are not tested
    seed_values: pd.DataFrame | None = None  # seed x entry: per-seed gaps (per-seed attacks)
    draws: pd.DataFrame | None = None  # draw x entry: gap draws (per-method attacks with draws)


def _gap_frame(values: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(values, orient="index", columns=["gap", "lo", "hi"], dtype=float)
    return frame[frame["gap"].notna()]


def _value(table: pd.DataFrame, entry: str, col: str) -> float:
    row = table[table["entry"] == entry]
    return float(row[col].iloc[0]) if len(row) and col in row and pd.notna(row[col].iloc[0]) else math.nan


def seed_attack(board: ScenarioBoard, ok: pd.DataFrame, metric: str, info: Metric, tested: list[str],
                label: str) -> Attack:
    """A per-seed attack: each tested entry's ``gap_<m>`` against the floor row's, paired by seed."""
    table, col = board.table, f"gap_{metric}"
    values = {str(r["entry"]): (r.get(f"{col}_mean", math.nan), r.get(f"{col}_lo", math.nan),
                                r.get(f"{col}_hi", math.nan)) for r in table.to_dict("records") if r["n"] > 0}
    attack = Attack(metric, label, False, info.direction, _gap_frame(values))
    floor = board.floor
    if floor is None:
        return attack
    attack.floor_gap, attack.floor_lo, attack.floor_hi = values.get(floor, (math.nan,) * 3)
    attack.floor_note = "the floor row's leave-one-out gap (one oracle against the others), mean over seeds"
    if math.isfinite(attack.floor_gap) and attack.floor_gap > 0:
        attack.margin = attack.floor_gap
        attack.margin_note = f"margin ±{attack.floor_gap:.3g} = the floor row's mean {col}"
    else:
        attack.margin_note = "no equivalence test: the floor row's gap is 0 or missing"
    floor_rows = rows_by_seed(ok, floor)
    if col not in floor_rows:
        return attack
    seeds = {floor: floor_rows[col].astype(float)}
    for entry in tested:
        mine = rows_by_seed(ok, entry)
        if col in mine and mine[col].notna().any():
            attack.raw[entry] = raw_seed_test(*seed_pairs(ok, entry, floor_rows, col), attack.margin)
            seeds[entry] = mine[col].astype(float)
    attack.seed_values = pd.DataFrame(seeds)
    return attack


def _stored_draws(tables: ShadowTables, evaluator: str, scenario: str, method: str, chash: str,
                  metric: str) -> pd.Series | None:
    frame = tables.table(f"{evaluator}-{DRAWS}", scenario, method, chash)
    if frame is None:
        return None
    rows = frame[frame["metric"] == metric]
    return rows.set_index("draw")["value"].astype(float).sort_index() if len(rows) else None


def _method_draws(board: ScenarioBoard, metric: str, info: Metric, entries: list[str], tables: ShadowTables
                  ) -> tuple[dict[str, np.ndarray], str, int, str]:
    """Value draws per entry (the floor's under ``board.floor``), aligned draw by draw; the resampling unit and
    how many of them there are (stored draws: the draws); why there are none."""
    table = board.table.set_index("entry")
    key = lambda e: (str(table.at[e, "method"]), str(table.at[e, "config_hash"]))
    stored = {e: _stored_draws(tables, info.evaluator, board.scenario, *key(e), metric) for e in entries}
    if stored.get(board.floor) is not None:
        have = {e: s for e, s in stored.items() if s is not None}
        shared = sorted(set.intersection(*(set(s.index) for s in have.values())))
        return {e: s.loc[shared].to_numpy() for e, s in have.items()}, PAIRED_DRAW, len(shared), ""
    if not resamplable(metric):
        return {}, "", 0, f"no stored bootstrap draws ({info.evaluator}-{DRAWS}-*.parquet) of the floor row"
    evaluator = metric.split("_", 1)[0]
    per_example = {e: tables.table(evaluator, board.scenario, *key(e)) for e in entries}
    if per_example.get(board.floor) is None:
        return {}, "", 0, "no per-example table of the floor row"
    have = {e: t for e, t in per_example.items() if t is not None}
    shadows = shared_shadows(*have.values())
    unit = "shadow pair" if shadow_unit(have[board.floor]) == "pair" else "shadow"
    return {e: draws_of(t, metric, shadows, N_BOOT) for e, t in have.items()}, unit, len(shadows), ""


def method_attack(board: ScenarioBoard, metric: str, info: Metric, tested: list[str], tables: ShadowTables | None,
                  label: str) -> Attack:
    """A per-method attack: gaps to the floor row's value, tested by a paired bootstrap over shadow models."""
    table, gap = board.table, gap_function(info.direction)
    floor = board.floor
    floor_value = _value(table, floor, f"{metric}_mean") if floor else math.nan
    values = {str(e): (float(gap(v, floor_value)), math.nan, math.nan)
              for e, v, n in zip(table["entry"], table.get(f"{metric}_mean", pd.Series(math.nan, index=table.index)),
                                 table["n"]) if n > 0 and pd.notna(v) and math.isfinite(floor_value)}
    values.pop(str(floor), None)  # the floor's own gap is not |floor − floor| = 0: see independent_gap
    attack = Attack(metric, label, True, info.direction, _gap_frame(values), unit="")
    if floor is None or not math.isfinite(floor_value):
        attack.test_note = "no floor value"
        return attack
    names = [e for e in tested if e in attack.gap.index]
    draws, unit, n_units, note = (_method_draws(board, metric, info, [floor, *names], tables) if tables
                                  else ({}, "", 0, ""))
    attack.unit, attack.test_note = unit or PAIRED_DRAW, note or ("" if tables else "no results folder")
    if floor not in draws:
        attack.floor_note = "no bootstrap draws of the floor row: no expected gap"
        for e in names:
            attack.raw[e] = RawTest(attack.unit, 0, values[e][0], math.nan, math.nan, "none", math.nan, math.nan,
                                    False, math.nan, NOT_TESTED)
        return attack
    f = draws[floor]
    lo, hi = percentile_interval(f, LEVEL)
    attack.margin = (hi - lo) / 2
    attack.margin_note = f"margin ±{attack.margin:.3g} = half-width of the floor row's 95% bootstrap interval"
    attack.floor_gap, attack.floor_lo, attack.floor_hi = independent_gap(f, gap)
    attack.floor_note = "expected gap between two independent bootstrap draws of the floor row"
    attack.gap.loc[floor] = [attack.floor_gap, attack.floor_lo, attack.floor_hi]
    gap_draws = {}
    missing = []
    for e in names:
        if e not in draws:
            missing.append(e)
            attack.raw[e] = RawTest(attack.unit, 0, values[e][0], math.nan, math.nan, "none", math.nan, math.nan,
                                    False, math.nan, NOT_TESTED)
            continue
        diff = draws[e] - f
        g = gap(draws[e], f)
        gap_draws[e] = g
        attack.gap.loc[e, ["lo", "hi"]] = percentile_interval(g, LEVEL)
        d_lo, d_hi = percentile_interval(diff, LEVEL)
        finite = diff[np.isfinite(diff)]
        v_e = _value(table, e, f"{metric}_mean")
        c = ShadowComparison(metric, n_units, attack.unit, v_e, floor_value, v_e - floor_value, d_lo, d_hi,
                             float(finite.std(ddof=1)) if len(finite) > 1 else math.nan, bootstrap_p(diff), diff)
        attack.raw[e] = raw_shadow_test(c, attack.margin, info.direction == "match-oracle",
                                        info.direction != "higher")
    if missing:
        attack.test_note = "no draws for " + ", ".join(missing)
    attack.draws = pd.DataFrame(gap_draws)
    return attack

