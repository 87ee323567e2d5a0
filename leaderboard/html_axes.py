"""HTML parts of a scenario's two axes: the axes table (sortable, marks explained on hover), the attacks, their
agreement, the privacy-vs-utility plot, and the paper-comparable group (``leaderboard.html`` puts them in
order)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from leaderboard.aggregate import ORACLE, Metric, ScenarioBoard
from leaderboard.agreement import AGREE_TAU, N_BOOT, summary_line
from leaderboard.axes_format import (
    MATCH_MARK,
    PRIVACY_HELP,
    UTILITY_HELP,
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
from leaderboard.format import entry_name, hparams_text, number, rows, seeds_cell
from leaderboard.markdown_axes import paper_columns
from leaderboard.marks import unranked_mark
from leaderboard.plots import Point, tradeoff


def v(value: Any) -> str:
    """A sort key for the page's script ('' = missing, sorted last)."""
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{float(value):.6g}"


def method_title(r: dict[str, Any]) -> str:
    """The hover text of an entry: configuration, and every mark with its reason or evidence."""
    title = f"config {r['config_hash']}: {hparams_text(r)}"
    if not r["verified"]:
        title += f" | unverified: {r['integrity']}"
    if r.get("recheck"):
        title += f" | re-run by unlearn-bench verify: {r['recheck']}"
    if r.get("unsandboxed"):
        title += f" | {r['unsandboxed']}"
    if r.get("noop"):
        title += f" | no-op on {r['noop_seeds']} of {r['n']} seeds: returned the original's outputs"
    if r.get("over_budget"):
        title += f" | over budget (not ranked): {r['over_budget_reason']}"
    if r.get("inconsistent"):
        title += f" | inconsistent (not ranked): {r['inconsistent_reason']}"
    return title


def axis_role(r: dict[str, Any], a: dict[str, Any] | None) -> str:
    """Row and marker colour: unverified, reference, a mark, or the privacy verdict (matches: 'equivalent')."""
    if not r["verified"]:
        return "unverified"
    if r["method_kind"] == "reference":
        return "reference"
    if unranked_mark(r):
        return "no-op"
    if a is None:
        return "method"
    if a["matches"]:
        return "equivalent"
    state = a["privacy_state"]
    return state if state in ("better", "equivalent", "worse") else "inconclusive"


def _row_class(r: dict[str, Any], a: dict[str, Any] | None) -> str:
    classes = ["ref" + (" oracle" if r["method"] == ORACLE else "")] if r["method_kind"] == "reference" else []
    role = axis_role(r, a)
    return " ".join([*classes, {"no-op": "noop"}.get(role, "matches" if a and a["matches"] else role)])


def _cell(text: str, value: Any = None, cls: str = "", title: str = "") -> str:
    attrs = (f' class="{cls}"' if cls else "") + (f' data-v="{v(value)}"' if value is not None else "")
    attrs += f' title="{escape(title)}"' if title else ""
    return f"<td{attrs}>{escape(text)}</td>"


def axes_table(board: ScenarioBoard, ranked: bool) -> str:
    """The two axes per entry; the main (``board``) table under the default rule."""
    axes = board.axes
    heads = [("#" if ranked else "Pareto #", "asc", "the rank by the rule in force" if ranked else
              "the rank the default rule (Pareto) would give"), ("front", "asc", "Pareto front (1 = not dominated)"),
             ("method", "", "hover a name for its configuration and marks"),
             ("utility_gap", "asc", UTILITY_HELP), ("utility vs floor", "", "verdict against the retrain floor row"),
             ("privacy", "asc", PRIVACY_HELP), ("worst attack", "", "the attack with the largest share"),
             ("privacy vs floor", "", "the worst attack verdict (the attack named)"),
             ("matches retraining", "", "both axes equivalent to (or better than) the floor"),
             ("time_ratio", "asc", "cost: the method's time over an oracle's training time"), ("n", "desc", "seeds"),
             ("failed", "desc", "failed, timed-out or invalid runs")]
    head = "".join(f'<th class="{"text" if not first else ""}" data-first="{first or "asc"}" '
                   f'title="{escape(tip)}">{escape(name)}</th>' for name, first, tip in heads)
    refs, entries = [], []
    for r in rows(board.table):
        a = axes_row(board, r)
        rank, front = rank_cells(a, r["method_kind"] == "reference")
        mark = unranked_mark(r)
        name = entry_name(r) + (f" {MATCH_MARK}" if a and a["matches"] else "")
        cells = [_cell(rank, a["rank"] if a else math.nan), _cell(front, a["front"] if a else math.nan),
                 f'<td class="method text" title="{escape(method_title(r))}"><span class="name">{escape(name)}</span></td>']
        if a is None:
            cells += [_cell("–", math.nan), _cell(mark, cls="verdict text"), _cell("–", math.nan), _cell(""),
                      _cell(mark, cls="verdict text"), _cell("")]
        else:
            pv, label = privacy_verdict(axes, a)
            floor = a["role"] == "floor"
            u_text = "floor" if floor else (mark or verdict_detail(utility_verdict(a)) or a["u_state"])
            p_text = "floor" if floor else (mark or (verdict_detail(pv, label) if pv is not None
                                                     else a["privacy_state"]))
            cells += [_cell(interval(a["utility"], a["utility_lo"], a["utility_hi"]), a["utility"]),
                      _cell(u_text, cls="verdict text"),
                      _cell(interval(a["privacy"], a["privacy_lo"], a["privacy_hi"]), a["privacy"]),
                      _cell(attack_name(axes, a["worst_attack"]), cls="text"), _cell(p_text, cls="verdict text"),
                      _cell("yes" if a["matches"] else "", cls="text")]
        cost = r.get("time_ratio_mean", math.nan)
        cells += [_cell(number(cost), cost), _cell(seeds_cell(r), r["n"]),
                  _cell(str(r["failed"]), r["failed"], cls="failed some" if r["failed"] else "failed")]
        html = f'<tr class="{_row_class(r, a)}">' + "".join(cells) + "</tr>"
        (refs if r["method_kind"] == "reference" else entries).append(html)
    cls = "board sortable axes" if ranked else "axes sortable"
    return (f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody class="refs">{"".join(refs)}</tbody><tbody class="entries">{"".join(entries)}</tbody>'
            "</table></div>")


def attacks_table(board: ScenarioBoard) -> str:
    axes = board.axes
    if not axes.attacks:
        return ""
    head = "".join(f'<th title="{escape(axes.attack_notes[a.metric])}">{escape(a.label)} '
                   f"<code>{escape(a.metric)}</code>{'‡' if a.per_method else ''}"
                   f"{'' if a.metric in axes.in_axis else ' (not on the axis)'}</th>" for a in axes.attacks)
    body = []
    for r in rows(board.table):
        entry = str(r["entry"])
        if entry in axes.table.index and r["verified"]:
            body.append(f'<tr><td class="text">{escape(entry_name(r))}</td>'
                        + "".join(f"<td>{escape(attack_cell(axes, a.metric, entry))}</td>" for a in axes.attacks)
                        + "</tr>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in attack_notes(axes))
    return ('<h4>Attacks</h4><p class="note">Each cell: gap to the floor row [95% interval] · share of the '
            "original's gap · verdict against the floor (equiv = equivalent, inconcl = inconclusive, "
            "few = too few units, n/t = not tested).</p>"
            f'<div class="table-wrap"><table class="attacks"><thead><tr><th class="text">method</th>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div><ul class="note">{notes}</ul>')


def agreement_table(board: ScenarioBoard) -> str:
    pairs = board.agreement
    if not pairs:
        return ""
    body = "".join(
        f'<tr class="{"disagree" if p.disagree else "agree"}"><td class="text">{escape(p.a)} – {escape(p.b)}</td>'
        f"<td>{p.n}</td><td>{number(p.tau)}</td><td>"
        f"{f'[{number(p.lo)}, {number(p.hi)}]' if math.isfinite(p.lo) else '–'}</td><td>{number(p.p, 3)}</td>"
        f'<td class="text">{"no" if p.disagree else "yes"}</td></tr>' for p in pairs)
    return ('<h4>Attack agreement</h4><p class="note">Kendall τ-b between the attacks\' gaps over the competing '
            f"entries; 95% percentile bootstrap over entries ({N_BOOT} draws). Disagree: τ &lt; {AGREE_TAU} or the "
            'interval includes 0.</p><table class="agreement"><thead><tr><th class="text">attacks</th><th>n</th>'
            '<th>τ</th><th>95% CI</th><th>p</th><th class="text">agree</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def disagreement(board: ScenarioBoard) -> str:
    line = summary_line(board.agreement)
    return f'<p class="note warn disagree"><b>{escape(line)}</b></p>' if line else ""


def _point(r: dict[str, Any], a: dict[str, Any]) -> Point:
    front = int(a["front"]) if math.isfinite(a.get("front", math.nan)) else 0
    return Point(str(r["entry"]), axis_role(r, a), a["utility"], a["utility_lo"], a["utility_hi"], a["privacy"],
                 a["privacy_lo"], a["privacy_hi"], r.get("time_ratio_mean", math.nan), front)


def tradeoff_plot(board: ScenarioBoard) -> str:
    """Privacy against utility with the floor's box, the Pareto front and cost as marker size."""
    axes = board.axes
    if not axes.in_axis:
        return (f'<p class="note no-tradeoff">No privacy-vs-utility plot: {escape(axes.note or "no attack")}.'
                "</p>")
    points, floor, original = [], None, None
    for r in rows(board.table):
        a = axes_row(board, r)
        if a is None or not r["verified"]:
            continue
        if a["role"] == "floor":
            floor = _point(r, a)
        elif a["role"] == "original":
            original = _point(r, a)
        elif r["method_kind"] != "reference":
            points.append(_point(r, a))
    return tradeoff(points, f"{board.scenario}: privacy vs utility (lower left is better)",
                    "utility_gap (mean accuracy gap to the oracles, points)",
                    "privacy: worst share of the original's exposure", floor, original,
                    caption=("Whiskers: 95% intervals. Box: the floor row's intervals on both axes. Marker area: "
                             "cost (time_ratio, also in the label). Dotted step: Pareto front 1 (black rings). "
                             "Privacy = the largest share over " + ", ".join(axes.attack(m).label
                                                                              for m in axes.in_axis) + "."))


def paper_table(board: ScenarioBoard, suite: SuiteBoard, value_cell, head_cell) -> str:
    cols = paper_columns(board, suite)
    if not cols:
        return ""
    body = "".join(f'<tr><td class="text">{escape(entry_name(r))}</td>' + "".join(value_cell(r, c) for c in cols)
                   + "</tr>" for r in rows(board.table) if r["n"] > 0)
    return ('<h4>Paper-comparable (not a verdict)</h4><p class="note">AMUN\'s published headlines (avg_gap: '
            "accuracy gaps and one MIA gap, mostly a utility score) and metrics computed to sit beside published "
            'tables: shown for comparison, never tested or ranked.</p><div class="table-wrap"><table '
            f'class="paper sortable"><thead><tr><th class="text">method</th>{"".join(head_cell(c) for c in cols)}'
            f'</tr></thead><tbody class="entries">{body}</tbody></table></div>')


def metrics_table(board: ScenarioBoard, meta: dict[str, Metric], cols: list[str], value_cell, head_cell) -> str:
    """Every other metric, without a verdict (the default rule's verdicts are the two axes)."""
    if not cols:
        return ""
    body = "".join(f'<tr><td class="text">{escape(entry_name(r))}</td>' + "".join(value_cell(r, c) for c in cols)
                   + "</tr>" for r in rows(board.table) if r["n"] > 0)
    return ('<h4>Every metric</h4><div class="table-wrap"><table class="metrics sortable"><thead><tr>'
            f'<th class="text">method</th>{"".join(head_cell(c) for c in cols)}</tr></thead>'
            f'<tbody class="entries">{body}</tbody></table></div>')

