"""Marks on an entry that keep it off the ranking (shown, never ranked or tested) or qualify it.

* ``no-op``: more than half of its successful runs returned the original's outputs (``noop``);
* ``over budget``: more than half of its successful runs exceeded the suite's time budget (``over_budget``,
  with the budget in ``time_budget``);
* ``inconsistent``: more than half of its successful runs were flagged by the consistency check
  (``inconsistent``, with ``consistency_evidence``);
* how its runs were isolated (references run no user code, so their sandbox setting is not marked).

Columns absent from older rows mean False.
"""

from __future__ import annotations

import math

import pandas as pd

SHARE = 0.5  # an entry carries a mark when more than this share of its successful runs carry the flag
NOOP_SHARE = SHARE
UNSANDBOXED = {"none": "no sandbox", "off": "no isolation (--no-isolation)"}
NO_OP, OVER_BUDGET, INCONSISTENT = "no-op", "over budget", "inconsistent"
# (row flag column, entry mark) in the order a label names them
UNRANKED_MARKS = (("noop", NO_OP), ("over_budget", OVER_BUDGET), ("inconsistent", INCONSISTENT))


def _count(good: pd.DataFrame, col: str) -> int:
    return int(good[col].fillna(False).astype(bool).sum()) if col in good else 0


def _budget_reason(good: pd.DataFrame, count: int) -> str:
    if not count:
        return ""
    budgets = sorted({float(b) for b in good.get("time_budget", pd.Series(dtype=float)).dropna()
                      if math.isfinite(float(b))})
    ratio = good["time_ratio"].dropna() if "time_ratio" in good else pd.Series(dtype=float)
    text = f"{count} of {len(good)} runs over the time budget"
    if budgets:
        text += " (" + ", ".join(f"{b:g}" for b in budgets) + ")"
    if len(ratio):
        text += f"; time_ratio {ratio.min():.3g}–{ratio.max():.3g}"
    return text


def _consistency_reason(good: pd.DataFrame, count: int) -> str:
    if not count:
        return ""
    flagged = good[good["inconsistent"].fillna(False).astype(bool)]
    evidence = sorted({str(e) for e in flagged.get("consistency_evidence", pd.Series(dtype=str)).dropna() if str(e)})
    return f"{count} of {len(good)} runs inconsistent" + (": " + "; ".join(evidence) if evidence else "")


def entry_flags(good: pd.DataFrame, group: pd.DataFrame, reference: bool) -> dict:
    """Marks of one entry from its successful rows ``good`` (and all its rows ``group``)."""
    counts = {col: _count(good, col) for col, _ in UNRANKED_MARKS}
    marked = {col: (not reference) and len(good) > 0 and counts[col] > SHARE * len(good)
              for col, _ in UNRANKED_MARKS}
    # A reference's noop flag is kept as before (the original is a no-op by construction, and is not ranked).
    marked["noop"] = len(good) > 0 and counts["noop"] > SHARE * len(good)
    sandbox = sorted({str(s) for s in group["sandbox"].dropna()}) if "sandbox" in group else []
    unsandboxed = "" if reference else "; ".join(UNSANDBOXED[s] for s in sandbox if s in UNSANDBOXED)
    return {"noop_seeds": counts["noop"], "noop": marked["noop"],
            "over_budget_runs": counts["over_budget"], "over_budget": marked["over_budget"],
            "over_budget_reason": _budget_reason(good, counts["over_budget"]) if marked["over_budget"] else "",
            "inconsistent_runs": counts["inconsistent"], "inconsistent": marked["inconsistent"],
            "inconsistent_reason": (_consistency_reason(good, counts["inconsistent"])
                                    if marked["inconsistent"] else ""),
            "sandbox": ", ".join(sandbox), "unsandboxed": unsandboxed}


def unranked_mark(row: dict) -> str:
    """The mark that keeps a (non-reference) entry off the ranking: no-op, over budget, inconsistent, or ''."""
    if row.get("method_kind") == "reference":
        return ""
    return next((mark for col, mark in UNRANKED_MARKS if row.get(col)), "")


def unranked(table: pd.DataFrame) -> pd.Series:
    """Entries shown but never ranked or tested because of a mark (references excluded)."""
    flags = pd.Series(False, index=table.index)
    for col, _ in UNRANKED_MARKS:
        if col in table:
            flags |= table[col].fillna(False).astype(bool)
    return flags & (table["method_kind"] != "reference")
