"""Re-check records of ``unlearn-bench verify``, read back per row for the leaderboard (no torch needed).

``harness/commands/verify.py`` re-runs a stored row from its provenance and writes the outcome to
``<results>/<suite>/_verifications/<run_id>.json``: ``{"run_id", "row_hash" (of the row it re-ran), "outcome"
("match" | "mismatch" | "error"), "differences", "reason", "checked_at", ...}``. A row's status:

* ``verified``: a re-run reproduced this exact row (same ``row_hash``) within the stated tolerances;
* ``mismatch``: a re-run of this exact row differed (the record lists which fields);
* ``not re-checked``: no record, a record of another version of the row (it was rewritten since), or a re-run
  that could not happen (e.g. the method's plugin was not given).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.core.results import VERIFICATIONS_DIR, record_path

RECORDS_DIR = VERIFICATIONS_DIR
VERIFIED, MISMATCH, NOT_CHECKED = "verified", "mismatch", "not re-checked"
OUTCOMES = ("match", "mismatch", "error")


def read_record(path: Path) -> dict | None:
    """A record, or None when absent or unreadable (an unreadable record vouches for nothing)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("outcome") in OUTCOMES else None


def status_of(row: dict, record: dict | None) -> str:
    """The re-check status of one row given its record (see the module docstring)."""
    if record is None or record.get("row_hash") != row.get("row_hash"):
        return NOT_CHECKED
    return {"match": VERIFIED, "mismatch": MISMATCH}.get(record["outcome"], NOT_CHECKED)


def recheck_status(frame: pd.DataFrame, results_root: str | Path) -> pd.Series:
    """Per row of a results frame (columns ``suite``, ``run_id``, ``row_hash``): its re-check status."""
    statuses = []
    for row in frame.to_dict("records"):
        suite, run_id = row.get("suite"), row.get("run_id")
        record = read_record(record_path(results_root, str(suite), str(run_id))) if suite and run_id else None
        statuses.append(status_of(row, record))
    return pd.Series(statuses, index=frame.index, name="recheck", dtype=object)


def entry_recheck(statuses: pd.Series) -> str:
    """One entry's rows summarised, e.g. '2 verified, 1 mismatch of 5 rows'; '' when no row was re-checked."""
    counts = statuses.value_counts()
    found = [f"{int(counts[s])} {s}" for s in (VERIFIED, MISMATCH) if counts.get(s, 0)]
    return f"{', '.join(found)} of {len(statuses)} rows" if found else ""
