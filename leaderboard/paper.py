"""The leaderboard in the formats papers use: a CSV with one row per (scenario, entry), and a LaTeX (booktabs)
table per scenario.

Both read the same records (``paper_records``): the numbers of the Markdown's two-axes table (utility_gap and
privacy with their 95% intervals and verdicts, time_ratio) plus the three accuracies the gaps are made of, for every
verified entry with a successful run, the floor and original rows included. Nothing is recomputed here.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from leaderboard.aggregate import ScenarioBoard
from leaderboard.axes_format import axes_row, short_state
from leaderboard.board import SuiteBoard
from leaderboard.format import entry_name, rows
from leaderboard.stats import LEVEL

ACCURACIES = ("forget_acc", "retain_acc", "test_acc")  # mean [95% t-interval over seeds], from the entry table
# (column, lower is better): the columns where the best ranked entry is marked
BEST_COLUMNS = (("utility_gap", True), ("privacy", True))


def paper_records(board: SuiteBoard) -> list[dict[str, Any]]:
    """One record per (scenario, verified entry with a value): what the CSV holds and the LaTeX table shows."""
    out = []
    for scenario in board.scenarios:
        version = scenario.provenance.get("suite version", "")
        for r in rows(scenario.table):
            a = axes_row(scenario, r)
            if a is None:
                continue
            rec = {"suite": board.suite, "suite_version": version, "scenario": scenario.scenario,
                   "entry": str(r["entry"]), "label": entry_name(r), "role": a["role"],
                   "rank": a.get("rank", math.nan), "front": a.get("front", math.nan), "n": int(r["n"])}
            for col in ACCURACIES:
                rec.update({f"{col}_mean": r.get(f"{col}_mean", math.nan), f"{col}_lo": r.get(f"{col}_lo", math.nan),
                            f"{col}_hi": r.get(f"{col}_hi", math.nan)})
            rec.update({"utility_gap": a["utility"], "utility_gap_lo": a["utility_lo"],
                        "utility_gap_hi": a["utility_hi"], "utility_vs_floor": a.get("u_state", ""),
                        "privacy": a["privacy"], "privacy_lo": a["privacy_lo"], "privacy_hi": a["privacy_hi"],
                        "worst_attack": a["worst_attack"], "privacy_vs_floor": a.get("privacy_state", ""),
                        "matches_retraining": bool(a["matches"]), "time_ratio": r.get("time_ratio_mean", math.nan)})
            out.append(rec)
    return out


def render_csv(boards: list[SuiteBoard]) -> str:
    """Every suite's records as CSV (full precision; empty cells where there is no value)."""
    frame = pd.DataFrame.from_records([rec for b in boards for rec in paper_records(b)])
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------- LaTeX
_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex(text: str) -> str:
    """Plain text, escaped for LaTeX (marks outside ASCII are dropped: pdflatex's default fonts lack them)."""
    text = "".join(_ESCAPES.get(ch, ch) for ch in str(text))
    return text.encode("ascii", "ignore").decode().strip()


def _num(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _cell(mean: float, lo: float, hi: float, best: bool = False) -> str:
    """``mean ± half-width`` of the 95% interval (``mean [lo, hi]`` when it is not symmetric), bold if best."""
    if mean is None or not math.isfinite(mean):
        return "--"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        text = _num(mean)
    elif abs((hi - mean) - (mean - lo)) <= 1e-9 * max(1.0, abs(mean)):
        text = f"{_num(mean)} $\\pm$ {_num((hi - lo) / 2)}"
    else:
        text = f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"
    return f"\\textbf{{{text}}}" if best else text


def best_entries(records: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per marked column, the ranked entries (no references, nothing unranked) with the best mean; ties all
    marked."""
    best: dict[str, set[str]] = {}
    entries = [r for r in records if r["role"] == "entry" and math.isfinite(r["rank"])]
    for col, lower in BEST_COLUMNS:
        values = [r[col] for r in entries if r[col] is not None and math.isfinite(r[col])]
        if values:
            target = min(values) if lower else max(values)
            best[col] = {r["entry"] for r in entries if r[col] == target}
    return best


def scenario_latex(board: SuiteBoard, scenario: ScenarioBoard, records: list[dict[str, Any]]) -> str:
    """One ``table`` with a booktabs ``tabular``: the floor and original rows, then the entries in rank order."""
    best = best_entries(records)
    head = ["Method", "Forget acc.", "Retain acc.", "Test acc.", "Utility gap", "Privacy", "Time ratio",
            "vs floor (U / P)"]
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * 6 + "l}", r"\toprule",
             " & ".join(head) + r" \\", r"\midrule"]
    references = [r for r in records if r["role"] != "entry"]
    entries = sorted((r for r in records if r["role"] == "entry"),
                     key=lambda r: (not math.isfinite(r["rank"]), r["rank"] if math.isfinite(r["rank"]) else 0))
    for group in (references, entries):
        for r in group:
            cells = [tex(r["label"])]
            cells += [_cell(r[f"{c}_mean"], r[f"{c}_lo"], r[f"{c}_hi"]) for c in ACCURACIES]
            cells += [_cell(r["utility_gap"], r["utility_gap_lo"], r["utility_gap_hi"],
                            r["entry"] in best.get("utility_gap", ())),
                      _cell(r["privacy"], r["privacy_lo"], r["privacy_hi"], r["entry"] in best.get("privacy", ())),
                      _cell(r["time_ratio"], math.nan, math.nan)]
            states = (short_state(r["utility_vs_floor"]), short_state(r["privacy_vs_floor"]))
            cells.append(tex(" / ".join(s or "--" for s in states)))
            lines.append(" & ".join(cells) + r" \\")
        if group is references and entries:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{tex(caption(board, scenario))}}}",
              f"\\label{{tab:{tex(board.suite)}-{tex(scenario.scenario)}}}".replace("\\_", "-"), r"\end{table}"]
    return "\n".join(lines)


def caption(board: SuiteBoard, scenario: ScenarioBoard) -> str:
    """Suite and version, scenario, seeds, the floor, the intervals and the tests behind the verdicts."""
    prov = scenario.provenance
    seeds = prov.get("seeds", ", ".join(map(str, scenario.seeds)))
    level = round(LEVEL * 100)
    return (f"{board.suite} (suite version {prov.get('suite version', '?')}), scenario {scenario.scenario}, seeds "
            f"{seeds}, {prov.get('oracles', '?')} oracles. Accuracies in percent; cells are means with the "
            f"{level}% t-interval over seeds (privacy: its {level}% interval). Utility gap: mean of the forget, "
            "retain and test accuracy gaps to the oracles (points); privacy: the largest share of the original's "
            "exposure left over the attacks that detect it (0 = as retraining, 1 = as the original). The retrain "
            "(floor) row is one independent retrain scored against the other oracles. vs floor: utility by a "
            "two-sided paired t-test by seed and TOST with the floor's mean as margin, privacy by the worst of the "
            f"attacks' verdicts, alpha = {board.alpha}, Holm-corrected across the scenario's entries (equiv = "
            "equivalent, inconcl = inconclusive, n/t = not tested). Bold: the best ranked entry on utility gap and "
            "on privacy (references and unranked entries excluded). Time ratio: method CPU time over one oracle's training CPU time.")


def render_latex(boards: list[SuiteBoard]) -> str:
    """A LaTeX fragment (needs ``\\usepackage{booktabs}``): one table per scenario of every suite."""
    parts = [f"% unlearn-bench leaderboard: {', '.join(b.suite for b in boards)}; needs \\usepackage{{booktabs}}"]
    for board in boards:
        records = paper_records(board)
        for scenario in board.scenarios:
            mine = [r for r in records if r["scenario"] == scenario.scenario]
            if mine:
                parts.append(scenario_latex(board, scenario, mine))
    return "\n\n".join(parts) + "\n"


def latex_document(fragment: str) -> str:
    """The fragment as a complete document (what the test compiles with pdflatex)."""
    return ("\\documentclass{article}\n\\usepackage[margin=1.5cm,landscape]{geometry}\n\\usepackage{booktabs}\n"
            "\\begin{document}\n" + fragment + "\\end{document}\n")
