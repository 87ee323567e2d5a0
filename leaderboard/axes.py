"""The two axes every entry is judged on, each against the ``retrain`` floor row.

* **Utility**: ``utility_gap`` (per row: the mean of the forget, retain and test accuracy gaps to the oracles;
  the floor row carries its floor). Paired t-test by seed against the floor row, TOST with the floor's mean as
  margin, Holm across the scenario's entries (``leaderboard.verdicts``).
* **Privacy**: every attack of the scenario (``leaderboard.attacks``), each on one scale: the entry's gap to the
  floor divided by the untouched original's gap on that attack, the *share of the original's exposure that
  remains* (0 = as the floor's target, 1 = as doing nothing). An attack enters the axis only where it detects
  the original (the original's verdict against the floor on it is ``worse``; those tests are a family of their
  own, Holm across the attacks); the others are shown with the reason. The entry's privacy value is its largest
  share (the worst attack, named); its verdict is the worst of its attacks' verdicts (worse > inconclusive >
  equivalent > better). The difference tests of all (attack, entry) pairs on the axis are one Holm family (a
  "worse" on any attack is a claim the family controls); the equivalence tests are Holm-corrected per attack
  across entries, and equivalence on the axis needs every attack (an intersection-union test: no further
  correction).

An entry *matches retraining* when both verdicts are equivalent or better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from leaderboard.aggregate import Metric, ScenarioBoard, competitors, rows_by_seed, seed_pairs
from leaderboard.attacks import Attack, attack_label, attack_metrics, method_attack, seed_attack
from leaderboard.pareto import RULE, RULE_UTILITY_ONLY, rank, usable_scale
from leaderboard.shadows import ShadowTables
from leaderboard.stats import ALPHA
from leaderboard.verdicts import (
    FLOOR,
    NOT_TESTED,
    WORSE,
    Verdict,
    family_verdicts,
    raw_seed_test,
    severity,
    within_floor,
)

UTILITY = "utility_gap"
ORIGINAL = "original"
VERDICT_FIELDS = ("state", "test", "unit", "n", "diff", "ci_lo", "ci_hi", "p", "p_holm", "p_equiv", "p_equiv_holm",
                  "margin")


@dataclass
class Axes:
    """One scenario's two axes. ``table`` (index = entry): utility, utility_lo/hi, utility_share and the utility
    verdict ``u_<field>``; privacy, privacy_lo/hi, worst_attack, privacy_state, verdict_attack; matches; role;
    front and rank (ranked entries); ``share:<metric>`` per attack."""

    table: pd.DataFrame
    attacks: list[Attack]
    in_axis: list[str]  # attack metrics on the privacy axis
    verdicts: dict[str, dict[str, Verdict]]  # metric -> entry -> verdict (the original's: its detection test)
    attack_notes: dict[str, str]  # metric -> why it is (not) on the axis
    original: str | None
    floor: str | None
    utility_note: str = ""
    note: str = ""  # about the privacy axis as a whole
    rule: str = RULE
    ranked: list[str] = field(default_factory=list)  # best first

    def attack(self, metric: str) -> Attack:
        return next(a for a in self.attacks if a.metric == metric)


def _original_entry(table: pd.DataFrame) -> str | None:
    rows = table[(table["method"] == ORIGINAL) & (table["method_kind"] == "reference") & table["verified"]
                 & (table["n"] > 0)]
    return str(rows["entry"].iloc[0]) if len(rows) else None


def _utility(board: ScenarioBoard, ok: pd.DataFrame, tested: list[str], original: str | None, alpha: float
             ) -> tuple[dict[str, Verdict], str]:
    table = board.table.set_index("entry")
    col = f"{UTILITY}_mean"
    if board.floor is None or col not in table or UTILITY not in ok:
        return {}, "no utility test: no floor row or no utility_gap"
    margin = float(table.at[board.floor, col])
    note = (f"margin ±{margin:.3g} = the floor row's mean utility_gap" if math.isfinite(margin) and margin > 0
            else "no equivalence test: the floor row's utility_gap is 0 or missing")
    floor_rows = rows_by_seed(ok, board.floor)
    raw = {e: raw_seed_test(*seed_pairs(ok, e, floor_rows, UTILITY), margin) for e in tested}
    verdicts = family_verdicts(raw, alpha=alpha)
    if original is not None:  # the original against the floor: a family of its own (it does not compete)
        verdicts.update(family_verdicts({original: raw_seed_test(*seed_pairs(ok, original, floor_rows, UTILITY),
                                                                 margin)}, alpha=alpha))
    return verdicts, note


def _detect(attacks: list[Attack], original: str | None, alpha: float) -> dict[str, Verdict]:
    """The original against the floor on every attack: Holm across the attacks."""
    raw = {a.metric: a.raw[original] for a in attacks if original is not None and original in a.raw}
    return family_verdicts(raw, alpha=alpha)


def _gate(attack: Attack, detection: Verdict | None, original: str | None) -> tuple[bool, str]:
    """Whether an attack enters the privacy axis, and why (not)."""
    if original is None or original not in attack.gap.index:
        return False, "not on the axis: no original row to normalise by"
    if detection is None or detection.state == NOT_TESTED or not math.isfinite(detection.p):
        why = attack.test_note or "no test"
        return False, f"not on the axis: not tested ({why})"
    gap = float(attack.gap.at[original, "gap"])
    if detection.state != WORSE or not gap > 0:
        return False, (f"not on the axis: cannot detect the original here (original {detection.state}, "
                       f"Holm p = {detection.p_holm:.3g})")
    return True, f"detects the original (worse, Holm p = {detection.p_holm:.3g})"


def _entry_verdicts(attacks: list[Attack], in_axis: list[str], tested: list[str], alpha: float
                    ) -> dict[str, dict[str, Verdict]]:
    """Per attack, the tested entries' verdicts: one Holm family for the difference tests of every attack on
    the axis, equivalence per attack; attacks off the axis are each a family of their own (shown only)."""
    out: dict[str, dict[str, Verdict]] = {a.metric: {} for a in attacks}
    axis_raw = {(a.metric, e): a.raw[e] for a in attacks if a.metric in in_axis for e in tested if e in a.raw}
    for (metric, entry), v in family_verdicts(axis_raw, {k: k[0] for k in axis_raw}, alpha).items():
        out[metric][entry] = v
    for a in attacks:
        if a.metric not in in_axis:
            out[a.metric].update(family_verdicts({e: a.raw[e] for e in tested if e in a.raw}, alpha=alpha))
    return out


def _verdict_columns(prefix: str, v: Verdict | None) -> dict:
    if v is None:
        return {f"{prefix}{k}": ("" if k in ("state", "test", "unit") else math.nan) for k in VERDICT_FIELDS}
    return {f"{prefix}{k}": getattr(v, k) for k in VERDICT_FIELDS}


def _role(r: dict, floor: str | None, original: str | None, tested: set[str]) -> str:
    if r["entry"] == floor:
        return "floor"
    if r["entry"] == original:
        return "original"
    if r["entry"] in tested:
        return "entry"
    return "reference" if r["method_kind"] == "reference" else "marked"


def build_axes(board: ScenarioBoard, ok: pd.DataFrame, meta: dict[str, Metric], tables: ShadowTables | None,
               alpha: float = ALPHA) -> Axes:
    """Both axes of one scenario's entries, their verdicts, and the Pareto ranking of the competing entries."""
    table = board.table
    tested = [str(e) for e in table.loc[competitors(table), "entry"]]
    original = _original_entry(table)
    probe = tested + ([original] if original else [])
    attacks = []
    for metric in attack_metrics(meta, board.kind):
        info, label = meta[metric], attack_label(metric, meta)
        attack = (method_attack(board, metric, info, probe, tables, label) if info.per_method
                  else seed_attack(board, ok, metric, info, probe, label))
        if len(attack.gap):
            attacks.append(attack)
    detection = _detect(attacks, original, alpha)
    notes, in_axis = {}, []
    for a in attacks:
        entered, notes[a.metric] = _gate(a, detection.get(a.metric), original)
        if entered:
            in_axis.append(a.metric)
    verdicts = _entry_verdicts(attacks, in_axis, tested, alpha)
    for metric, v in detection.items():
        verdicts[metric][original] = v
    utility, utility_note = _utility(board, ok, tested, original, alpha)
    axes = Axes(pd.DataFrame(), attacks, in_axis, verdicts, notes, original, board.floor, utility_note)
    axes.table = _table(board, axes, utility, set(tested))
    if not in_axis:
        axes.note = ("no attack detects the original in this scenario: there is no privacy axis, entries are "
                     "ranked on utility alone" if attacks else "no attack in these results: utility only")
        axes.rule = RULE_UTILITY_ONLY
    _rank(axes)
    return axes


def _privacy(axes: Axes, entry: str, role: str) -> dict:
    """Privacy value (largest share on the axis), its interval, the attack behind it, and the verdict."""
    shares, out = {}, {}
    for a in axes.attacks:
        base = float(a.gap.at[axes.original, "gap"]) if axes.original in a.gap.index else math.nan
        if entry in a.gap.index and math.isfinite(base) and base > 0:
            g = a.gap.loc[entry]
            shares[a.metric] = (g["gap"] / base, g["lo"] / base, g["hi"] / base)
        out[f"share:{a.metric}"] = shares.get(a.metric, (math.nan,) * 3)[0]
    on_axis = [m for m in axes.in_axis if m in shares and math.isfinite(shares[m][0])]
    missing = [m for m in axes.in_axis if m not in on_axis]
    worst = max(on_axis, key=lambda m: shares[m][0]) if on_axis and not missing else None
    value = shares[worst] if worst else (math.nan,) * 3
    out.update({"privacy": value[0], "privacy_lo": value[1], "privacy_hi": value[2], "worst_attack": worst or "",
                "privacy_missing": ", ".join(missing)})
    # The verdict: the worst of the attacks' verdicts (ties: the attack with the larger share decides).
    states = {m: axes.verdicts[m][entry] for m in axes.in_axis if entry in axes.verdicts.get(m, {})}
    if role == "floor":
        out.update({"privacy_state": FLOOR, "verdict_attack": ""})
    elif states and len(states) == len(axes.in_axis):
        decider = max(states, key=lambda m: (severity(states[m].state), shares.get(m, (-1.0,))[0]))
        out.update({"privacy_state": states[decider].state, "verdict_attack": decider})
    else:
        out.update({"privacy_state": NOT_TESTED if role in ("entry", "original") and axes.in_axis else "",
                    "verdict_attack": ""})
    return out


def _table(board: ScenarioBoard, axes: Axes, utility: dict[str, Verdict], tested: set[str]) -> pd.DataFrame:
    records = []
    original_utility = math.nan
    for r in board.table.to_dict("records"):
        if r["n"] == 0 or not r["verified"]:
            continue  # unverified rows may share a label with the verified entry: they are shown, never judged
        role = _role(r, axes.floor, axes.original, tested)
        rec = {"entry": str(r["entry"]), "role": role, "utility": r.get(f"{UTILITY}_mean", math.nan),
               "utility_lo": r.get(f"{UTILITY}_lo", math.nan), "utility_hi": r.get(f"{UTILITY}_hi", math.nan),
               "time_ratio": r.get("time_ratio_mean", math.nan)}
        rec.update(_verdict_columns("u_", utility.get(rec["entry"])))
        if role == "floor":
            rec["u_state"] = FLOOR
        rec.update(_privacy(axes, rec["entry"], role))
        if role == "floor":  # its measured floor on each attack on the axis
            rec["privacy_state"] = FLOOR
        rec["matches"] = role == "entry" and within_floor(rec["u_state"]) and within_floor(rec["privacy_state"])
        if role == "original":
            original_utility = rec["utility"]
        records.append(rec)
    frame = pd.DataFrame.from_records(records).set_index("entry") if records else pd.DataFrame()
    if len(frame):
        frame["utility_share"] = frame["utility"] / usable_scale(original_utility)
        frame["front"], frame["rank"] = math.nan, math.nan
    return frame


def _rank(axes: Axes) -> None:
    """Pareto fronts and ranks of the competing entries with a value on every axis in use."""
    t = axes.table
    if t.empty:
        return
    cols = ["utility", "privacy"] if axes.in_axis else ["utility"]
    ranked = t[(t["role"] == "entry") & t[cols].notna().all(axis=1)]
    if ranked.empty:
        return
    scale = [usable_scale(t.at[axes.original, "utility"]) if axes.original in t.index else 1.0, 1.0][:len(cols)]
    front, order = rank(ranked[cols].to_numpy(float), scale, list(ranked.index))
    t.loc[ranked.index, "front"] = front
    t.loc[ranked.index, "rank"] = order
    axes.ranked = list(ranked.sort_values("rank").index)

