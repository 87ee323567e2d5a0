"""The static HTML leaderboard: one self-contained page (inline CSS, inline SVG, a small inline script).

It works offline: nothing is fetched from anywhere; the plots are inline SVG drawn by matplotlib and the
script only sorts tables. Per suite: the legend naming every test, the ranking across scenarios with its
critical-difference diagram and P(best), then per scenario the two-axes table (``leaderboard.html_axes``; under
``--rank-by METRIC`` the metric's table comes first), the attacks and their agreement, the privacy-vs-utility
plot (floor box, Pareto front, cost as marker size), the utility or ranking metric with CI bars (references
marked without squeezing the axis), a heatmap of the gaps of the metrics meaningful in that scenario, the
paper-comparable group and every other metric, and the provenance.
"""

from __future__ import annotations

import math
import re
import time
from html import escape
from typing import Any

import numpy as np

from harness.core.version import HARNESS_VERSION
from leaderboard.aggregate import ORACLE, RECONSTRUCTED_METHOD_MARK, Metric, ScenarioBoard, scored
from leaderboard.axes_format import axis_summary, pareto_legend
from leaderboard.board import SuiteBoard
from leaderboard.format import (
    RECONSTRUCTED_MARK,
    RECONSTRUCTED_METHOD_NOTE,
    SHARED_NOTE,
    UNSANDBOXED_NOTE,
    UNVERIFIED_MARK,
    entry_name,
    header,
    legend,
    number,
    p_is,
    rows,
    scenario_note,
    seeds_cell,
    split_columns,
    verdict,
)
from leaderboard.html_axes import (
    agreement_table,
    attacks_table,
    axes_table,
    disagreement,
    method_title,
    metrics_table,
    paper_table,
    tradeoff_plot,
)
from leaderboard.markdown_axes import paper_columns
from leaderboard.marks import unranked_mark
from leaderboard.plots import Item, bar_chart, cd_diagram, heatmap
from leaderboard.sequential import html_section as sequential_html

# Heatmap colour saturates at a column's largest gap, but never below these (a display choice, not a
# statistic): gaps under one accuracy point, 0.1 nats or 0.02 TV stay pale.
HEAT_FLOOR = {"%": 1.0, "nats": 0.1, "fraction": 0.02}

CSS = """
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --best:#1a9850; --tied:#ecf8ee; --warn:#f46d43; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:var(--fg); background:#f9fafb; }
header.top { background:#111827; color:white; padding:14px 28px; display:flex; align-items:baseline; gap:18px; }
header.top h1 { font-size:18px; margin:0; font-weight:600; }
header.top nav a { color:#d1d5db; margin-right:14px; text-decoration:none; }
header.top .gen { margin-left:auto; color:#9ca3af; font-size:12px; }
main { max-width:1240px; margin:0 auto; padding:8px 28px 40px; }
h2 { font-size:22px; margin:26px 0 6px; }
h3 { font-size:17px; margin:0 0 8px; }
h3 .sub { font-weight:400; color:var(--muted); font-size:13px; margin-left:8px; }
p.note { color:#374151; max-width:960px; margin:4px 0 10px; font-size:13px; }
section.scenario { background:white; border:1px solid var(--line); border-radius:8px; padding:16px 18px;
  margin:18px 0; box-shadow:0 1px 2px rgba(0,0,0,.04); }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; }
table.board { width:100%; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { font-weight:600; font-size:12px; color:#374151; background:#f3f4f6; position:sticky; top:0; }
table.sortable th { cursor:pointer; user-select:none; }
table.sortable th:hover { background:#e5e7eb; }
th[aria-sort=ascending]::after { content:" ▲"; font-size:9px; }
th[aria-sort=descending]::after { content:" ▼"; font-size:9px; }
th.text, td.text { text-align:left; }
td .ci { display:block; color:var(--muted); font-size:11px; line-height:1.1; }
td.method .name { font-weight:600; }
td.method .kind { color:var(--muted); font-size:11px; margin-left:6px; border:1px solid var(--line);
  border-radius:3px; padding:0 4px; }
tbody.refs tr { background:#fafafa; color:#4b5563; font-style:italic; }
tbody.refs tr.oracle { color:var(--fg); font-style:normal; font-weight:500; }
tbody.refs tr:last-child td { border-bottom:2px solid #d1d5db; }
tr.equivalent { background:var(--tied); } tr.better { background:#e3f4e6; }
tr.noop { color:#9ca3af; } tr.noop td.method .name { text-decoration:line-through; }
tr.unverified { background:#fff4ef; color:#7c2d12; } tr.unverified td:first-child { box-shadow:inset 4px 0 0 var(--warn); }
td.verdict { text-align:left; font-size:12px; color:#374151; }
td.failed.some { color:#b91c1c; font-weight:600; }
p.prov { color:var(--muted); font-size:12px; margin:8px 0 12px; }
p.prov b { color:#374151; font-weight:600; }
.plots { display:flex; flex-wrap:wrap; gap:18px; align-items:flex-start; }
.plots svg, section.ranking svg { background:white; border:1px solid var(--line); border-radius:6px; max-width:100%; height:auto; }
.legend span { display:inline-block; margin-right:14px; font-size:12px; color:#374151; }
.legend i { display:inline-block; width:14px; height:14px; border:1px solid #d1d5db; border-radius:2px; vertical-align:-2px; margin-right:4px; }
table.ranks td, table.ranks th { padding:4px 12px; }
.warn { color:#9a3412; }
section.ranking { background:white; border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin:14px 0; }
td.pbest { font-weight:600; }
p.legend-text { color:#374151; max-width:1100px; margin:4px 0 8px; font-size:12.5px; }
h4 { font-size:14px; margin:16px 0 4px; }
tr.matches { background:var(--tied); font-weight:500; }
p.disagree { border-left:4px solid var(--warn); padding-left:8px; }
tr.disagree td { color:#9a3412; }
ul.note { color:#374151; font-size:12px; margin:4px 0 10px; }
table.attacks td { font-size:12px; }
"""

SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('thead th');
  heads.forEach(function (th, col) {
    th.title = th.title || 'click to sort';
    th.addEventListener('click', function () {
      var body = table.querySelector('tbody.entries');
      var state = th.getAttribute('aria-sort');
      var asc = state ? state === 'descending' : th.dataset.first !== 'desc';
      heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var key = function (row) {
        var cell = row.cells[col];
        if (cell.dataset.v === undefined) { return cell.textContent.trim().toLowerCase(); }
        return cell.dataset.v === '' ? null : parseFloat(cell.dataset.v);
      };
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) { return y === null ? 0 : 1; }   // missing values stay at the bottom
        if (y === null) { return -1; }
        var c = typeof x === 'number' ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return asc ? c : -c;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def inline_markdown(text: str) -> str:
    """The legend's inline Markdown (**bold**, *italic*, `code`) as escaped HTML."""
    html = escape(text, quote=False)
    html = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html)
    html = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", html)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", html)


def _v(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{float(value):.6g}"


def _first_click(col: str, meta: dict[str, Metric]) -> str:
    info = meta.get(col)
    return "desc" if info is not None and info.direction == "higher" else "asc"


def _role(r: dict[str, Any]) -> str:
    """The row's colour class: unverified, reference, no-op or its verdict."""
    if not r["verified"]:
        return "unverified"
    if r["method_kind"] == "reference":
        return "reference"
    if unranked_mark(r):  # no-op, over budget, inconsistent: shown, never ranked or tested
        return "no-op"
    state = str(r.get("vs_floor_state") or "")
    return state if state in ("better", "equivalent", "worse") else "inconclusive" if state else "method"


def _row_class(r: dict[str, Any]) -> str:
    classes = []
    if r["method_kind"] == "reference":
        classes.append("ref" + (" oracle" if r["method"] == ORACLE else ""))
    role = _role(r)
    classes.append({"no-op": "noop"}.get(role, role))
    return " ".join(classes)


def _method_cell(r: dict[str, Any]) -> str:
    kind = r["method_kind"] if r["method_kind"] not in ("", "reference") else ""
    title = method_title(r)
    badge = f'<span class="kind">{escape(kind)}</span>' if kind else ""
    return (f'<td class="method text" title="{escape(title)}"><span class="name">{escape(entry_name(r))}</span>'
            f"{badge}</td>")


def _value_cell(r: dict[str, Any], col: str) -> str:
    mean, lo, hi = r.get(f"{col}_mean"), r.get(f"{col}_lo"), r.get(f"{col}_hi")
    if mean is None or not math.isfinite(mean):
        return '<td data-v="">–</td>'
    if lo is None or not math.isfinite(lo):
        return f'<td data-v="{_v(mean)}" title="no interval">{number(mean)}</td>'
    shadow = not math.isfinite(r.get(f"{col}_std", math.nan))
    ci = f"[{number(lo)}, {number(hi)}]" if shadow else f"± {number((hi - lo) / 2)}"
    tip = (f"95% bootstrap interval over shadow models [{number(lo, 3)}, {number(hi, 3)}]" if shadow else
           f"95% t-interval over seeds [{number(lo, 3)}, {number(hi, 3)}], std {number(r.get(f'{col}_std'), 3)}")
    return f'<td data-v="{_v(mean)}" title="{escape(tip)}">{number(mean)}<span class="ci">{ci}</span></td>'


def _head(col: str, meta: dict[str, Metric]) -> str:
    info = meta.get(col.removeprefix("gap_"))
    tip = f"{col}: {'reconstructed definition; ' if info and info.reconstructed else ''}click to sort"
    return f'<th data-first="{_first_click(col, meta)}" title="{escape(tip)}">{escape(header(col, meta))}</th>'


def scenario_table(board: ScenarioBoard, meta: dict[str, Metric]) -> str:
    lead, rest = split_columns(board, meta)
    head = ['<th data-first="asc" aria-sort="ascending">#</th>', '<th class="text">method</th>']
    head += [_head(c, meta) for c in lead]
    head += [('<th class="text" data-first="asc" title="against the retrain floor row: verdict, difference with '
              'its 95% interval, Holm-adjusted p (see the legend)">vs floor</th>'),
             '<th data-first="desc" title="seeds with a successful run">n</th>',
             '<th data-first="desc" title="failed, timed-out or invalid runs (not averaged)">failed</th>']
    head += [_head(c, meta) for c in rest]
    refs, entries = [], []
    for r in rows(board.table):
        rank = r["rank"]
        rank_cell = ('<td data-v="">ref</td>' if r["method_kind"] == "reference"
                     else f'<td data-v="{_v(rank)}">{"–" if not math.isfinite(rank) else f"{rank:g}"}</td>')
        failed = int(r["failed"])
        cells = [rank_cell, _method_cell(r)] + [_value_cell(r, c) for c in lead]
        cells += [f'<td class="verdict text">{escape(verdict(r))}</td>',
                  f'<td data-v="{r["n"]}">{seeds_cell(r)}</td>',
                  f'<td class="failed{" some" if failed else ""}" data-v="{failed}">{failed}</td>']
        cells += [_value_cell(r, c) for c in rest]
        html = f'<tr class="{_row_class(r)}">' + "".join(cells) + "</tr>"
        (refs if r["method_kind"] == "reference" else entries).append(html)
    return ('<div class="table-wrap"><table class="board sortable"><thead><tr>' + "".join(head) + "</tr></thead>"
            + '<tbody class="refs">' + "".join(refs) + "</tbody>"
            + '<tbody class="entries">' + "".join(entries) + "</tbody></table></div>")


def gap_metrics(board: ScenarioBoard, meta: dict[str, Metric]) -> list[str]:
    """Metrics meaningful in this scenario kind whose gap has a value for some entry."""
    return [m for m, info in scored(meta).items() if board.kind in info.scenarios
            and f"gap_{m}_mean" in board.table and board.table[f"gap_{m}_mean"].notna().any()]


def scenario_plots(board: ScenarioBoard, meta: dict[str, Metric]) -> str:
    table = rows(board.table)
    plotted = [r for r in table if r["n"] > 0 and r["method_kind"] != "reference"]
    col = board.sort.column
    bars = [Item(str(r["entry"]), _role(r), r.get(f"{col}_mean", math.nan), r.get(f"{col}_lo", math.nan),
                 r.get(f"{col}_hi", math.nan)) for r in plotted]
    refs = [(("floor (retrain)" if r["method"] == ORACLE else str(r["entry"])), r.get(f"{col}_mean", math.nan),
             r.get(f"{col}_lo", math.nan), r.get(f"{col}_hi", math.nan))
            for r in table if r["method_kind"] == "reference" and r["verified"]]
    how = "lower is better" if board.sort.lower_is_better else "higher is better"
    parts = [tradeoff_plot(board)]
    if any(math.isfinite(it.value) for it in bars):
        parts.append(bar_chart(bars, f"{board.scenario}: {col} (mean, 95% CI)", f"{col} ({how})", refs))
    gap_cols = gap_metrics(board, meta)
    if gap_cols:
        heads = [*gap_cols, col] if col not in (f"gap_{m}" for m in gap_cols) else gap_cols
        values = np.array([[r.get(f"gap_{m}_mean", math.nan) for m in gap_cols]
                           + ([r.get(f"{col}_mean", math.nan)] if len(heads) > len(gap_cols) else [])
                           for r in plotted], dtype=float).reshape(len(plotted), len(heads))
        floors = [HEAT_FLOOR.get(meta[m].unit, 0.0) for m in gap_cols] + [HEAT_FLOOR["%"]] * (len(heads) - len(gap_cols))
        parts.append(heatmap([str(r["entry"]) for r in plotted], [header(h, meta) for h in heads], values,
                             f"{board.scenario}: gap to the oracles per metric (mean over seeds)", floors))
    return '<div class="plots">' + "".join(parts) + "</div>"


def provenance_line(board: ScenarioBoard) -> str:
    items = [f"<b>{escape(k)}</b> {escape(v)}" for k, v in board.provenance.items()]
    return '<p class="prov">' + " · ".join(items) + "</p>"


def ranking_section(board: SuiteBoard) -> str:
    """The ranking across scenarios: CD diagram, mean ranks and P(best), and the entries left out."""
    overall = board.overall
    parts = ['<section class="ranking"><h3>Ranking across scenarios</h3>']
    if overall is None or overall.empty:
        return "".join(parts) + f'<p class="note">{escape(overall.note if overall else "no ranked entries")}</p></section>'
    f = overall.friedman
    if f is not None and math.isfinite(f.p):
        parts.append(f'<p class="note">Friedman over {f.n_blocks} blocks ({escape(overall.blocks)}), k = {f.k}: '
                     f"χ² = {number(f.chi2)}, Iman–Davenport F = {number(f.f)}, {p_is(f.p)}. Nemenyi critical "
                     f"difference (α = {f.alpha}) = {number(f.cd)} mean ranks: entries joined by a bar are not "
                     "significantly different.</p>")
        if f.k >= 2:
            parts.append(cd_diagram(f.mean_ranks, f.nemenyi, f.cd, f.alpha,
                                    f"critical-difference diagram (Nemenyi, α = {f.alpha}); rank 1 = best"))
    elif overall.note:
        parts.append(f'<p class="note">{escape(overall.note)}.</p>')
    if board.pareto:
        parts.append(f'<p class="note">Order: {escape(overall.rule)}.</p>')
    names = overall.scenarios
    head = "".join(f"<th>rank in {escape(s)}</th>" for s in names)
    body = []
    for r in overall.table.to_dict("records"):
        cells = "".join(f'<td data-v="{_v(r.get(s))}">{number(r.get(s))}</td>' for s in names)
        body.append(f'<tr><td class="text">{escape(str(r["entry"]))}</td>{cells}'
                    f'<td data-v="{_v(r["mean_rank"])}"><b>{number(r["mean_rank"])}</b></td>'
                    f'<td class="pbest" data-v="{_v(r["p_best"])}">{number(r["p_best"])}</td></tr>')
    parts.append('<table class="ranks sortable"><thead><tr><th class="text">method</th>' + head
                 + '<th data-first="asc">mean rank</th><th data-first="desc" title="bootstrap probability of the '
                 f'best mean rank ({escape(overall.p_best_unit)})">P(best)</th></tr></thead>'
                 '<tbody class="entries">' + "".join(body) + "</tbody></table>")
    if overall.excluded:
        items = "; ".join(f"{escape(e)} ({escape(why)})" for e, why in sorted(overall.excluded.items()))
        parts.append(f'<p class="note">Not in the ranking (not ranked with every seed in every scenario): {items}</p>')
    return "".join(parts) + "</section>"


def suite_section(board: SuiteBoard) -> str:
    parts = [f'<h2 id="{escape(board.suite)}">{escape(board.suite)}</h2>']
    parts += [f'<p class="legend-text">{inline_markdown(text)}</p>'
              for text in (pareto_legend(board) if board.pareto else legend(board))]
    reconstructed = [m.name for m in board.meta.values() if m.reconstructed]
    if reconstructed:
        parts.append(f'<p class="note">{RECONSTRUCTED_MARK} reconstructed metric definition (not the authors\' '
                     f"verified setting): {escape(', '.join(reconstructed))}</p>")
    if any(m.per_method for m in board.meta.values()):
        parts.append(f'<p class="note">{escape(SHARED_NOTE)}</p>')
    if any(s.table["entry"].str.endswith(RECONSTRUCTED_METHOD_MARK).any() for s in board.scenarios):
        parts.append(f'<p class="note">{escape(RECONSTRUCTED_METHOD_NOTE)}</p>')
    if any(s.table["unsandboxed"].astype(bool).any() for s in board.scenarios):
        parts.append(f'<p class="note warn">{escape(UNSANDBOXED_NOTE)}</p>')
    if board.excluded_unverified:
        parts.append(f'<p class="note warn">{board.excluded_unverified} unverified row(s) excluded '
                     f"(--verified-only).</p>")
    if board.unreadable:
        parts.append(f'<p class="note warn">{board.unreadable} result file(s) could not be read and are not '
                     "shown.</p>")
    parts.append('<p class="legend"><span><i style="background:#e3f4e6"></i>better than the floor</span>'
                 '<span><i style="background:#ecf8ee"></i>equivalent to the floor</span>'
                 '<span><i style="background:#fafafa;border:1px solid #ddd"></i>reference (not ranked)</span>'
                 '<span><i style="background:white;border:1px solid #ddd"></i>worse / inconclusive</span>'
                 f'<span><i style="background:#fff4ef;box-shadow:inset 3px 0 0 #f46d43"></i>{UNVERIFIED_MARK} '
                 "unverified (not ranked; hover the name for why)</span></p>")
    parts.append(ranking_section(board))
    for scenario in board.scenarios:
        parts.append(scenario_section(scenario, board))
    if board.sequential:
        parts.append("<h3>Sequential scenarios</h3>")
        parts += [sequential_html(sequential) for sequential in board.sequential]
    return "\n".join(parts)


def scenario_section(scenario: ScenarioBoard, board: SuiteBoard) -> str:
    """One scenario's card: under the default rule the two axes lead; under --rank-by METRIC its table."""
    n_seeds = len(scenario.seeds)
    rule = scenario.axes.rule if board.pareto else scenario.sort.requested
    head = (f'<section class="scenario" id="{escape(board.suite)}-{escape(scenario.scenario)}">'
            f'<h3>{escape(scenario.scenario)}<span class="sub">{n_seeds} seed{"s" * (n_seeds != 1)} · '
            f"ranked by {escape(rule)}</span></h3>")
    axes_note = (f'<p class="note">{escape(scenario.axes.utility_note)}. {escape(axis_summary(scenario.axes))}</p>'
                 + disagreement(scenario))
    evidence = attacks_table(scenario) + agreement_table(scenario)
    if board.pareto:
        shown = [c for c in split_columns(scenario, board.meta)[1] + split_columns(scenario, board.meta)[0]
                 if c not in paper_columns(scenario, board) and c != "time_ratio"]
        value = lambda r, c: _value_cell(r, c)
        heads = lambda c: _head(c, board.meta)
        body = (axes_note + axes_table(scenario, ranked=True) + evidence + scenario_plots(scenario, board.meta)
                + paper_table(scenario, board, value, heads) + metrics_table(scenario, board.meta, shown, value, heads))
    else:
        body = (f'<p class="note">{escape(scenario_note(scenario))}</p>' + scenario_table(scenario, board.meta)
                + "<h4>Two axes (the default ranking, --rank-by pareto)</h4>" + axes_note
                + axes_table(scenario, ranked=False) + evidence + scenario_plots(scenario, board.meta))
    return head + body + provenance_line(scenario) + "</section>"


def render_html(boards: list[SuiteBoard]) -> str:
    """The whole page for one or more suites."""
    nav = "".join(f'<a href="#{escape(b.suite)}">{escape(b.suite)}</a>' for b in boards)
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>unlearn-bench leaderboard</title><style>{CSS}</style></head><body>"
            f'<header class="top"><h1>unlearn-bench leaderboard</h1><nav>{nav}</nav>'
            f'<span class="gen">generated {generated} · harness {HARNESS_VERSION}</span></header><main>'
            + "\n".join(suite_section(b) for b in boards)
            + f"</main><script>{SCRIPT}</script></body></html>")
