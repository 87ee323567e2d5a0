"""A suite's leaderboard: every scenario (``leaderboard.aggregate``), its two axes (``leaderboard.axes``) and
attack agreement (``leaderboard.agreement``), and the ranking across scenarios, built from the suite's rows.

A sequential scenario is judged at its last step; its per-step view is ``leaderboard.sequential``'s.

``rank_by = "pareto"`` (the default) ranks by Pareto fronts over (utility, privacy) (``leaderboard.pareto``)
and across scenarios by the mean Pareto rank (``leaderboard.overall_pareto``); a metric name (``avg_gap``, ...)
ranks by that metric as before (``leaderboard.overall``), with the two axes shown beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leaderboard.aggregate import (
    Metric,
    ScenarioBoard,
    SortKey,
    aggregate_scenario,
    display_order,
    metric_meta,
    per_method,
    prepare,
    sort_key,
    with_utility_gap,
)
from leaderboard.agreement import agreement
from leaderboard.axes import UTILITY, build_axes
from leaderboard.overall import Overall, rank_overall
from leaderboard.overall_pareto import rank_overall_pareto
from leaderboard.pareto import RULE
from leaderboard.rechecks import NOT_CHECKED, recheck_status
from leaderboard.sequential import SequentialBoard, last_steps, sequential_boards
from leaderboard.shadows import ShadowTables
from leaderboard.stats import ALPHA

PARETO = "pareto"


@dataclass
class SuiteBoard:
    """Every scenario of one suite, plus the rankings across scenarios."""

    suite: str
    scenarios: list[ScenarioBoard]
    meta: dict[str, Metric]
    sort: SortKey  # the metric the per-scenario "vs floor" column tests (utility_gap under the Pareto rule)
    overall: Overall
    alpha: float = ALPHA
    excluded_unverified: int = 0
    unreadable: int = 0  # result files that could not be read (no scenario to put them in)
    rank_by: str = PARETO  # "pareto" or the metric ranked by
    # sequential scenarios' per-step views (their scenario boards judge the last step: leaderboard/sequential.py)
    sequential: list[SequentialBoard] = field(default_factory=list)

    @property
    def pareto(self) -> bool:
        return self.rank_by == PARETO

    @property
    def rule(self) -> str:
        """How the entries of a scenario are ranked."""
        return RULE if self.pareto else self.sort.description


def attack_gaps(board: ScenarioBoard) -> pd.DataFrame:
    """entry x attack label: the competing entries' gaps to the floor (what the agreement table ranks by)."""
    axes = board.axes
    entries = list(axes.table.index[axes.table["role"] == "entry"]) if len(axes.table) else []
    return pd.DataFrame({a.label: a.gap["gap"].reindex(entries) for a in axes.attacks}, index=entries)


def _pareto_order(board: ScenarioBoard) -> None:
    """The per-scenario table in the Pareto order: rank and front from the axes."""
    t = board.axes.table
    ranks = t["rank"] if "rank" in t else pd.Series(dtype=float)
    # Only verified rows: an unverified entry may carry the same label as the verified one it is not.
    board.table["rank"] = board.table["entry"].map(ranks).where(board.table["verified"]).astype(float)
    # The ◆ mark says "within the floor's interval" on the tested metric alone: beside a two-axis rank it would
    # read as a verdict the privacy axis may contradict.
    board.table["within_floor"] = False
    board.table = display_order(board.table, board.sort)


def build_suite_board(frame: pd.DataFrame, sort: str = PARETO, verified_only: bool = False,
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
    # `unlearn-bench verify` records: verified / mismatch / not re-checked per row (leaderboard/rechecks.py)
    frame["recheck"] = recheck_status(frame, results) if results is not None else NOT_CHECKED
    return assemble(frame, name, sort, alpha, ShadowTables(results, name), dropped, unreadable)


def assemble(frame: pd.DataFrame, name: str, sort: str = PARETO, alpha: float = ALPHA,
             tables: ShadowTables | None = None, dropped: int = 0, unreadable: int = 0) -> SuiteBoard:
    """The leaderboard of one suite's prepared rows (integrity marks and entry labels set: ``prepare``)."""
    frame = with_utility_gap(frame)
    if "recheck" not in frame:
        frame = frame.assign(recheck=NOT_CHECKED)
    every_step, frame = frame, last_steps(frame)  # a sequential scenario is judged at its last step
    meta = metric_meta(frame)
    pareto = sort == PARETO
    key = sort_key(UTILITY if pareto else sort, meta, frame)
    tables = tables if tables is not None else ShadowTables(None, name)
    boards, oks = [], {}
    for scenario, rows in frame.groupby("scenario", sort=True):
        board = aggregate_scenario(rows, meta, key, name, str(scenario), alpha, tables)
        oks[board.scenario] = ok = rows[(rows["status"] == "ok") & rows["verified"]]
        board.axes = build_axes(board, ok, meta, tables, alpha)
        board.agreement = agreement(attack_gaps(board))
        fronts = board.axes.table["front"] if "front" in board.axes.table else pd.Series(dtype=float)
        board.table["front"] = board.table["entry"].map(fronts).where(board.table["verified"]).astype(float)
        if pareto:
            _pareto_order(board)
        boards.append(board)
    overall = (rank_overall_pareto(boards, oks, alpha) if pareto
               else rank_overall(boards, key, alpha, per_method=per_method(key.column, meta)))
    return SuiteBoard(name, boards, meta, key, overall, alpha, dropped, unreadable, sort,
                      sequential_boards(every_step, boards))
