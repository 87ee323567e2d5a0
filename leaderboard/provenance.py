"""Provenance of a scenario's rows, as shown under its tables."""

from __future__ import annotations

import pandas as pd


def provenance(rows: pd.DataFrame) -> dict[str, str]:
    """Distinct provenance values of the rows (several values are listed, most frequent first)."""
    def values(col: str, limit: int = 3) -> str:
        if col not in rows:
            return "–"
        counts = rows[col].dropna().astype(str).value_counts()
        shown = list(counts.index[:limit])
        extra = len(counts) - len(shown)
        return ", ".join(shown) + (f" (+{extra} more)" if extra > 0 else "") if shown else "–"

    dates = rows["created_at"].dropna().astype(str) if "created_at" in rows else pd.Series(dtype=str)
    seeds = sorted({int(s) for s in rows.loc[rows["status"] == "ok", "seed"].dropna()})
    return {
        "suite version": values("suite_version"),
        "suite hash": values("suite_hash"),
        "seeds": ", ".join(map(str, seeds)) or "–",
        "oracles": values("oracles"),
        "harness": values("harness_version"),
        "git sha": values("git_sha"),
        "hardware": values("hardware"),
        "packages": values("packages", 1),
        "date": (dates.min()[:10] + (f" – {dates.max()[:10]}" if dates.max()[:10] != dates.min()[:10] else ""))
        if len(dates) else "–",
    }
