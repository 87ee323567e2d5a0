"""A suite's leaderboard: every scenario (``leaderboard.aggregate``) and the ranking across them
(``leaderboard.overall``), built from the suite's rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leaderboard.aggregate import (
    Metric,
    ScenarioBoard,
    SortKey,
    aggregate_scenario,
    metric_meta,
    per_method,
    prepare,
    sort_key,
)
from leaderboard.overall import Overall, rank_overall
from leaderboard.shadows import ShadowTables
from leaderboard.stats import ALPHA
from leaderboard.verification import NOT_CHECKED, recheck_status


@dataclass
class SuiteBoard:
    """Every scenario of one suite, plus the rankings across scenarios (``leaderboard.overall``)."""

    suite: str
    scenarios: list[ScenarioBoard]
    meta: dict[str, Metric]
    sort: SortKey
    overall: Overall
    alpha: float = ALPHA
    excluded_unverified: int = 0
    unreadable: int = 0  # result files that could not be read (no scenario to put them in)


def build_suite_board(frame: pd.DataFrame, sort: str = "avg_gap", verified_only: bool = False,
                      data_root: str | None = None, alpha: float = ALPHA, results: Path | None = None,
                      suite_file: str | None = None) -> SuiteBoard:
    """The leaderboard of one suite's rows; ``results`` (the results root) locates per-example tables."""
    suites = frame["suite"].dropna().unique()
    if len(suites) != 1:
        raise ValueError(f"build_suite_board expects one suite, got {list(suites)}")
    name = str(suites[0])
    unreadable = int(frame["scenario"].isna().sum()) if "scenario" in frame else len(frame)
    frame, dropped = prepare(frame[frame["scenario"].notna()] if "scenario" in frame else frame.iloc[:0],
                             verified_only, data_root, suite_file)
    # `unlearn-bench verify` records: verified / mismatch / not re-checked per row (leaderboard/verification.py)
    frame["recheck"] = recheck_status(frame, results) if results is not None else NOT_CHECKED
    meta = metric_meta(frame)
    key = sort_key(sort, meta, frame)
    tables = ShadowTables(results, name)
    boards = [aggregate_scenario(rows, meta, key, name, str(scenario), alpha, tables)
              for scenario, rows in frame.groupby("scenario", sort=True)]
    overall = rank_overall(boards, key, alpha, per_method=per_method(key.column, meta))
    return SuiteBoard(name, boards, meta, key, overall, alpha, dropped, unreadable)
