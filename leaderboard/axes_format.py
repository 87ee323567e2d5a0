"""Wording and cells of the two axes, shared by the terminal, Markdown and HTML leaderboards."""

from __future__ import annotations

import math
from typing import Any

from leaderboard.aggregate import ScenarioBoard
from leaderboard.axes import Axes
from leaderboard.board import SuiteBoard
from leaderboard.format import number, p_is
from leaderboard.marks import INCONSISTENT, NO_OP, OVER_BUDGET
from leaderboard.pareto import RULE
from leaderboard.verdicts import BETTER, EQUIVALENT, FLOOR, INCONCLUSIVE, NOT_TESTED, WORSE, Verdict

SHORT = {WORSE: "worse", BETTER: "better", EQUIVALENT: "equiv", INCONCLUSIVE: "inconcl", NOT_TESTED: "n/t",
         FLOOR: "floor", NO_OP: "no-op", OVER_BUDGET: "budget", INCONSISTENT: "incons."}
SHORT_LEGEND = ("equiv = equivalent to the floor (TOST), inconcl = inconclusive, few = too few seeds or shadow "
                "units, n/t = not tested; ✓ = matches retraining (both axes within the floor); F = Pareto front")
MATCH_MARK = "✓"
UTILITY_HELP = ("utility_gap: mean of the forget, retain and test accuracy gaps to the oracles (points); "
                "vs floor: paired t-test by seed against the floor row, TOST with the floor's mean as margin, Holm")
PRIVACY_HELP = ("privacy: the largest share of the original's exposure that remains, over the attacks that "
                "detect the original (each attack's gap to the floor ÷ the original's gap; 0 = as retraining, "
                "1 = as doing nothing); vs floor: the worst of the attacks' verdicts (the attack named)")


def short_state(state: str) -> str:
    if not state:
        return ""
    if state.startswith("too few"):
        return "few"
    return SHORT.get(state, state[:8])


def compact(value: float | None) -> str:
    """Two decimals, one from 10 up (fits the terminal's columns)."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def interval(value: float, lo: float, hi: float, fmt=compact) -> str:
    """``value [lo, hi]``, the value alone without an interval, '–' without a value."""
    if value is None or not math.isfinite(value):
        return "–"
    if lo is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return fmt(value)
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def axes_row(board: ScenarioBoard, row: dict[str, Any]) -> dict[str, Any] | None:
    """The axes of a (verified) entry of ``board.table``; None for unverified or failed entries."""
    t = board.axes.table if board.axes is not None else None
    entry = str(row["entry"])
    if t is None or not row["verified"] or entry not in t.index:
        return None
    return {"entry": entry, **t.loc[entry].to_dict()}


def rank_cells(row: dict[str, Any] | None, reference: bool) -> tuple[str, str]:
    """(rank, front) cells."""
    if reference:
        return "ref", "–"
    if row is None or not math.isfinite(row.get("rank", math.nan)):
        return "–", "–"
    return f"{row['rank']:g}", f"{row['front']:g}"


def verdict_detail(v: Verdict | None, label: str = "") -> str:
    """``state[ (attack)]: difference [95% CI], deciding Holm p``."""
    if v is None:
        return ""
    head = v.state + (f" ({label})" if label else "")
    if v.state in (NOT_TESTED, FLOOR) or v.state.startswith("too few"):
        return head + (f" (n = {v.n})" if v.state.startswith("too few") and v.unit == "seed" else "")
    diff = f"{number(v.diff)} [{number(v.ci_lo)}, {number(v.ci_hi)}]"
    p = v.p_equiv_holm if v.state == EQUIVALENT else v.p_holm
    return f"{head}: {diff}, {p_is(p)}" if math.isfinite(p) else f"{head}: {diff}"


def utility_verdict(row: dict[str, Any]) -> Verdict | None:
    if not row.get("u_state"):
        return None
    return Verdict(row["u_state"], row["u_unit"], int(row["u_n"]) if math.isfinite(row["u_n"]) else 0,
                   row["u_diff"], row["u_ci_lo"], row["u_ci_hi"], row["u_test"], row["u_p"], row["u_p_holm"],
                   row["u_p_equiv"], row["u_p_equiv_holm"], row["u_margin"])


def privacy_verdict(axes: Axes, row: dict[str, Any]) -> tuple[Verdict | None, str]:
    """The deciding attack's verdict and its label."""
    metric = row.get("verdict_attack") or ""
    if not metric:
        return None, ""
    return axes.verdicts[metric].get(row["entry"]), axes.attack(metric).label


def attack_name(axes: Axes, metric: str) -> str:
    return axes.attack(metric).label if metric else ""


def axis_summary(axes: Axes) -> str:
    """Which attacks are on the privacy axis, which are not and why."""
    on = [f"{a.label} ({a.metric})" for a in axes.attacks if a.metric in axes.in_axis]
    off = [f"{a.label} ({a.metric}): {axes.attack_notes[a.metric].removeprefix('not on the axis: ')}"
           for a in axes.attacks if a.metric not in axes.in_axis]
    text = ("Privacy axis: " + ", ".join(on) + " (each detects the original)." if on else
            "No privacy axis: " + (axes.note or "no attack") + ".")
    if off:
        text += " Not on the axis: " + "; ".join(off) + "."
    return text


def attack_cell(axes: Axes, metric: str, entry: str, digits: int = 2) -> str:
    """``gap [CI] · share · verdict`` of one entry on one attack."""
    attack = axes.attack(metric)
    if entry not in attack.gap.index:
        return "–"
    g = attack.gap.loc[entry]
    text = interval(g["gap"], g["lo"], g["hi"], lambda v: number(v, digits))
    share = axes.table.at[entry, f"share:{metric}"] if entry in axes.table.index else math.nan
    if math.isfinite(share):
        text += f" · {share:.2f}"
    v = axes.verdicts.get(metric, {}).get(entry)
    if entry == axes.floor:
        text += " · floor"
    elif v is not None:
        text += f" · {short_state(v.state)}"
    return text


def attack_notes(axes: Axes) -> list[str]:
    """Per attack: how it was tested, its margin, the floor's own gap and whether it is on the axis."""
    lines = []
    for a in axes.attacks:
        how = (f"paired bootstrap ({a.unit}s)" if a.per_method else "paired by seed") if a.raw else "not tested"
        parts = [f"{a.label} (`{a.metric}`{'‡' if a.per_method else ''}, {a.direction}; {how})",
                 axes.attack_notes[a.metric]]
        if a.margin_note:
            parts.append(a.margin_note)
        if a.floor_note:
            parts.append(f"floor = {a.floor_note}")
        if a.test_note and a.raw:
            parts.append(a.test_note)
        lines.append(": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if parts[2:] else ""))
    return lines


def pareto_legend(board: SuiteBoard) -> list[str]:
    """The default ranking's legend: the rule, the two axes, every test (sidedness, α, correction, margin),
    the statistics across scenarios and the marks. One paragraph each."""
    a = board.alpha
    lines = [
        (f"**Ranked by** {RULE}: front 1 = the entries no other ranked entry dominates (at least as good on both "
         "axes, better on one); no entry is ranked above one that dominates it. Reference rows are not ranked; "
         "`retrain (floor)` is one independent retrain scored against the other oracles: what retraining itself "
         "reaches. AMUN's `avg_gap` / `avg_gap_rmia` are in the *paper-comparable* group (`--rank-by avg_gap` "
         "ranks by them as before)."),
        (f"**Utility** = `utility_gap`, the mean of the forget, retain and test accuracy gaps to the oracles "
         "(points; mean with its 95% t-interval over seeds). vs floor: two-sided paired t-test by seed against "
         f"the floor row, α = {a}, Holm across the scenario's entries; *equivalent*: TOST (two one-sided paired "
         "t-tests) with the floor's mean as margin, Holm; a significantly smaller gap is *better*; else "
         "*inconclusive*."),
        ("**Privacy** = the largest *share of the original's exposure that remains*: each attack's gap to the "
         "floor row divided by the untouched original's gap on it (0 = as retraining, 1 = as doing nothing), over "
         "the attacks that detect the original in that scenario (its verdict against the floor is *worse*; those "
         "tests Holm-corrected across the attacks); attacks that cannot are shown, off the axis. The worst attack "
         "is named; the interval is that attack's interval divided by the original's gap. Per-seed attacks: "
         "their `gap_<m>` paired by seed against the floor row's leave-one-out gap (t-test and TOST with the "
         "floor's mean gap as margin). Per-method attacks (‡): the floor row's value is the target (gap = "
         "|entry − floor|, for a lower-is-better metric max(0, entry − floor)); paired bootstrap over the same "
         "resampled shadow models (U-LiRA: shadow pairs, recomputed from the per-example tables; KLoM: the "
         "evaluator's stored paired draws), two-sided percentile p, margin = half-width of the floor's 95% "
         "bootstrap interval; the floor's own gap is the expected gap between two independent draws of it. The "
         f"difference tests of every (attack, entry) on the axis are one Holm family (α = {a}); equivalence is "
         "Holm-corrected per attack and needs every attack. The verdict is the worst attack's: worse > "
         "inconclusive > equivalent > better."),
        ("**Matches retraining** only when both verdicts are *equivalent* or *better*. **Attack agreement**: "
         "Kendall τ-b between attacks over the entries, 95% bootstrap interval over entries; the page says when "
         "two attacks disagree (τ < 0.5 or the interval includes 0)."),
        ("**Marks**: *no-op* (most runs returned the original's outputs), *over budget* (most runs over the time "
         "budget), *inconsistent* (most runs failed the consistency check): shown, never ranked or tested; "
         "`time_ratio` = the method's time over an oracle's training time (cost, never a verdict)."),
    ]
    overall = board.overall
    if overall is not None and not overall.empty and overall.friedman is not None:
        f = overall.friedman
        lines.append(
            f"**Across scenarios**: {overall.rule}; Friedman test over {f.n_blocks} blocks (scenarios: one Pareto "
            f"ranking each) of the {f.k} entries ranked with every seed in every scenario (α = {a}), post-hoc "
            f"Nemenyi (CD = {number(f.cd)} mean ranks). P(best): share of {overall.n_boot} bootstrap draws "
            f"({overall.p_best_unit}) in which the entry has the best mean rank (ties split).")
    return lines
