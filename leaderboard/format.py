"""Shared wording and number formatting for the Markdown, HTML and terminal leaderboards."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from leaderboard.aggregate import ORACLE, Metric, ScenarioBoard, per_method, scored
from leaderboard.board import SuiteBoard
from leaderboard.marks import INCONSISTENT, OVER_BUDGET
from leaderboard.shadows import N_BOOT as SHADOW_BOOT
from leaderboard.verdicts import EQUIVALENT, FLOOR, INCONCLUSIVE, NO_OP, NOT_TESTED

RECONSTRUCTED_MARK = "†"
SHARED_MARK = "‡"
UNVERIFIED_MARK = "⚠"
UNSANDBOXED_MARK = "§"
WITHIN_FLOOR_MARK = "◆"
SHARED_NOTE = ("‡ scored once per method configuration (the same value on every seed), from the method's runs on "
               "a bank of extra models: never tested over seeds. U-LiRA's interval is a 95% percentile bootstrap "
               f"over shadow pairs and comparisons on it are paired bootstraps ({SHADOW_BOOT} draws); KLoM has "
               "no interval (its per-example values are in results/<suite>/_examples/) and a cap, log(1/floor) "
               "(6.91 nats at the default floor 1e-3): entries at the cap tie however far their margins are from "
               "retraining's")
RECONSTRUCTED_METHOD_NOTE = ("(reconstructed) after a method: the algorithm is a reconstruction from incomplete "
                             "sources, not the authors' verified code (`unlearn-bench methods` names the sources)")
UNSANDBOXED_NOTE = f"{UNSANDBOXED_MARK} some runs of this entry ran without a sandbox (`sandbox` = none or off)"


def shown_columns(board: ScenarioBoard, meta: dict[str, Metric]) -> list[str]:
    """Headlines, each metric meaningful in this scenario with a value, the sort column, time_ratio."""
    cols = ["avg_gap", "avg_gap_rmia", *(m for m, info in scored(meta).items() if board.kind in info.scenarios)]
    if board.sort.column not in cols:
        cols.append(board.sort.column)
    cols.append("time_ratio")
    table = board.table
    return [c for c in dict.fromkeys(cols) if f"{c}_mean" in table and table[f"{c}_mean"].notna().any()]


def split_columns(board: ScenarioBoard, meta: dict[str, Metric]) -> tuple[list[str], list[str]]:
    """(the ranking column, shown before the verdict; the other columns)."""
    cols = shown_columns(board, meta)
    lead = [c for c in cols if c == board.sort.column]
    return lead, [c for c in cols if c not in lead]


def header(col: str, meta: dict[str, Metric]) -> str:
    info = meta.get(col.removeprefix("gap_"))
    marks = (RECONSTRUCTED_MARK if info is not None and info.reconstructed else "")
    return col + marks + (SHARED_MARK if per_method(col, meta) else "")


def number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def mean_ci(row: dict[str, Any], col: str, digits: int = 2) -> str:
    """``mean ± half-width`` of the 95% CI (t over seeds; ‡ columns: bootstrap over shadows, shown as
    ``[lo, hi]`` because it need not be symmetric); the interval is left out where there is none."""
    mean, lo, hi = row.get(f"{col}_mean"), row.get(f"{col}_lo"), row.get(f"{col}_hi")
    if mean is None or not math.isfinite(mean):
        return "–"
    if lo is None or not math.isfinite(lo):
        return number(mean, digits)
    if row.get(f"{col}_std") is None or not math.isfinite(row.get(f"{col}_std", math.nan)):
        return f"{number(mean, digits)} [{number(lo, digits)}, {number(hi, digits)}]"
    return f"{number(mean, digits)} ± {number((hi - lo) / 2, digits)}"


def seeds_cell(row: dict[str, Any]) -> str:
    n, expected = int(row["n"]), int(row["n_expected"])
    return f"{n}/{expected}" if n != expected else str(n)


def p_text(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """``p = 0.028`` or ``p < 0.001``."""
    text = p_text(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def verdict(row: dict[str, Any], short: bool = False) -> str:
    """The verdict cell: state, then the difference to the floor with its 95% CI and the deciding p-value."""
    state = row.get("vs_floor_state") or ""
    if state in ("", FLOOR, NO_OP, OVER_BUDGET, INCONSISTENT, NOT_TESTED) or state.startswith("too few"):
        if state.startswith("too few"):
            return f"{state} (n = {int(row['vs_floor_n'])})"
        return state
    n = int(row["vs_floor_n"])
    label = f"inconclusive (n = {n})" if state == INCONCLUSIVE and row.get("vs_floor_unit") == "seed" else state
    if state == INCONCLUSIVE and str(row.get("vs_floor_unit")).startswith("shadow"):
        label = f"inconclusive ({n} {row['vs_floor_unit']}s)"
    if short:
        return label
    diff = f"{number(row['vs_floor_diff'])} [{number(row['vs_floor_lo'])}, {number(row['vs_floor_hi'])}]"
    p = row["vs_floor_p_equiv_holm"] if state == EQUIVALENT else row["vs_floor_p_holm"]
    return f"{label}: {diff}, {p_is(p)}" if math.isfinite(p) else f"{label}: {diff}"


def entry_name(row: dict[str, Any]) -> str:
    name = str(row["entry"])
    if row["method"] == ORACLE and row["method_kind"] == "reference":
        name += " (floor)"
    if row.get("noop") and row["method_kind"] != "reference":
        name += " (no-op)"
    for flag, mark in (("over_budget", OVER_BUDGET), ("inconsistent", INCONSISTENT)):
        if row.get(flag) and row["method_kind"] != "reference":
            name += f" ({mark})"
    if row.get("within_floor") is True:
        name += f" {WITHIN_FLOOR_MARK}"
    if row.get("unsandboxed"):
        name += f" {UNSANDBOXED_MARK}"
    if not row["verified"]:
        name += f" {UNVERIFIED_MARK}"
    if row.get("tuning_at_bound"):  # the tuned optimum lies on an end of its search range (docs/tuning.md)
        name += f" (at search bound: {row['tuning_at_bound']})"
    return name


def hparams_text(row: dict[str, Any]) -> str:
    try:
        hp = json.loads(row.get("hparams") or "{}")
    except ValueError:
        return str(row.get("hparams"))
    text = ", ".join(f"{k}={v}" for k, v in sorted(hp.items())) or "defaults"
    if row.get("tuning_budget"):  # unlearn-bench tune: the same budget for every method (docs/tuning.md)
        text += f"; tuned with {row.get('tuning_trials')} of a {row['tuning_budget']}-trial budget"
        if row.get("tuning_at_bound"):
            text += f", optimum at a search bound ({row['tuning_at_bound']})"
    elif row.get("method_kind") not in (None, "reference"):
        text += "; not tuned"
    return text


def scenario_note(board: ScenarioBoard) -> str:
    """What the verdicts in this scenario tested, with its margin."""
    col = board.sort.column
    if board.floor is None:
        return board.margin_note
    shadow = board.table["vs_floor_unit"].astype(str).str.startswith("shadow").any()
    if shadow:
        how = (f"{col}: entry's value − the floor's, paired bootstrap over shadow models ({SHADOW_BOOT} draws), "
               "95% percentile interval")
    else:
        how = f"{col}: entry − floor per seed (paired by seed), mean with its 95% t-interval"
    return f"vs floor = {how}; {board.margin_note}."


def legend(board: SuiteBoard) -> list[str]:
    """Every test used, with its sidedness, alpha, correction and margin (one paragraph each)."""
    a = board.alpha
    sort = board.sort
    lines = [
        (f"**Ranked by** {sort.description}. Cells: mean ± half-width of the two-sided 95% t-interval over seeds "
        f"(n = seeds with a successful run; x/y when some are missing); ‡ columns: value [95% bootstrap interval "
        "over shadow models]. Reference rows are not ranked; `retrain (floor)` is one independent retrain scored "
        "against the other oracles: the noise floor, what retraining itself reaches."),
        (f"**vs floor** (each entry against the floor row, never against a best entry chosen on the same seeds): "
        "*worse* / *better*: two-sided paired t-test of the difference (per-method ‡ metrics: paired bootstrap "
        f"over shadow models, two-sided percentile p), α = {a}, Holm-corrected across the scenario's entries. "
        "*equivalent*: TOST "
        f"(two one-sided paired t-tests; ‡: bootstrap), H0 |difference| ≥ margin, α = {a} each side, "
        "Holm-corrected across the scenario's entries; the margin is the floor row's own value of the ranking "
        "gap (‡: the half-width of the floor's bootstrap interval), given per scenario. A significantly smaller "
        "gap than the floor's (for other metrics: a better value) is *better*; otherwise equivalence is reported before *worse*; *inconclusive*: "
        f"neither test rejects. {WITHIN_FLOOR_MARK} = mean "
        "within the floor's 95% interval. *no-op*: most runs returned the original's outputs (`noop`): not ranked."),
    ]
    overall = board.overall
    if overall is not None and not overall.empty and overall.friedman is not None:
        f = overall.friedman
        p_best = (f"P(best): share of {overall.n_boot} bootstrap resamples ({overall.p_best_unit}) in which the "
                  "entry has the best mean rank (ties split)." if overall.p_best_unit else
                  "P(best): not computed (no per-example tables to resample).")
        lines.append(
            f"**Across scenarios**: Friedman test over {f.n_blocks} blocks ({overall.blocks}) of the {f.k} entries "
            f"ranked with every seed in every scenario (tie-corrected χ² with the Iman–Davenport F, α = {a}); "
            f"post-hoc Nemenyi test (all pairs, family-wise α = {a} from the studentized range; critical "
            f"difference CD = {number(f.cd)} mean ranks). {p_best}")
    return lines


def rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    return table.to_dict("records")
