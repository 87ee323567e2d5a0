"""The compact summary ``unlearn-bench leaderboard`` prints: readable in a 100-column terminal.

Per scenario: rank, method, the ranking metric with its 95% interval, the verdict against the floor and n;
then the ranking across scenarios (mean rank and P(best)) and where the full Markdown and HTML are. The wide
table with every metric stays in ``site/<suite>.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

from leaderboard.aggregate import ScenarioBoard
from leaderboard.board import SuiteBoard
from leaderboard.format import entry_name, number, p_is, rows, seeds_cell, verdict

WIDTH = 100
NAME_W = 30


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


def overall_lines(board: SuiteBoard) -> list[str]:
    overall = board.overall
    if overall is None or overall.empty:
        return [f"ranking across scenarios: {overall.note if overall else 'none'}"]
    f = overall.friedman
    lines = []
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
        lines.append(_clip(f"{board.suite} · ranked by {board.sort.description}", WIDTH))
        lines.append("")
        for scenario in board.scenarios:
            lines += scenario_lines(scenario) + [""]
        lines += overall_lines(board) + [""]
        unverified = sum(int((~s.table["verified"]).sum()) for s in board.scenarios)
        if unverified:
            lines.append(f"{unverified} unverified entr{'y' if unverified == 1 else 'ies'} not shown here "
                         "(see the Markdown for why)")
        if board.suite in written:
            lines += ["every metric, every test used (Markdown):", f"  {written[board.suite]}"]
    if "html" in written:
        lines += ["plots and the critical-difference diagram (HTML, offline):", f"  {written['html']}"]
    return "\n".join(lines)
