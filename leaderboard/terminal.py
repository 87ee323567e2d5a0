"""The compact summary ``unlearn-bench leaderboard`` prints: readable in a 100-column terminal.

Per scenario: the rank (and the rule that produced it), Pareto front, method, both axes with their 95%
intervals and verdicts against the floor, the attack behind the privacy value, and n; a line when the attacks
disagree; then the ranking across scenarios (mean rank and P(best)) and where the full Markdown and HTML are.
Under ``--rank-by METRIC`` the metric's own block (rank, value, verdict) comes first. The wide tables stay in
``site/<suite>.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

from leaderboard.aggregate import ScenarioBoard
from leaderboard.axes_format import (
    MATCH_MARK,
    SHORT_LEGEND,
    attack_name,
    axes_row,
    interval,
    rank_cells,
    short_state,
)
from leaderboard.board import SuiteBoard
from leaderboard.format import entry_name, number, p_is, rows, seeds_cell, verdict
from leaderboard.marks import unranked_mark
from leaderboard.pareto import SHORT_RULE

WIDTH = 100
NAME_W = 30
AXES_NAME_W = 20


def _wrap(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent="  ")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _interval(r: dict, col: str) -> str:
    mean, lo, hi = r.get(f"{col}_mean"), r.get(f"{col}_lo"), r.get(f"{col}_hi")
    if mean is None or not math.isfinite(mean):
        return "–"
    if lo is None or not math.isfinite(lo):
        return number(mean)
    return f"{number(mean)} [{number(lo)}, {number(hi)}]"


def scenario_lines(board: ScenarioBoard) -> list[str]:
    col = board.sort.column
    lines = [f"{board.scenario}  ({len(board.seeds)} seeds; {board.margin_note})"]
    lines = [_clip(lines[0], WIDTH)]
    head = f"  {'#':>3}  {'method':<{NAME_W}} {col + ' [95% CI]':<22} {'vs floor':<30} {'n':>5}"
    lines.append(_clip(head, WIDTH))
    for r in rows(board.table):
        if not r["verified"] or r["n"] == 0:
            continue  # unverified and failed entries: see the Markdown
        rank = "ref" if r["method_kind"] == "reference" else ("–" if math.isnan(r["rank"]) else f"{r['rank']:g}")
        state = verdict(r, short=True)
        if state in ("worse", "better", "equivalent"):
            p = r["vs_floor_p_equiv_holm"] if state == "equivalent" else r["vs_floor_p_holm"]
            state += f" ({p_is(p)})"
        line = (f"  {rank:>3}  {_clip(entry_name(r), NAME_W):<{NAME_W}} {_clip(_interval(r, col), 22):<22} "
                f"{_clip(state, 30):<30} {seeds_cell(r):>5}")
        lines.append(_clip(line.rstrip(), WIDTH))
    return lines


def _axis_line(axes) -> str:
    """'privacy axis: U-LiRA, RMIA; off it: KLoM (not tested)' (the Markdown gives the reasons in full)."""
    if not axes.in_axis:
        return "no privacy axis: no attack detects the original (utility only)"
    off = [f"{a.label} ({'not tested' if 'not tested' in axes.attack_notes[a.metric] else 'blind'})"
           for a in axes.attacks if a.metric not in axes.in_axis]
    return ("privacy axis: " + ", ".join(axes.attack(m).label for m in axes.in_axis)
            + (f"; off it: {', '.join(off)}" if off else ""))


def axes_lines(board: ScenarioBoard, ranked: bool) -> list[str]:
    """Both axes per entry; ``ranked``: '#' is the ranking in force (else the Pareto rank, for comparison)."""
    axes = board.axes
    lines = [_clip(f"{board.scenario}  ({len(board.seeds)} seeds) · {_axis_line(axes)}", WIDTH)] if ranked else \
        [_clip(f"  two axes (the default ranking; '#' = Pareto rank) · {_axis_line(axes)}", WIDTH)]
    bad = [p for p in board.agreement if p.disagree]
    if bad:  # the Markdown has the full line and the table
        pairs = ", ".join(f"{p.a}/{p.b} {p.tau:.2f}" if math.isfinite(p.tau) else f"{p.a}/{p.b} –" for p in bad)
        lines.append(_clip(f"  ! attacks disagree (τ < 0.5 or its CI reaches 0): {pairs}", WIDTH))
    head = (f"  {'#':>3} {'F':>2}  {'method':<{AXES_NAME_W}} {'utility [95% CI]':<18} {'vs floor':<8} "
            f"{'privacy [95% CI]':<18} {'worst':<9} {'vs floor':<8} {'n':>3}")
    lines.append(head)
    for r in rows(board.table):
        a = axes_row(board, r)
        if not r["verified"] or a is None:
            continue  # unverified and failed entries: see the Markdown
        rank, front = rank_cells(a, r["method_kind"] == "reference")
        mark = short_state(unranked_mark(r))
        name = entry_name(r) + (f" {MATCH_MARK}" if a["matches"] else "")
        if a["matches"] and len(name) > AXES_NAME_W:  # keep the mark visible
            name = _clip(entry_name(r), AXES_NAME_W - 2) + f" {MATCH_MARK}"
        line = (f"  {rank:>3} {front:>2}  {_clip(name, AXES_NAME_W):<{AXES_NAME_W}} "
                f"{_clip(interval(a['utility'], a['utility_lo'], a['utility_hi']), 18):<18} "
                f"{mark or short_state(a['u_state']):<8} "
                f"{_clip(interval(a['privacy'], a['privacy_lo'], a['privacy_hi']), 18):<18} "
                f"{attack_name(axes, a['worst_attack']):<9} {mark or short_state(a['privacy_state']):<8} "
                f"{seeds_cell(r):>3}")
        lines.append(_clip(line.rstrip(), WIDTH))
    return lines


def overall_lines(board: SuiteBoard) -> list[str]:
    overall = board.overall
    if overall is None or overall.empty:
        return [f"ranking across scenarios: {overall.note if overall else 'none'}"]
    f = overall.friedman
    lines = []
    if board.pareto:
        lines.append("ranking across scenarios: mean of the per-scenario Pareto ranks")
    if f is not None and math.isfinite(f.p):
        lines.append(_clip(f"ranking across scenarios: Friedman over {f.n_blocks} blocks ({overall.blocks}), "
                           f"{p_is(f.p)}; Nemenyi CD = {number(f.cd)} mean ranks", WIDTH))
    else:
        lines.append(f"ranking across scenarios ({overall.note or 'no test'})")
    lines.append(f"  {'method':<{NAME_W}} {'mean rank':>9} {'P(best)':>8}")
    for r in overall.table.head(8).to_dict("records"):
        lines.append(f"  {_clip(str(r['entry']), NAME_W):<{NAME_W}} {number(r['mean_rank']):>9} "
                     f"{number(r['p_best']):>8}")
    if len(overall.table) > 8:
        lines.append(f"  … {len(overall.table) - 8} more in the Markdown")
    if overall.excluded:
        lines.append(_clip(f"  not ranked across scenarios: {', '.join(sorted(overall.excluded))}", WIDTH))
    return lines


def summary(boards: list[SuiteBoard], written: dict[str, Path]) -> str:
    lines: list[str] = []
    for board in boards:
        lines.append(_clip(f"{board.suite} · ranked by {SHORT_RULE if board.pareto else board.rule}", WIDTH))
        lines.append("")
        for scenario in board.scenarios:
            if board.pareto:
                lines += axes_lines(scenario, ranked=True) + [""]
            else:
                lines += scenario_lines(scenario) + axes_lines(scenario, ranked=False) + [""]
        lines += [_clip(SHORT_LEGEND, WIDTH)] if len(SHORT_LEGEND) <= WIDTH else _wrap(SHORT_LEGEND)
        lines += [""] + overall_lines(board) + [""]
        for sequential in board.sequential:  # the scenario's table above judged its last step
            slopes = ", ".join(f"{e} {v:+.2f}" for e, v in sequential.summary["slope"].dropna().items())
            lines += _wrap(f"{sequential.scenario}: judged at step {sequential.steps} of {sequential.steps}; slope of "
                           f"the gap to the floor per step: {slopes or '–'} (per step, reversal: Markdown / HTML)")
            lines.append("")
        unverified = sum(int((~s.table["verified"]).sum()) for s in board.scenarios)
        if unverified:
            lines.append(f"{unverified} unverified entr{'y' if unverified == 1 else 'ies'} not shown here "
                         "(see the Markdown for why)")
        if board.suite in written:
            lines += ["every metric, every test used (Markdown):", f"  {written[board.suite]}"]
    if "html" in written:
        lines += ["plots and the critical-difference diagram (HTML, offline):", f"  {written['html']}"]
    return "\n".join(lines)
