"""Markdown sections of a scenario's two axes: the axes table, the attacks, their agreement, the
paper-comparable group and every other metric (``leaderboard.markdown`` puts them in order)."""

from __future__ import annotations

import math

from leaderboard.aggregate import ScenarioBoard
from leaderboard.agreement import AGREE_TAU, N_BOOT, summary_line
from leaderboard.axes_format import (
    attack_cell,
    attack_name,
    attack_notes,
    axes_row,
    interval,
    privacy_verdict,
    rank_cells,
    utility_verdict,
    verdict_detail,
)
from leaderboard.board import SuiteBoard
from leaderboard.format import entry_name, header, mean_ci, number, rows, seeds_cell, shown_columns
from leaderboard.marks import unranked_mark

PAPER_HEADLINES = ("avg_gap", "avg_gap_rmia")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def axes_table(board: ScenarioBoard, ranked: bool) -> list[str]:
    """One row per entry: rank and front, both axes with their interval and verdict, the worst attack, cost.
    ``ranked``: the rank column is the ranking in force; otherwise it is labelled as the Pareto rank."""
    axes = board.axes
    rank_head = "#" if ranked else "Pareto #"
    lines = [(f"| {rank_head} | front | method | utility_gap [95% CI] | utility vs floor | privacy [95% CI] | "
              "worst attack | privacy vs floor | matches retraining | time_ratio | n | failed |"),
             "|---|---|---|---:|---|---:|---|---|---|---:|---:|---:|"]
    for r in rows(board.table):
        a = axes_row(board, r)
        rank, front = rank_cells(a, r["method_kind"] == "reference")
        mark = unranked_mark(r)
        if a is None:
            cells = [rank, front, cell(entry_name(r)), "–", mark, "–", "", mark, "", mean_ci(r, "time_ratio"),
                     seeds_cell(r), str(r["failed"])]
        else:
            pv, label = privacy_verdict(axes, a)
            utility_text = mark or verdict_detail(utility_verdict(a)) or a["u_state"]
            privacy_text = mark or (verdict_detail(pv, label) if pv is not None else a["privacy_state"])
            if a["role"] == "floor":
                utility_text = privacy_text = "floor"
            cells = [rank, front, cell(entry_name(r)), interval(a["utility"], a["utility_lo"], a["utility_hi"]),
                     cell(utility_text), interval(a["privacy"], a["privacy_lo"], a["privacy_hi"]),
                     attack_name(axes, a["worst_attack"]), cell(privacy_text), "yes" if a["matches"] else "",
                     mean_ci(r, "time_ratio"), seeds_cell(r), str(r["failed"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def marks_lines(board: ScenarioBoard) -> list[str]:
    """Why marked entries are not ranked (over budget, inconsistent) and entries without a value on an axis."""
    out = []
    table = rows(board.table)
    for flag, what in (("over_budget", "over budget"), ("inconsistent", "inconsistent")):
        found = [f"{r['entry']}: {r[f'{flag}_reason']}" for r in table if r.get(flag)]
        if found:
            out += [f"{what.capitalize()} (shown, never ranked or tested): " + "; ".join(cell(f) for f in found), ""]
    t = board.axes.table
    lacking = [f"{e} (no value on {t.at[e, 'privacy_missing']})" for e in t.index
               if t.at[e, "role"] == "entry" and t.at[e, "privacy_missing"]]
    if lacking:
        out += ["Not ranked (a value missing on the privacy axis): " + "; ".join(lacking), ""]
    return out


def attacks_table(board: ScenarioBoard) -> list[str]:
    """Each entry on each attack: gap to the floor [95% CI] · share of the original's gap · verdict."""
    axes = board.axes
    if not axes.attacks:
        return []
    heads = [f"{a.label} `{a.metric}`{'‡' if a.per_method else ''}" + ("" if a.metric in axes.in_axis
                                                                      else " (not on the axis)")
             for a in axes.attacks]
    lines = ["### Attacks", "", ("Each cell: gap to the floor row [95% interval] · share of the original's gap · "
                                 "verdict against the floor (equiv = equivalent, inconcl = inconclusive, few = too few "
                                 "units, n/t = not tested)."), "",
             "| method | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for r in rows(board.table):
        entry = str(r["entry"])
        if entry not in axes.table.index or not r["verified"]:
            continue
        lines.append(f"| {cell(entry_name(r))} | "
                     + " | ".join(cell(attack_cell(axes, a.metric, entry)) for a in axes.attacks) + " |")
    return lines + [""] + [f"- {cell(n)}" for n in attack_notes(axes)] + [""]


def agreement_table(board: ScenarioBoard) -> list[str]:
    pairs = board.agreement
    if not pairs:
        return []
    lines = ["### Attack agreement", "",
             (f"Kendall τ-b between the attacks' gaps over the competing entries, 95% percentile bootstrap over "
              f"entries ({N_BOOT} draws). Disagree: τ < {AGREE_TAU} or the interval includes 0."), "",
             "| attacks | n | τ | 95% CI | p | agree |", "|---|---:|---:|---|---:|---|"]
    for p in pairs:
        ci = f"[{number(p.lo)}, {number(p.hi)}]" if math.isfinite(p.lo) else "–"
        lines.append(f"| {p.a} – {p.b} | {p.n} | {number(p.tau)} | {ci} | {number(p.p, 3)} | "
                     f"{'no' if p.disagree else 'yes'} |")
    return lines + [""]


def disagreement(board: ScenarioBoard) -> list[str]:
    line = summary_line(board.agreement)
    return [f"**{line}**", ""] if line else []


def paper_columns(board: ScenarioBoard, suite: SuiteBoard) -> list[str]:
    """AMUN's headlines and the metrics declared paper-comparable, where they have values."""
    names = [*PAPER_HEADLINES, *(m for m, info in suite.meta.items() if info.paper_comparable
                                 and board.kind in info.scenarios)]
    return [c for c in dict.fromkeys(names) if f"{c}_mean" in board.table and board.table[f"{c}_mean"].notna().any()]


def paper_table(board: ScenarioBoard, suite: SuiteBoard) -> list[str]:
    cols = paper_columns(board, suite)
    if not cols:
        return []
    lines = ["### Paper-comparable (not a verdict)", "",
             ("AMUN's published headlines (`avg_gap`: accuracy gaps and one MIA gap, mostly a utility score) and "
              "metrics computed to sit beside published tables: shown for comparison, never tested or ranked."), "",
             "| method | " + " | ".join(header(c, suite.meta) for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows(board.table):
        if r["n"] > 0:
            lines.append(f"| {cell(entry_name(r))} | " + " | ".join(mean_ci(r, c) for c in cols) + " |")
    return lines + [""]


def metrics_table(board: ScenarioBoard, suite: SuiteBoard) -> list[str]:
    """Every other metric (mean ± 95% CI; ‡ per-method: [bootstrap interval]), without a verdict."""
    paper = set(paper_columns(board, suite))
    cols = [c for c in shown_columns(board, suite.meta) if c not in paper and c != "time_ratio"]
    if not cols:
        return []
    lines = ["### Every metric", "", "| method | " + " | ".join(header(c, suite.meta) for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for r in rows(board.table):
        if r["n"] > 0:
            lines.append(f"| {cell(entry_name(r))} | " + " | ".join(mean_ci(r, c) for c in cols) + " |")
    return lines + [""]
