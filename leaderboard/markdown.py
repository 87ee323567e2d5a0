"""The README-friendly Markdown leaderboard of one suite."""

from __future__ import annotations

import math

from leaderboard.aggregate import ScenarioBoard, SuiteBoard
from leaderboard.format import (
    RECONSTRUCTED_MARK,
    SHARED_NOTE,
    UNVERIFIED_MARK,
    entry_name,
    header,
    hparams_text,
    mean_ci,
    method_note,
    rows,
    seeds_cell,
    split_columns,
    verdict,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def rank_summary(board: SuiteBoard) -> list[str]:
    if board.ranks.empty:
        return []
    scenarios = [b.scenario for b in board.scenarios if b.scenario in board.ranks]
    lines = ["## Average rank across scenarios", "",
             "| method | " + " | ".join(scenarios) + " | mean rank |", "|---" * (len(scenarios) + 2) + "|"]
    for r in board.ranks.to_dict("records"):
        cells = ["–" if math.isnan(r[s]) else f"{r[s]:g}" for s in scenarios]
        note = f" ({int(r['n_scenarios'])} of {len(scenarios)})" if r["n_scenarios"] < len(scenarios) else ""
        lines.append(f"| {_cell(r['entry'])} | " + " | ".join(cells) + f" | {r['mean_rank']:.2f}{note} |")
    return lines + [""]


def scenario_table(board: ScenarioBoard, suite: SuiteBoard) -> list[str]:
    lead, rest = split_columns(board, suite.meta)
    lines = [f"## {board.scenario}", "",
             "| # | method | " + " | ".join(header(c, suite.meta) for c in lead) + " | vs best | n | failed | "
             + " | ".join(header(c, suite.meta) for c in rest) + " |",
             "|---|---|" + "---:|" * len(lead) + "---|---:|---:|" + "---:|" * len(rest)]
    unverified = []
    for r in rows(board.table):
        rank = "ref" if r["method_kind"] == "reference" else ("–" if math.isnan(r["rank"]) else f"{r['rank']:g}")
        lines.append(f"| {rank} | {_cell(entry_name(r))} | " + " | ".join(mean_ci(r, c) for c in lead)
                     + f" | {_cell(verdict(r))} | {seeds_cell(r)} | {r['failed']} | "
                     + " | ".join(mean_ci(r, c) for c in rest) + " |")
        if not r["verified"]:
            unverified.append(f"{r['entry']}: {r['integrity']}")
    lines.append("")
    if unverified:
        lines += [f"{UNVERIFIED_MARK} unverified (not ranked): " + "; ".join(unverified), ""]
    prov = " · ".join(f"{k} {v}" for k, v in board.provenance.items() if k != "packages")
    lines += [f"<sub>{prov}</sub>", ""]
    return lines


def configurations(board: SuiteBoard) -> list[str]:
    seen: dict[str, str] = {}
    for scenario in board.scenarios:
        for r in rows(scenario.table):
            seen.setdefault(str(r["entry"]), f"`{r['config_hash']}` {hparams_text(r)}")
    lines = ["## Configurations", ""]
    lines += [f"- **{_cell(entry)}**: {text}" for entry, text in seen.items()]
    return lines + [""]


def render_markdown(board: SuiteBoard) -> str:
    lines = [f"# {board.suite}", "", method_note(board.sort.description), ""]
    reconstructed = [m.name for m in board.meta.values() if m.reconstructed]
    if reconstructed:
        lines += [f"{RECONSTRUCTED_MARK} reconstructed metric definition (not the authors' verified setting): "
                  + ", ".join(reconstructed), ""]
    if any(m.per_method for m in board.meta.values()):
        lines += [SHARED_NOTE, ""]
    if board.excluded_unverified:
        lines += [f"{board.excluded_unverified} unverified row(s) excluded (--verified-only).", ""]
    if board.unreadable:
        lines += [f"{board.unreadable} result file(s) could not be read and are not shown.", ""]
    lines += rank_summary(board)
    for scenario in board.scenarios:
        lines += scenario_table(scenario, board)
    lines += configurations(board)
    return "\n".join(lines)
