"""``unlearn-bench leaderboard --json``: the leaderboard as one JSON document (non-finite numbers as null).

Per suite: the ranking rule; per scenario every entry with both axes (values and 95% intervals), each verdict
with its test, resampling unit, n and p-values, each attack's gap, share and verdict, the rank and the rule
that produced it, the marks (no-op, over budget, inconsistent, unverified), the attack agreement table; and the
ranking across scenarios with its statistics.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import numpy as np

from leaderboard.aggregate import ScenarioBoard
from leaderboard.agreement import AGREE_TAU, N_BOOT, summary_line
from leaderboard.axes import VERDICT_FIELDS, Axes
from leaderboard.board import SuiteBoard
from leaderboard.sequential import sequential_json
from leaderboard.verdicts import TEST_NAMES, Verdict

PAPER = ("avg_gap", "avg_gap_rmia")


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to None, containers recursively."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def verdict(v: Verdict | None) -> dict | None:
    if v is None:
        return None
    out = asdict(v)
    out["test"] = TEST_NAMES.get(v.test, v.test)
    return out


def _row_verdict(row: dict, prefix: str) -> dict | None:
    if not row.get(f"{prefix}state"):
        return None
    out = {k: row[f"{prefix}{k}"] for k in VERDICT_FIELDS}
    out["test"] = TEST_NAMES.get(out["test"], out["test"])
    return out


def _stat(row: dict, col: str) -> dict:
    return {"value": row.get(f"{col}_mean"), "lo": row.get(f"{col}_lo"), "hi": row.get(f"{col}_hi")}


def _attacks(axes: Axes, entry: str) -> dict:
    out = {}
    for a in axes.attacks:
        if entry not in a.gap.index:
            continue
        g = a.gap.loc[entry]
        out[a.metric] = {"label": a.label, "gap": g["gap"], "lo": g["lo"], "hi": g["hi"],
                         "share": axes.table.at[entry, f"share:{a.metric}"], "on_axis": a.metric in axes.in_axis,
                         "verdict": verdict(axes.verdicts.get(a.metric, {}).get(entry))}
    return out


def entry(board: ScenarioBoard, suite: SuiteBoard, r: dict) -> dict:
    axes = board.axes
    name = str(r["entry"])
    a = axes.table.loc[name].to_dict() if name in axes.table.index and r["verified"] else {}
    out = {
        "entry": name, "method": r["method"], "config_hash": r["config_hash"], "role": a.get("role") or ("unverified" if not r["verified"] else "unranked"),
        "rank": r["rank"], "rule": suite.rule, "pareto_rank": a.get("rank"), "front": a.get("front"),
        "n": r["n"], "n_expected": r["n_expected"], "failed": r["failed"],
        "marks": {"reference": r["method_kind"] == "reference", "no_op": bool(r.get("noop")),
                  "over_budget": bool(r.get("over_budget")), "over_budget_reason": r.get("over_budget_reason", ""),
                  "inconsistent": bool(r.get("inconsistent")),
                  "inconsistent_evidence": r.get("inconsistent_reason", ""),
                  "unverified": not r["verified"], "integrity": r["integrity"]},
        "utility": {"metric": "utility_gap", "value": a.get("utility"), "lo": a.get("utility_lo"),
                    "hi": a.get("utility_hi"), "verdict": _row_verdict(a, "u_") if a else None},
        "privacy": {"value": a.get("privacy"), "lo": a.get("privacy_lo"), "hi": a.get("privacy_hi"),
                    "worst_attack": a.get("worst_attack") or None, "state": a.get("privacy_state") or None,
                    "verdict_attack": a.get("verdict_attack") or None,
                    "verdict": verdict(axes.verdicts.get(a.get("verdict_attack"), {}).get(name)) if a else None,
                    "attacks": _attacks(axes, name) if a else {}},
        "matches_retraining": bool(a.get("matches", False)),
        "time_ratio": _stat(r, "time_ratio"),
        "paper_comparable": {c: _stat(r, c) for c in PAPER if f"{c}_mean" in r},
    }
    if not suite.pareto:
        out["ranked_by"] = {"metric": suite.sort.column, **_stat(r, suite.sort.column),
                            "verdict": _row_verdict(r, "vs_floor_")}
    return out


def scenario(board: ScenarioBoard, suite: SuiteBoard) -> dict:
    axes = board.axes
    attacks = [{"metric": a.metric, "label": a.label, "per_method": a.per_method, "direction": a.direction,
                "unit": a.unit, "on_axis": a.metric in axes.in_axis, "note": axes.attack_notes[a.metric],
                "margin": a.margin, "margin_note": a.margin_note, "floor_gap": a.floor_gap, "floor_lo": a.floor_lo,
                "floor_hi": a.floor_hi, "floor_note": a.floor_note} for a in axes.attacks]
    return {"scenario": board.scenario, "seeds": board.seeds, "floor": board.floor, "original": axes.original,
            "rule": suite.rule if not suite.pareto else axes.rule, "utility_note": axes.utility_note,
            "privacy_note": axes.note, "attacks": attacks,
            "entries": [entry(board, suite, r) for r in board.table.to_dict("records")],
            "agreement": {"statistic": "Kendall tau-b over entries", "interval": f"percentile bootstrap over "
                          f"entries, {N_BOOT} draws", "rule": f"disagree when tau < {AGREE_TAU} or the 95% interval "
                          "includes 0", "summary": summary_line(board.agreement) or None,
                          "pairs": [asdict(p) for p in board.agreement]}}


def overall(suite: SuiteBoard) -> dict:
    o = suite.overall
    f = o.friedman
    return {"rule": o.rule or f"mean rank over blocks ({o.blocks}) of {suite.sort.description}", "blocks": o.blocks,
            "entries": [{"entry": r["entry"], "ranks": {s: r.get(s) for s in o.scenarios}, "mean_rank": r["mean_rank"],
                         "p_best": r["p_best"], "position": i + 1} for i, r in enumerate(o.table.to_dict("records"))],
            "excluded": o.excluded, "p_best_unit": o.p_best_unit, "n_boot": o.n_boot, "note": o.note,
            "friedman": None if f is None else {"n_blocks": f.n_blocks, "k": f.k, "chi2": f.chi2, "p_chi2": f.p_chi2,
                                                "iman_davenport_f": f.f, "p": f.p, "nemenyi_cd": f.cd,
                                                "alpha": f.alpha}}


def suite_json(suite: SuiteBoard) -> dict:
    return {"suite": suite.suite, "rank_by": suite.rank_by, "rule": suite.rule, "alpha": suite.alpha,
            "scenarios": [scenario(b, suite) for b in suite.scenarios], "overall": overall(suite),
            "sequential": [sequential_json(b) for b in suite.sequential]}


def to_json(boards: list[SuiteBoard]) -> str:
    return json.dumps(clean({"suites": [suite_json(b) for b in boards]}), indent=2, allow_nan=False)
