"""Shared formatting for the Markdown and HTML leaderboards: which columns, how numbers read."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from leaderboard.aggregate import Metric, ScenarioBoard
from leaderboard.stats import ALPHA, WILCOXON_MIN_N

RECONSTRUCTED_MARK = "†"
SHARED_MARK = "‡"
SHARED_NOTE = ("‡ scored once per method configuration on the shared shadow bank (the same value for every "
               "seed): shown without a seed interval; its spread comes from the number of shadow models")
UNVERIFIED_MARK = "⚠"
TEST_NAMES = {"t": "paired t", "wilcoxon": "Wilcoxon", "identical": "identical", "none": "too few pairs"}


def shown_columns(board: ScenarioBoard, meta: dict[str, Metric]) -> list[str]:
    """avg_gap, each metric with a value in this scenario, the sort column if it is a gap, time_ratio."""
    cols = ["avg_gap", *meta]
    if board.sort.column not in cols:
        cols.append(board.sort.column)
    cols.append("time_ratio")
    table = board.table
    return [c for c in dict.fromkeys(cols) if f"{c}_mean" in table and table[f"{c}_mean"].notna().any()]


def split_columns(board: ScenarioBoard, meta: dict[str, Metric]) -> tuple[list[str], list[str]]:
    """(leading columns: avg_gap and the sort column, shown before the verdict; the other metrics)."""
    cols = shown_columns(board, meta)
    lead = [c for c in cols if c in ("avg_gap", board.sort.column)]
    return lead, [c for c in cols if c not in lead]


def header(col: str, meta: dict[str, Metric]) -> str:
    info = meta.get(col.removeprefix("gap_"))
    marks = (RECONSTRUCTED_MARK if info is not None and info.reconstructed else "")
    return col + marks + (SHARED_MARK if info is not None and info.per_method else "")


def number(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def mean_ci(row: dict[str, Any], col: str, digits: int = 2) -> str:
    """``mean ± half-width`` of the 95% CI; the half-width is left out for a single seed."""
    mean, lo, hi = row.get(f"{col}_mean"), row.get(f"{col}_lo"), row.get(f"{col}_hi")
    if mean is None or not math.isfinite(mean):
        return "–"
    if lo is None or not math.isfinite(lo):
        return number(mean, digits)
    return f"{number(mean, digits)} ± {number((hi - lo) / 2, digits)}"


def seeds_cell(row: dict[str, Any]) -> str:
    n, expected = int(row["n"]), int(row["n_expected"])
    return f"{n}/{expected}" if n != expected else str(n)


def p_text(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict(row: dict[str, Any]) -> str:
    """The significance cell: best, tied with the best, or worse (Holm-adjusted p and the test used)."""
    test = row.get("vs_best_test") or ""
    if test == "best":
        return "best"
    if not test:
        return ""
    name = TEST_NAMES.get(test, test)
    if test == "none":
        return f"n/a ({name})"
    p = p_text(row["vs_best_p_holm"])
    state = row.get("vs_best_state") or ("tied" if row.get("tied") else "worse")
    return f"{state} (p={p}, {name}, n={int(row['vs_best_n'])})"


def entry_name(row: dict[str, Any]) -> str:
    name = str(row["entry"])
    if row["method"] == "retrain" and row["method_kind"] == "reference":
        name += " (oracle)"
    if not row["verified"]:
        name += f" {UNVERIFIED_MARK}"
    return name


def hparams_text(row: dict[str, Any]) -> str:
    try:
        hp = json.loads(row.get("hparams") or "{}")
    except ValueError:
        return str(row.get("hparams"))
    return ", ".join(f"{k}={v}" for k, v in sorted(hp.items())) or "defaults"


def method_note(sort_description: str) -> str:
    return (f"Ranked by {sort_description}. Cells: mean ± half-width of the 95% t-interval over seeds; "
            f"n = seeds with a successful run (x/y when some are missing). Each method is compared with the "
            f"best (the best with every seed), paired by seed (same split, same original): Wilcoxon signed-rank with ≥{WILCOXON_MIN_N} "
            f"non-zero differences, else paired t; p-values Holm-corrected across the scenario's comparisons; "
            f"'tied' = not significantly worse at α={ALPHA}. Reference rows (oracle, original) are not ranked.")


def rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    return table.to_dict("records")
