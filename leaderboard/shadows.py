"""Per-method metrics (U-LiRA) compared by a paired bootstrap over shadow models, never over seeds.

A per-method metric is one value per (method configuration, scenario), computed on the suite's shadow bank
and copied to every seed's row: the seeds carry no information about its spread, so a seed-paired test on it
would compare constant differences (p = 0 for any non-zero difference). Its spread comes from the shadow
models. The per-example attack tables (``<results>/<suite>/_examples/<evaluator>-<scenario>-<method>-<config>
.parquet``: shadow, example, label, score, ...) let two methods be compared on the *same* resampled shadows:
all methods of a scenario are attacked on one shared bank, so a draw of shadow indices is a paired draw.

The resampling unit is the table's independent unit: the complementary shadow *pair* (column ``pair``) where
the table has one (U-LiRA matches and fits its targets per pair), else the shadow. Draws use the evaluator's
own settings (``harness.core.attack_stats``: 1000 resamples, seed 0), so the floor's interval here is the one its row
stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.attack_stats import percentile_interval, shadow_bootstrap, summarize_attack
from harness.core.results import EXAMPLES_DIR
from leaderboard.stats import LEVEL, bootstrap_equivalence_p, bootstrap_p

N_BOOT = 1000  # as the evaluator's stored intervals (harness/evaluate/ulira.py)
# metric -> (evaluator whose tables hold it, key of harness.core.attack_stats.shadow_bootstrap's draws)
RESAMPLABLE = {"ulira_acc": ("ulira", "accuracy"), "ulira_auc": ("ulira", "auc")}
# A table must reproduce the value stored in the rows to this precision (percent), or it is not used.
MATCH_TOL = 1e-3


class ShadowTables:
    """Reads (once) the per-example tables of one suite's results folder."""

    def __init__(self, results: Path | None, suite: str):
        self.folder = None if results is None else Path(results) / suite / EXAMPLES_DIR
        self._cache: dict[tuple[str, str, str, str], pd.DataFrame | None] = {}

    def table(self, evaluator: str, scenario: str, method: str, config_hash: str) -> pd.DataFrame | None:
        key = (evaluator, scenario, method, config_hash)
        if key not in self._cache:
            path = None if self.folder is None else self.folder / f"{evaluator}-{scenario}-{method}-{config_hash}.parquet"
            self._cache[key] = pd.read_parquet(path) if path is not None and path.is_file() else None
        return self._cache[key]


def resamplable(metric: str) -> bool:
    return metric.removeprefix("gap_") in RESAMPLABLE


def value_of(table: pd.DataFrame, metric: str) -> float:
    """The metric recomputed from a per-example table (as the evaluator computed it)."""
    summary = summarize_attack(table["score"].to_numpy(), table["label"].to_numpy())
    return {"accuracy": summary.accuracy, "auc": summary.auc}[RESAMPLABLE[metric][1]]


def cluster_column(table: pd.DataFrame) -> str:
    """The resampling unit's column: shadow pairs where the table records them, else shadows."""
    return "pair" if "pair" in table else "shadow"


def draws_of(table: pd.DataFrame, metric: str, clusters: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
             ) -> np.ndarray:
    """Bootstrap draws of ``metric`` over resampled clusters; ``clusters`` (sorted ids shared by every table
    in the comparison) fixes which cluster each drawn index means, so the same ``seed`` pairs the draws."""
    unit = cluster_column(table)
    rows = table[table[unit].isin(clusters)]
    kind = RESAMPLABLE[metric][1]
    # Every shared cluster must appear so the cluster indices line up across tables.
    missing = set(clusters) - set(rows[unit])
    if missing:
        raise ValueError(f"{unit}s {sorted(missing)} missing from a table")
    draws = shadow_bootstrap(rows["score"].to_numpy(), rows["label"].to_numpy(), rows[unit].to_numpy(),
                             n_boot, seed, auc=kind == "auc")
    return draws[kind]


@dataclass(frozen=True)
class ShadowComparison:
    """``a - b`` on a per-method metric (its gap to the floor when ``gap``), over resampled shadows."""

    metric: str
    n_shadows: int  # resampled units (shadow pairs, or shadows)
    unit: str  # "shadow pair" or "shadow"
    value_a: float
    value_b: float
    diff: float
    ci_lo: float
    ci_hi: float
    se: float  # bootstrap standard deviation of the difference
    p: float  # two-sided bootstrap p of diff = 0
    draws: np.ndarray


def shared_shadows(*tables: pd.DataFrame) -> np.ndarray:
    """Cluster ids (pairs or shadows) present in every table; all tables must use the same unit."""
    units = {cluster_column(t) for t in tables}
    if len(units) > 1:
        raise ValueError("the tables resample different units (shadow pairs in some, shadows in others)")
    unit = units.pop()
    return np.array(sorted(set.intersection(*(set(t[unit].unique()) for t in tables))))


def compare_tables(metric: str, a: pd.DataFrame, b: pd.DataFrame, floor: pd.DataFrame | None = None,
                   n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> ShadowComparison:
    """Paired shadow bootstrap of ``metric(a) - metric(b)``; with ``floor``, of the gaps
    ``|metric(a) - metric(floor)| - |metric(b) - metric(floor)|`` (match-oracle metrics, as ``gap_<m>``)."""
    name = metric.removeprefix("gap_")
    tables = [a, b] + ([floor] if floor is not None else [])
    shadows = shared_shadows(*tables)
    if len(shadows) < 2:
        raise ValueError(f"{name}: the tables share {len(shadows)} resampling unit(s); a bootstrap needs two")
    da, db = draws_of(a, name, shadows, n_boot, seed), draws_of(b, name, shadows, n_boot, seed)
    va, vb = value_of(a, name), value_of(b, name)
    if floor is not None:
        df, vf = draws_of(floor, name, shadows, n_boot, seed), value_of(floor, name)
        da, db, va, vb = np.abs(da - df), np.abs(db - df), abs(va - vf), abs(vb - vf)
    diff = da - db
    finite = diff[np.isfinite(diff)]
    lo, hi = percentile_interval(diff, level)
    unit = "shadow pair" if cluster_column(a) == "pair" else "shadow"
    return ShadowComparison(metric, len(shadows), unit, va, vb, va - vb, float(lo), float(hi),
                            float(finite.std(ddof=1)) if len(finite) > 1 else math.nan, bootstrap_p(diff), diff)


def equivalence_p(comparison: ShadowComparison, margin: float) -> float:
    """Bootstrap TOST of ``|a - b| < margin`` from a comparison's draws."""
    return bootstrap_equivalence_p(comparison.draws, margin)
