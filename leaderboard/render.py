"""Render leaderboards for every suite with results (Markdown now; richer output in later modules)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.cache import atomic_write_bytes
from harness.results import read_results

SHOWN = ["forget_acc", "retain_acc", "test_acc"]


def aggregate(frame: pd.DataFrame, sort: str = "avg_gap") -> pd.DataFrame:
    """Mean and std across seeds per (scenario, method, config); ``n`` is the number of seeds."""
    ok = frame[frame["status"] == "ok"]
    metrics = [c for c in ["avg_gap"] + SHOWN if c in ok]
    grouped = ok.groupby(["scenario", "method", "config_hash"])
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table["n"] = grouped.size()
    table = table.reset_index()
    key = f"{sort}_mean"
    return table.sort_values(["scenario", key] if key in table else ["scenario"])


def markdown_table(table: pd.DataFrame, suite: str) -> str:
    lines = [f"# {suite}", ""]
    for scenario, rows in table.groupby("scenario", sort=True):
        lines += [f"## {scenario}", "", "| method | avg_gap | " + " | ".join(SHOWN) + " | n |",
                  "|---|---|" + "---|" * len(SHOWN) + "---|"]
        for r in rows.to_dict("records"):
            cells = [_fmt(r, m) for m in ["avg_gap"] + SHOWN]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {r['n']} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(row: dict, metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:.2f} ± {0.0 if pd.isna(std) else std:.2f}"


def render_leaderboards(results: Path, out: Path, suite: str | None = None, sort: str = "avg_gap") -> str:
    frame = read_results(results, suite)
    if frame.empty:
        raise FileNotFoundError(f"no results under {results}" + (f"/{suite}" if suite else ""))
    texts = []
    for name, rows in frame.groupby("suite"):
        text = markdown_table(aggregate(rows, sort), str(name))
        atomic_write_bytes(Path(out) / f"{name}.md", text.encode())
        texts.append(text)
    return "\n".join(texts)
