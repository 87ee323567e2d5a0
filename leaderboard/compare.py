"""``unlearn-bench compare A B``: paired statistics of two method configurations.

For every scenario both ran, each metric is compared with its own resampling unit:

* per-seed metrics, on the seeds where both succeeded on the same split and the same original: mean
  difference A − B with its 95% t-interval, Cohen's d_z, the two-sided paired t-test and per-seed wins;
* per-method metrics (U-LiRA: one value per configuration, the same on every seed), over shadow models: the
  difference with its 95% percentile interval and a two-sided p from a paired bootstrap over the same
  resampled shadows (``leaderboard.shadows``). Seeds say nothing about them, so they never enter a seed test.

p-values are Holm-corrected across the metrics of the scenario. Metrics that should match the oracle are
compared by their gap to it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from harness.core.registry import did_you_mean
from leaderboard.aggregate import (
    HASH_CHARS,
    ORACLE,
    Metric,
    SortKey,
    metric_meta,
    per_method,
    prepare,
    sort_key,
)
from leaderboard.format import number, p_text
from leaderboard.sequential import last_steps
from leaderboard.shadows import N_BOOT, ShadowTables, compare_tables, resamplable
from leaderboard.stats import ALPHA, holm, paired_test
from leaderboard.verdicts import TEST_NAMES


@dataclass
class MetricComparison:
    metric: str  # the compared column (gap_<m> for metrics that should match the oracle)
    lower_is_better: bool
    unit: str  # what was resampled: "seed" (pairs of seeds), or "shadow pair" / "shadow" (per-method metrics)
    n: int  # pairs of seeds, or shadow models
    mean_a: float
    mean_b: float
    diff: float  # mean of the per-seed differences A - B
    ci_lo: float
    ci_hi: float
    d_z: float  # per-seed metrics only (mean difference / std of the differences)
    test: str  # "t" | "wilcoxon" | "identical" | "none" | "bootstrap"
    p: float
    se: float = math.nan  # shadow bootstrap: standard deviation of the resampled difference
    note: str = ""  # why a metric could not be tested
    p_holm: float = math.nan
    wins_a: int = 0
    wins_b: int = 0
    ties: int = 0
    winner: str = ""  # "A", "B" or "" (not significant at alpha after Holm)


@dataclass
class ScenarioComparison:
    suite: str
    scenario: str
    a: str
    b: str
    seeds: list[int]
    metrics: list[MetricComparison] = field(default_factory=list)


def resolve_entry(frame: pd.DataFrame, name: str) -> str:
    """An entry label from ``method``, ``method [hash]``, ``method@hash`` or ``method[hash]`` (hash prefix)."""
    labels = sorted(frame["entry"].dropna().unique())
    if name in labels:
        return name
    method, _, prefix = name.replace("@", "[").partition("[")
    method, prefix = method.strip(), prefix.strip(" ]")
    rows = frame[frame["method"] == method]
    if rows.empty:
        raise KeyError(f"no results for method {method!r}{did_you_mean(method, frame['method'].dropna().unique())}")
    matches = sorted({e for e, h in zip(rows["entry"], rows["config_hash"]) if str(h).startswith(prefix)})
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(f"{method}@{str(h)[:HASH_CHARS]}" for h in sorted(rows["config_hash"].unique()))
    what = "several configurations" if matches else f"no configuration with hash {prefix!r}"
    raise KeyError(f"method {method!r} has {what}; name one of: {choices}")


def compared_columns(frame: pd.DataFrame, meta: dict[str, Metric], requested: list[str]) -> list[SortKey]:
    """The requested metrics, or avg_gap plus every metric (by its gap where it should match the oracle)."""
    names = requested or ["avg_gap", *meta]
    keys = [sort_key(name, meta, frame) for name in names]
    return [k for k in dict.fromkeys(keys) if k.column in frame]


def compare_entries(frame: pd.DataFrame, a: str, b: str, metrics: list[str] | None = None,
                    scenarios: list[str] | None = None, alpha: float = ALPHA, data_root: str | None = None,
                    results: Path | None = None, suite_file: str | None = None,
                    n_boot: int = N_BOOT) -> list[ScenarioComparison]:
    """Compare two entries of one suite's results (unverified rows are left out). ``results`` (the results
    root) locates the per-example tables that per-method metrics are resampled from."""
    frame, _ = prepare(frame, verified_only=True, data_root=data_root, suite_file=suite_file)
    frame = last_steps(frame)  # a sequential scenario is compared at its last step, as the leaderboard judges it
    ok = frame[frame["status"] == "ok"]
    a_label, b_label = resolve_entry(ok, a), resolve_entry(ok, b)
    if a_label == b_label:
        raise ValueError(f"A and B are the same configuration ({a_label})")
    meta = metric_meta(ok)
    keys = compared_columns(ok, meta, metrics or [])
    suite = str(ok["suite"].iloc[0]) if len(ok) else ""
    tables = ShadowTables(results, suite)
    out = []
    for scenario, rows in ok.groupby("scenario", sort=True):
        if scenarios and scenario not in scenarios:
            continue
        side_a = rows[rows["entry"] == a_label].drop_duplicates("seed", keep="last").set_index("seed")
        side_b = rows[rows["entry"] == b_label].drop_duplicates("seed", keep="last").set_index("seed")
        pairs = side_a.merge(side_b, left_index=True, right_index=True, suffixes=("_a", "_b"))
        pairs = pairs[(pairs["split_hash_a"] == pairs["split_hash_b"])
                      & (pairs["original_key_a"] == pairs["original_key_b"])]
        if pairs.empty:
            continue
        result = ScenarioComparison(str(rows["suite"].iloc[0]), str(scenario), a_label, b_label,
                                    sorted(int(s) for s in pairs.index))
        for key in keys:
            xa, xb = pairs[f"{key.column}_a"].astype(float), pairs[f"{key.column}_b"].astype(float)
            if not (xa.notna() & xb.notna()).any():
                continue
            if per_method(key.column, meta):
                result.metrics.append(_shadow_comparison(key, rows, side_a, side_b, str(scenario), tables, n_boot))
                continue
            t = paired_test(xa.tolist(), xb.tolist(), key.lower_is_better)
            result.metrics.append(MetricComparison(key.column, key.lower_is_better, "seed", t.n, float(xa.mean()),
                                                   float(xb.mean()), t.mean_diff, t.ci_lo, t.ci_hi, t.d_z, t.test,
                                                   t.p, wins_a=t.wins_a, wins_b=t.wins_b, ties=t.ties))
        for m, p_adj in zip(result.metrics, holm([m.p for m in result.metrics])):
            m.p_holm = p_adj
            if math.isfinite(p_adj) and p_adj < alpha:
                better_a = m.diff < 0 if m.lower_is_better else m.diff > 0
                m.winner = "A" if better_a else "B"
        out.append(result)
    if not out:
        raise ValueError(f"{a_label} and {b_label} share no seed on the same split and original")
    return out


def _shadow_comparison(key: SortKey, rows: pd.DataFrame, side_a: pd.DataFrame, side_b: pd.DataFrame,
                       scenario: str, tables: ShadowTables, n_boot: int) -> MetricComparison:
    """A per-method metric: paired bootstrap over shadow models from the per-example tables."""
    metric = key.column.removeprefix("gap_")
    first = lambda side, col: str(side[col].iloc[0])
    mean_a, mean_b = float(side_a[key.column].mean()), float(side_b[key.column].mean())
    untested = lambda note: MetricComparison(key.column, key.lower_is_better, "shadow", 0, mean_a, mean_b,
                                             mean_a - mean_b, math.nan, math.nan, math.nan, "none", math.nan,
                                             note=note)
    if not resamplable(metric):
        return untested(f"{metric} is scored per method and no shadow bootstrap is defined for it")
    evaluator = metric.split("_", 1)[0]
    get = lambda side: tables.table(evaluator, scenario, first(side, "method"), first(side, "config_hash"))
    ta, tb = get(side_a), get(side_b)
    floor = None
    if key.column.startswith("gap_"):
        oracle = rows[(rows["method"] == ORACLE) & (rows["method_kind"] == "reference")]
        floor = get(oracle) if len(oracle) else None
        if floor is None:
            return untested("no per-example table of the retrain floor row: its gap cannot be resampled")
    if ta is None or tb is None:
        return untested("per-example tables missing (results/<suite>/_examples/)")
    c = compare_tables(metric, ta, tb, floor, n_boot)
    return MetricComparison(key.column, key.lower_is_better, c.unit, c.n_shadows, c.value_a, c.value_b, c.diff,
                            c.ci_lo, c.ci_hi, math.nan, "bootstrap", c.p, se=c.se)


def to_json(results: list[ScenarioComparison]) -> str:
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps([clean(asdict(r)) for r in results], indent=2)


def to_text(results: list[ScenarioComparison], alpha: float = ALPHA) -> str:
    lines = []
    head = ["metric", "better", "unit", "mean A", "mean B", "A−B", "95% CI", "d_z", "test", "p", "p_holm",
            "wins A/B/=", "winner"]
    notes = []
    for r in results:
        lines.append(f"{r.suite} · {r.scenario}: A = {r.a}  vs  B = {r.b}  "
                     f"({len(r.seeds)} paired seeds: {', '.join(map(str, r.seeds))})")
        body = []
        for m in r.metrics:
            unit = f"{m.n} {m.unit}s"
            wins = f"{m.wins_a}/{m.wins_b}/{m.ties}" if m.unit == "seed" else "–"
            body.append([m.metric, "lower" if m.lower_is_better else "higher", unit, number(m.mean_a, 3),
                         number(m.mean_b, 3), number(m.diff, 3), f"[{number(m.ci_lo, 3)}, {number(m.ci_hi, 3)}]",
                         _dz(m.d_z), TEST_NAMES.get(m.test, m.test), p_text(m.p), p_text(m.p_holm), wins,
                         m.winner or "–"])
            if m.note:
                notes.append(f"{r.scenario} {m.metric}: not tested: {m.note}")
        widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
        for row in [head, *body]:
            lines.append("  " + "  ".join(str(c).ljust(w) if i in (0, 1, 2, 8, 12) else str(c).rjust(w)
                                          for i, (c, w) in enumerate(zip(row, widths))))
        lines.append("")
    lines += notes
    lines.append(f"Differences are A − B. Per-seed metrics: paired over seeds, 95% t-interval, two-sided paired "
                 f"t-test. Per-method metrics (U-LiRA, unit 'shadows'): paired bootstrap over "
                 f"shadow models ({N_BOOT} draws), 95% percentile interval, two-sided bootstrap p. Winner: "
                 f"Holm-corrected p < {alpha} across the metrics of a scenario. Metrics that should match the "
                 "oracle are compared by their gap (gap_*).")
    return "\n".join(lines)


def _dz(value: float) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return number(value, 2)
