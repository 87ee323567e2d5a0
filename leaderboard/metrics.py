"""What the rows say about their metrics (``metric_meta``), and the column a ranking metric is read from."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pandas as pd

from harness.core.registry import did_you_mean

RUNTIME = ("time_ratio", "wall_time_s")  # lower is better; not part of metric_meta
HEADLINES = ("avg_gap", "avg_gap_rmia", "utility_gap")  # mean gaps to the oracles (harness.protocol.scoring); lower is better


@dataclass(frozen=True)
class Metric:
    """What the results say about one metric column (from the rows' ``metric_meta``)."""

    name: str
    direction: str = "match-oracle"  # 'match-oracle' | 'higher' | 'lower'
    in_avg_gap: bool = False
    reconstructed: bool = False
    unit: str = ""
    evaluator: str = ""
    per_method: bool = False  # one value per method configuration (shadow-bank attacks), shared by all seeds
    scenarios: tuple[str, ...] = ("random", "class")  # scenario kinds where the metric is meaningful
    headline: bool = False  # a mean of gaps (avg_gap, avg_gap_rmia): its own column, no gap_ column
    description: str = ""
    privacy: bool = False  # a membership-inference / forgetting-evidence metric (its evaluator says so)
    axis: str | None = None  # "privacy": the one metric of an attack on the privacy axis; None: rows predate the key
    paper_comparable: bool = False  # shown beside published tables only, never in a verdict


@dataclass(frozen=True)
class SortKey:
    """The column entries are ranked by, and whether lower values are better."""

    requested: str
    column: str
    lower_is_better: bool

    @property
    def description(self) -> str:
        how = "lower is better" if self.lower_is_better else "higher is better"
        via = f" (its gap to the oracle, {self.column})" if self.column != self.requested else ""
        return f"{self.requested}{via}, {how}"

    @property
    def is_gap(self) -> bool:
        """A distance to the oracles, so the floor row's value is the margin of practical equivalence."""
        return self.column in HEADLINES or self.column.startswith("gap_")


def scenario_kind(scenario: str) -> str:
    """'random' or 'class' from a scenario name such as 'random-10' or 'class-0'."""
    return str(scenario).split("-", 1)[0]


def metric_meta(frame: pd.DataFrame) -> dict[str, Metric]:
    """Union of the rows' ``metric_meta`` JSON: scored metrics (not direction 'info') that have a column."""
    found: dict[str, Metric] = {}
    for text in frame.get("metric_meta", pd.Series(dtype=object)).dropna().unique():
        try:
            meta = json.loads(text)
        except (TypeError, ValueError):
            continue
        for name, info in meta.items():
            # 'info' columns (shadow counts, bootstrap ends) describe a run; they are not scored.
            if name not in frame or info.get("direction") == "info":
                continue
            if name in found:
                if found[name].axis is None and "axis" in info:  # newer rows declare the axis: theirs counts
                    found[name] = replace(found[name], axis=str(info["axis"]))
                continue
            headline = name in HEADLINES or "terms" in info
            found[name] = Metric(name, "lower" if headline else info.get("direction", "match-oracle"),
                                 bool(info.get("in_avg_gap")), bool(info.get("reconstructed")),
                                 str(info.get("unit", "")), str(info.get("evaluator", "")),
                                 bool(info.get("per_method")), tuple(info.get("scenarios", ("random", "class"))),
                                 headline, str(info.get("description", "")), bool(info.get("privacy")),
                                 str(info["axis"]) if "axis" in info else None, bool(info.get("paper_comparable")))
    # Headlines first, then evaluator by evaluator (as registered), then by name: related metrics stay together.
    return dict(sorted(found.items(), key=lambda kv: (not kv[1].headline, kv[1].evaluator, kv[0])))


def scored(meta: dict[str, Metric]) -> dict[str, Metric]:
    """The metrics proper (no headlines)."""
    return {k: m for k, m in meta.items() if not m.headline}


def sort_key(metric: str, meta: dict[str, Metric], frame: pd.DataFrame | None = None) -> SortKey:
    """Resolve ``--sort``: gaps and runtime rank lower-first; match-oracle metrics rank by their gap."""
    if metric in HEADLINES or metric.startswith("gap_") or metric in RUNTIME or (meta.get(metric) and meta[metric].headline):
        if frame is not None and metric not in frame and metric != "avg_gap":
            raise KeyError(f"unknown sort metric {metric!r}{did_you_mean(metric, _sortable(meta, frame))}")
        return SortKey(metric, metric, True)
    if metric not in meta:
        raise KeyError(f"unknown sort metric {metric!r}{did_you_mean(metric, _sortable(meta, frame))}")
    direction = meta[metric].direction
    if direction == "match-oracle":
        return SortKey(metric, f"gap_{metric}", True)
    return SortKey(metric, metric, direction == "lower")


def _sortable(meta: dict[str, Metric], frame: pd.DataFrame | None) -> list[str]:
    gaps = [c for c in (frame.columns if frame is not None else []) if str(c).startswith("gap_")]
    return [*HEADLINES, *meta, *gaps, *RUNTIME]


def per_method(col: str, meta: dict[str, Metric]) -> bool:
    info = meta.get(col.removeprefix("gap_"))
    return info is not None and info.per_method


def value_columns(frame: pd.DataFrame, meta: dict[str, Metric]) -> list[str]:
    """Every numeric column aggregated per entry: headlines, metrics, their gaps, runtime."""
    metrics = scored(meta)
    cols = [*HEADLINES, *metrics, *(f"gap_{m}" for m in metrics), *RUNTIME]
    return [c for c in dict.fromkeys(cols) if c in frame]
