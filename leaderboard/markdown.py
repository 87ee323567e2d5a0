"""The README-friendly Markdown leaderboard of one suite.

Under the default rule each scenario shows the two-axes table (ranked), the attacks, their agreement, the
paper-comparable group and every other metric; under ``--rank-by METRIC`` it shows the metric's table as it
always has, then the two axes beside it (``leaderboard.markdown_axes``)."""

from __future__ import annotations

import math

from leaderboard.aggregate import RECONSTRUCTED_METHOD_MARK, ScenarioBoard
from leaderboard.axes_format import UTILITY_HELP, axis_summary, pareto_legend
from leaderboard.board import SuiteBoard
from leaderboard.format import (
    RECONSTRUCTED_MARK,
    RECONSTRUCTED_METHOD_NOTE,
    SHARED_NOTE,
    UNSANDBOXED_NOTE,
    UNVERIFIED_MARK,
    entry_name,
    header,
    hparams_text,
    legend,
    mean_ci,
    number,
    p_is,
    rows,
    scenario_note,
    seeds_cell,
    split_columns,
    verdict,
)
from leaderboard.markdown_axes import (
    agreement_table,
    attacks_table,
    axes_table,
    disagreement,
    marks_lines,
    metrics_table,
    paper_table,
)
from leaderboard.sequential import markdown_section


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def ranking_section(board: SuiteBoard) -> list[str]:
    """Mean ranks across scenarios (Friedman / Nemenyi / P(best)), and the entries left out and why."""
    overall = board.overall
    lines = ["## Ranking across scenarios", ""]
    if overall is None or overall.empty:
        return lines + [overall.note if overall is not None else "no ranked entries", ""]
    f = overall.friedman
    if f is not None and math.isfinite(f.p):
        lines += [(f"Friedman over {f.n_blocks} blocks ({overall.blocks}), k = {f.k}: χ² = {number(f.chi2)}, "
                   f"Iman–Davenport F = {number(f.f)}, {p_is(f.p)}. Nemenyi CD (α = {f.alpha}) = "
                   f"{number(f.cd)} mean ranks: two entries whose mean ranks differ by more differ significantly."),
                  ""]
    elif overall.note:
        lines += [overall.note + ".", ""]
    if board.pareto:
        lines += [f"Order: {overall.rule}.", ""]
    names = overall.scenarios
    lines += ["| method | " + " | ".join(f"rank in {s}" for s in names) + " | mean rank | P(best) |",
              "|---" + "|---:" * (len(names) + 2) + "|"]
    for r in overall.table.to_dict("records"):
        cells = [number(r.get(s), 2) for s in names]
        lines.append(f"| {_cell(str(r['entry']))} | " + " | ".join(cells)
                     + f" | {number(r['mean_rank'], 2)} | {number(r['p_best'], 2)} |")
    lines.append("")
    if overall.excluded:
        lines += ["Not in the ranking (not ranked with every seed in every scenario): "
                  + "; ".join(f"{_cell(e)} ({why})" for e, why in sorted(overall.excluded.items())), ""]
    return lines


def scenario_table(board: ScenarioBoard, suite: SuiteBoard) -> list[str]:
    lead, rest = split_columns(board, suite.meta)
    lines = [f"## {board.scenario}", "", scenario_note(board), "",
             "| " + " | ".join(["#", "method", *(header(c, suite.meta) for c in lead), "vs floor", "n", "failed",
                                *(header(c, suite.meta) for c in rest)]) + " |",
             "|---|---|" + "---:|" * len(lead) + "---|---:|---:|" + "---:|" * len(rest)]
    unverified = []
    for r in rows(board.table):
        rank = "ref" if r["method_kind"] == "reference" else ("–" if math.isnan(r["rank"]) else f"{r['rank']:g}")
        cells = [rank, _cell(entry_name(r)), *(mean_ci(r, c) for c in lead), _cell(verdict(r)), seeds_cell(r),
                 str(r["failed"]), *(mean_ci(r, c) for c in rest)]
        lines.append("| " + " | ".join(cells) + " |")
        if not r["verified"]:
            unverified.append(f"{r['entry']}: {r['integrity']}")
    lines.append("")
    return lines + _after_table(board, unverified)


def _after_table(board: ScenarioBoard, unverified: list[str]) -> list[str]:
    lines = []
    if unverified:
        lines += [f"{UNVERIFIED_MARK} unverified (not ranked): " + "; ".join(unverified), ""]
    rechecked = [f"{r['entry']}: {r['recheck']}" for r in rows(board.table) if r.get("recheck")]
    if rechecked:  # `unlearn-bench verify` records (docs/submission.md)
        lines += ["Re-run by `unlearn-bench verify`: " + "; ".join(rechecked) + "; other rows: not re-checked.", ""]
    prov = " · ".join(f"{k} {v}" for k, v in board.provenance.items() if k != "packages")
    lines += [f"<sub>{prov}</sub>", ""]
    return lines


def pareto_note(board: ScenarioBoard) -> str:
    axes = board.axes
    return (f"Utility: {UTILITY_HELP.split(': ', 1)[1]}; {axes.utility_note}. {axis_summary(axes)} "
            f"Ranked by {axes.rule}.")


def pareto_section(board: ScenarioBoard, suite: SuiteBoard) -> list[str]:
    """A scenario under the default rule: the two axes first, then the evidence behind them."""
    unverified = [f"{r['entry']}: {r['integrity']}" for r in rows(board.table) if not r["verified"]]
    lines = [f"## {board.scenario}", "", _cell(pareto_note(board)), "", *disagreement(board)]
    lines += axes_table(board, ranked=True) + marks_lines(board)
    lines += attacks_table(board) + agreement_table(board) + paper_table(board, suite) + metrics_table(board, suite)
    return lines + _after_table(board, unverified)


def beside_section(board: ScenarioBoard) -> list[str]:
    """Under --rank-by METRIC: the two axes after the metric's table (not the ranking in force)."""
    return (["### Two axes (the default ranking, `--rank-by pareto`)", "", _cell(pareto_note(board)), "",
             *disagreement(board)] + axes_table(board, ranked=False) + marks_lines(board) + attacks_table(board)
            + agreement_table(board))


def configurations(board: SuiteBoard) -> list[str]:
    # keyed by configuration too: a method tuned per scenario kind has one configuration per kind
    seen: dict[tuple[str, str], tuple[list[str], str]] = {}
    for scenario in board.scenarios:
        for r in rows(scenario.table):
            key = (str(r["entry"]), str(r["config_hash"]))
            seen.setdefault(key, ([], f"`{r['config_hash']}` {hparams_text(r)}"))[0].append(scenario.scenario)
    lines = ["## Configurations", ""]
    lines += [f"- **{_cell(entry)}** ({', '.join(where)}): {text}" for (entry, _), (where, text) in seen.items()]
    return lines + [""]


def render_markdown(board: SuiteBoard) -> str:
    lines = [f"# {board.suite}", ""]
    for paragraph in (pareto_legend(board) if board.pareto else legend(board)):
        lines += [paragraph, ""]
    reconstructed = [m.name for m in board.meta.values() if m.reconstructed]
    if reconstructed:
        lines += [f"{RECONSTRUCTED_MARK} reconstructed metric definition (not the authors' verified setting): "
                  + ", ".join(reconstructed), ""]
    if any(m.per_method for m in board.meta.values()):
        lines += [SHARED_NOTE, ""]
    if any(s.table["entry"].str.endswith(RECONSTRUCTED_METHOD_MARK).any() for s in board.scenarios):
        lines += [RECONSTRUCTED_METHOD_NOTE, ""]
    if any(s.table["unsandboxed"].astype(bool).any() for s in board.scenarios):
        lines += [UNSANDBOXED_NOTE, ""]
    if board.excluded_unverified:
        lines += [f"{board.excluded_unverified} unverified row(s) excluded (--verified-only).", ""]
    if board.unreadable:
        lines += [f"{board.unreadable} result file(s) could not be read and are not shown.", ""]
    lines += ranking_section(board)
    for scenario in board.scenarios:
        lines += (pareto_section(scenario, board) if board.pareto
                  else scenario_table(scenario, board) + beside_section(scenario))
    if board.sequential:
        lines += ["## Sequential scenarios", ""]
        for sequential in board.sequential:
            lines += markdown_section(sequential)
    lines += configurations(board)
    return "\n".join(lines)
