"""Sequential scenarios (``sequential-SxP``, docs/scenarios.md) on the leaderboard.

A sequential scenario stores one row per (method, seed, step). The scenario's ordinary board (both axes, the
verdicts, the ranking across scenarios) is built from its **last step's** rows only (:func:`last_steps`): what is
judged is the model after every request. Beside it, :func:`sequential_boards` gives the path there, per entry:

* the **gap to the floor per step**: the entry's mean ``utility_gap`` over seeds minus the ``retrain`` floor
  row's at the same step (0 = as close to that step's oracles as an independent retrain);
* the **slope** of that gap over the steps (least squares, points per step): > 0, the entry drifts away from
  retraining as requests accumulate;
* the **forgetting reversal**: the gap to the oracles of the first request's examples (SalUn's MIA-Efficacy on
  them, ``gap_first_salun_mia``, and their accuracy, ``gap_first_forget_acc``) at the last step minus at the
  first step; > 0, the first request's examples look less forgotten after the later requests than right after
  their own;
* the last step's verdict, from the scenario board (utility and privacy states, "matches retraining").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.protocol.scoring import ORACLE_METHOD, sequential_steps

UTILITY_COLUMN = "utility_gap"
REVERSAL_COLUMNS = ("gap_first_salun_mia", "gap_first_forget_acc")
SECTION_NOTE = ("Mean utility gap (forget, retain, test accuracy) minus the `retrain` floor row's, per step (each "
                "step's oracles retrain without every request so far); the scenario's table above judges the last "
                "step. Slope: per step, least squares. Reversal: the first request's gap to the oracles at the last "
                "step minus at the first step (> 0: it looks less forgotten after the later requests).")


def _steps(frame: pd.DataFrame) -> pd.Series:
    """Each row's step (NaN for rows of other kinds, or without the column)."""
    return pd.to_numeric(frame["step"], errors="coerce") if "step" in frame else pd.Series(math.nan, frame.index)


def is_sequential(frame: pd.DataFrame) -> pd.Series:
    return frame["scenario"].map(lambda s: sequential_steps(s) is not None).astype(bool)


def last_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the scenario boards judge: every row of the other kinds, and a sequential scenario's last step."""
    if frame.empty:
        return frame
    sequential = is_sequential(frame)
    if not sequential.any():
        return frame
    last = frame["scenario"].map(lambda s: sequential_steps(s) or 0)
    keep = ~sequential | (_steps(frame) == last)
    return frame[keep].reset_index(drop=True)


@dataclass
class SequentialBoard:
    """One sequential scenario's per-step view (index = entry)."""

    scenario: str
    steps: int
    gaps: pd.DataFrame  # entry x step: mean utility_gap minus the floor's at that step
    summary: pd.DataFrame  # entry: slope, reversal columns, last step's verdict (u_state, privacy_state, matches)


def slope(values: pd.Series) -> float:
    """Least-squares slope of the values against their step numbers (NaN with fewer than two steps)."""
    values = values.dropna()
    if len(values) < 2:
        return math.nan
    return float(np.polyfit(values.index.astype(float), values.to_numpy(float), 1)[0])


def sequential_board(rows: pd.DataFrame, scenario: str, axes_table: pd.DataFrame | None = None) -> SequentialBoard:
    """The per-step view of one sequential scenario's verified ok rows (``axes_table``: its last step's axes)."""
    steps = sequential_steps(scenario) or 0
    ok = rows[(rows["status"] == "ok") & rows.get("verified", True)].copy()
    ok["_step"] = _steps(ok)
    means = ok.groupby(["entry", "_step"])[UTILITY_COLUMN].mean().unstack("_step") if len(ok) else pd.DataFrame()
    means = means.reindex(columns=range(1, steps + 1))
    floor = ok[(ok["method"] == ORACLE_METHOD) & (ok.get("method_kind", "reference") == "reference")]
    floor_by_step = floor.groupby("_step")[UTILITY_COLUMN].mean().reindex(range(1, steps + 1))
    gaps = means.sub(floor_by_step, axis=1)
    summary = pd.DataFrame(index=gaps.index)
    summary["slope"] = [slope(gaps.loc[e]) for e in gaps.index]
    for col in REVERSAL_COLUMNS:
        if col in ok:
            per = ok.groupby(["entry", "_step"])[col].mean().unstack("_step").reindex(columns=range(1, steps + 1))
            summary[f"reversal_{col.removeprefix('gap_')}"] = (per[steps] - per[1]).reindex(gaps.index)
    for col in ("u_state", "privacy_state", "matches"):
        summary[col] = (axes_table[col].reindex(gaps.index) if axes_table is not None and col in axes_table
                        else None)
    return SequentialBoard(scenario, steps, gaps, summary)


def sequential_boards(frame: pd.DataFrame, scenario_boards: list) -> list[SequentialBoard]:
    """A :class:`SequentialBoard` per sequential scenario of a suite's prepared rows (``scenario_boards``: the
    suite's :class:`leaderboard.aggregate.ScenarioBoard` list, for the last step's verdicts)."""
    if frame.empty or "scenario" not in frame:
        return []
    axes = {b.scenario: getattr(b.axes, "table", None) for b in scenario_boards}
    out = []
    for scenario, rows in frame[is_sequential(frame)].groupby("scenario", sort=True):
        out.append(sequential_board(rows, str(scenario), axes.get(str(scenario))))
    return out


def sequential_json(board: SequentialBoard) -> dict:
    """A sequential scenario's per-step view for ``--json``: per entry, the gap to the floor per step (index 0 =
    step 1), the slope, the reversal values and the last step's verdict states (NaN becomes null there)."""
    entries = []
    for entry in board.gaps.index:
        s = board.summary.loc[entry]
        entries.append({"entry": str(entry), "gap_to_floor": [float(v) for v in board.gaps.loc[entry]],
                        **{c: s[c] for c in board.summary.columns}})
    return {"scenario": board.scenario, "steps": board.steps, "entries": entries}


def _fmt(value, digits: int = 2) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–" if value is None else str(value)
    return "–" if not math.isfinite(value) else f"{value:+.{digits}f}"


def markdown_section(board: SequentialBoard) -> list[str]:
    """A sequential scenario's per-step table and summary, in Markdown."""
    steps = list(range(1, board.steps + 1))
    lines = [f"### {board.scenario}: gap to the floor per step", "", SECTION_NOTE, ""]
    reversal = [c for c in board.summary.columns if c.startswith("reversal_")]
    head = ["entry", *[f"step {s}" for s in steps], "slope", *reversal, "last step: utility", "privacy", "matches"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in board.gaps.index:
        s = board.summary.loc[entry]
        cells = [str(entry), *[_fmt(board.gaps.loc[entry, step]) for step in steps], _fmt(s["slope"], 3),
                 *[_fmt(s[c]) for c in reversal], str(s["u_state"] or "–"), str(s["privacy_state"] or "–"),
                 "✓" if s["matches"] in (True,) else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def html_section(board: SequentialBoard) -> str:
    """A sequential scenario's line plot (a line per entry) and its per-step table, as HTML."""
    from html import escape

    from leaderboard.plots import step_lines

    series = {str(e): board.gaps.loc[e].tolist() for e in board.gaps.index}
    floor = next((e for e in series if e.split(" ")[0] == ORACLE_METHOD), None)
    plot = step_lines(series, f"{board.scenario}: utility gap to the floor per step", "utility gap − floor's (points)",
                      floor)
    rows = markdown_section(board)[4:-1]  # the table's lines
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows if not line.startswith("|---")]
    head, body = cells[0], cells[1:]
    table = ("<table class=\"sequential\"><thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in head)
             + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                                               for r in body) + "</tbody></table>")
    note = escape(SECTION_NOTE)
    return (f'<section class="sequential-scenario"><h3>{escape(board.scenario)}: gap to the floor per step</h3>'
            f'<p class="note">{note}</p>{plot}{table}</section>')

