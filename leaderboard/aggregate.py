"""Aggregate results rows into leaderboard entries: one per (scenario, method configuration).

An *entry* is a method with one hyper-parameter configuration (``config_hash``); two configurations of
one method are two entries, labelled ``method [hash]``. Rows that failed are counted per entry, never
averaged; rows that fail the integrity checks form separate, unranked entries marked unverified.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.registry import did_you_mean
from leaderboard.stats import ALPHA, holm, paired_test, rank_values, summarize

ORACLE = "retrain"
RUNTIME = ("time_ratio", "wall_time_s")  # lower is better; not part of metric_meta
NOT_OK = ("failed", "timeout", "invalid", "unreadable")
HASH_CHARS = 6


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


def metric_meta(frame: pd.DataFrame) -> dict[str, Metric]:
    """Union of the rows' ``metric_meta`` JSON: scored metrics (not direction 'info') that have a column."""
    found: dict[str, Metric] = {}
    for text in frame.get("metric_meta", pd.Series(dtype=object)).dropna().unique():
        try:
            meta = json.loads(text)
        except (TypeError, ValueError):
            continue
        for name, info in meta.items():
            # 'info' columns (shadow counts, a neighbour class index) describe a run; they are not scored.
            if name not in found and name in frame and info.get("direction") != "info":
                found[name] = Metric(name, info.get("direction", "match-oracle"), bool(info.get("in_avg_gap")),
                                     bool(info.get("reconstructed")), str(info.get("unit", "")),
                                     str(info.get("evaluator", "")), bool(info.get("per_method")))
    # Evaluator by evaluator (as registered), then by name: related metrics stay next to each other.
    return dict(sorted(found.items(), key=lambda kv: (kv[1].evaluator, kv[0])))


def sort_key(metric: str, meta: dict[str, Metric], frame: pd.DataFrame | None = None) -> SortKey:
    """Resolve ``--sort``: gaps and runtime rank lower-first; match-oracle metrics rank by their gap."""
    if metric == "avg_gap" or metric.startswith("gap_") or metric in RUNTIME:
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
    return ["avg_gap", *meta, *gaps, *RUNTIME]


def value_columns(frame: pd.DataFrame, meta: dict[str, Metric]) -> list[str]:
    """Every numeric column aggregated per entry: avg_gap, metrics, their gaps, runtime."""
    cols = ["avg_gap", *meta, *(f"gap_{m}" for m in meta), *RUNTIME]
    return [c for c in dict.fromkeys(cols) if c in frame]


def entry_labels(frame: pd.DataFrame) -> pd.Series:
    """``method`` or, where a method has several configurations, ``method [config hash prefix]``."""
    configs = frame.groupby("method")["config_hash"].nunique()
    return pd.Series([f"{m} [{str(h)[:HASH_CHARS]}]" if configs.get(m, 1) > 1 else str(m)
                      for m, h in zip(frame["method"], frame["config_hash"])], index=frame.index)


@dataclass
class ScenarioBoard:
    """One scenario's leaderboard: a row per entry, with statistics, ranks and significance vs the best."""

    suite: str
    scenario: str
    table: pd.DataFrame  # one row per entry (see ``aggregate_scenario`` for the columns)
    sort: SortKey
    seeds: list[int]
    best: str | None
    provenance: dict[str, str] = field(default_factory=dict)


def _status_counts(rows: pd.DataFrame) -> dict[str, int]:
    status = rows["status"].fillna("unreadable")
    return {"failed": int(status.isin(NOT_OK).sum()), "skipped": int((status == "skipped").sum())}


def aggregate_scenario(rows: pd.DataFrame, meta: dict[str, Metric], sort: SortKey, suite: str, scenario: str,
                       alpha: float = ALPHA) -> ScenarioBoard:
    """Statistics per entry of one scenario. Columns: entry, method, method_kind, config_hash, hparams,
    verified, integrity, n, n_expected, failed, seeds, ``<col>_{mean,std,lo,hi}`` per value column, rank,
    vs_best_{test,n,p,p_holm}, tied."""
    columns = value_columns(rows, meta)
    ok = rows[rows["status"] == "ok"]
    expected_seeds = sorted({int(s) for s in ok.loc[ok["verified"], "seed"]})
    records = []
    group_keys = ["entry", "method", "config_hash", "verified"]
    for (entry, method, chash, verified), group in rows.groupby(group_keys, sort=False, dropna=False):
        good = group[group["status"] == "ok"]
        record = {
            "entry": entry, "method": method, "config_hash": chash, "verified": bool(verified),
            "method_kind": str(group["method_kind"].dropna().iloc[0]) if group["method_kind"].notna().any() else "",
            "hparams": str(group["hparams"].dropna().iloc[0]) if group["hparams"].notna().any() else "{}",
            "integrity": "; ".join(sorted({r for r in group["integrity"] if r})),
            "n": int(good["seed"].nunique()), "n_expected": len(expected_seeds),
            "seeds": sorted(int(s) for s in good["seed"].unique()),
            **_status_counts(group),
        }
        for col in columns:
            s = summarize(good[col].tolist())
            record.update({f"{col}_mean": s.mean, f"{col}_std": s.std, f"{col}_lo": s.lo, f"{col}_hi": s.hi})
            info = meta.get(col.removeprefix("gap_"))
            if info is not None and info.per_method:
                # Every seed repeats the same value: an interval over seeds would claim a precision it lacks.
                record.update({f"{col}_std": math.nan, f"{col}_lo": math.nan, f"{col}_hi": math.nan})
        records.append(record)
    table = pd.DataFrame.from_records(records)
    best = _rank_and_test(table, ok, sort, alpha)
    table = _display_order(table, sort)
    return ScenarioBoard(suite, scenario, table.reset_index(drop=True), sort, expected_seeds, best,
                         provenance(rows))


def rankable(table: pd.DataFrame, sort: SortKey) -> pd.Series:
    """Entries that compete: verified, not a reference, with at least one successful seed."""
    mean = table.get(f"{sort.column}_mean", pd.Series(math.nan, index=table.index))
    return table["verified"] & (table["method_kind"] != "reference") & (table["n"] > 0) & mean.notna()


def _rank_and_test(table: pd.DataFrame, ok: pd.DataFrame, sort: SortKey, alpha: float) -> str | None:
    """Rank competing entries; test each against the best, paired by seed (same split and original)."""
    for col, default in (("rank", math.nan), ("vs_best_test", ""), ("vs_best_n", 0), ("vs_best_p", math.nan),
                         ("vs_best_p_holm", math.nan), ("vs_best_diff", math.nan), ("tied", None),
                         ("vs_best_state", "")):
        table[col] = default
    table["tied"] = table["tied"].astype(object)
    competing = rankable(table, sort)
    if not competing.any():
        return None
    means = table.loc[competing, f"{sort.column}_mean"]
    table.loc[competing, "rank"] = rank_values(means.tolist(), sort.lower_is_better)
    # The reference for the tests is the best entry with every seed of the scenario (an entry still missing
    # seeds could not be paired with the others); only when no entry is complete, the best overall.
    complete = means[table.loc[competing, "n"] == table.loc[competing, "n_expected"]]
    pool = complete if len(complete) else means
    best_index = pool.idxmin() if sort.lower_is_better else pool.idxmax()
    best = table.at[best_index, "entry"]
    verified_ok = ok[ok["verified"]]
    best_rows = _per_seed(verified_ok, best)
    others = [i for i in table.index[competing] if i != best_index]
    tests = {}
    for i in others:
        mine = _per_seed(verified_ok, table.at[i, "entry"])
        paired = mine.merge(best_rows, left_index=True, right_index=True, suffixes=("_a", "_b"))
        # Only seeds on the same split and the same original are a fair pair.
        paired = paired[(paired["split_hash_a"] == paired["split_hash_b"])
                        & (paired["original_key_a"] == paired["original_key_b"])]
        tests[i] = paired_test(paired[f"{sort.column}_a"].tolist(), paired[f"{sort.column}_b"].tolist(),
                               sort.lower_is_better)
    adjusted = holm([t.p for t in tests.values()])
    for (i, t), p_adj in zip(tests.items(), adjusted):
        table.at[i, "vs_best_test"], table.at[i, "vs_best_n"] = t.test, t.n
        table.at[i, "vs_best_p"], table.at[i, "vs_best_p_holm"], table.at[i, "vs_best_diff"] = t.p, p_adj, t.mean_diff
        table.at[i, "tied"] = None if math.isnan(p_adj) else bool(p_adj >= alpha)
        # Two-sided test: an entry with fewer seeds (not the reference) can be significantly better.
        favourable = t.mean_diff < 0 if sort.lower_is_better else t.mean_diff > 0
        if table.at[i, "tied"] is False:
            table.at[i, "vs_best_state"] = "better" if favourable else "worse"
        elif table.at[i, "tied"] is True:
            table.at[i, "vs_best_state"] = "tied"
    table.at[best_index, "vs_best_test"] = "best"
    return str(best)


def _per_seed(ok: pd.DataFrame, entry: str) -> pd.DataFrame:
    rows = ok[ok["entry"] == entry].drop_duplicates("seed", keep="last").set_index("seed")
    keep = [c for c in rows.columns if c not in ("entry",)]
    return rows[keep]


def _display_order(table: pd.DataFrame, sort: SortKey) -> pd.DataFrame:
    """References first (oracle on top), then ranked entries, then unranked ones (no seeds, unverified)."""
    is_ref = table["method_kind"] == "reference"
    group = np.where(is_ref, 0, np.where(table["rank"].notna(), 1, np.where(table["verified"], 2, 3)))
    ref_order = np.where(table["method"] == ORACLE, 0, 1)
    value = table.get(f"{sort.column}_mean", pd.Series(math.nan, index=table.index))
    value = value if sort.lower_is_better else -value
    order = pd.DataFrame({"g": group, "r": ref_order, "rank": table["rank"], "v": value, "e": table["entry"]},
                         index=table.index)
    return table.loc[order.sort_values(["g", "r", "rank", "v", "e"], na_position="last").index]


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
        "seeds": ", ".join(map(str, seeds)) or "–",
        "harness": values("harness_version"),
        "git sha": values("git_sha"),
        "hardware": values("hardware"),
        "packages": values("packages", 1),
        "date": (dates.min()[:10] + (f" – {dates.max()[:10]}" if dates.max()[:10] != dates.min()[:10] else ""))
        if len(dates) else "–",
    }


@dataclass
class SuiteBoard:
    """Every scenario of one suite, plus the average-rank summary across scenarios."""

    suite: str
    scenarios: list[ScenarioBoard]
    meta: dict[str, Metric]
    sort: SortKey
    ranks: pd.DataFrame  # entry x scenario ranks, with mean_rank and n_scenarios
    excluded_unverified: int = 0
    unreadable: int = 0  # result files that could not be read (no scenario to put them in)


def prepare(frame: pd.DataFrame, verified_only: bool = False, data_root: str | None = None) -> tuple[pd.DataFrame, int]:
    """Integrity marks and entry labels; drops unverified rows when asked (returns how many)."""
    from leaderboard.integrity import mark_integrity

    frame = mark_integrity(frame, data_root)
    for col, default in (("method_kind", ""), ("config_hash", "-"), ("hparams", "{}"), ("seed", -1)):
        if col not in frame:
            frame[col] = default
    frame["config_hash"] = frame["config_hash"].fillna("-")
    dropped = 0
    if verified_only:
        dropped = int((~frame["verified"]).sum())
        frame = frame[frame["verified"]].copy()
    frame["entry"] = entry_labels(frame)
    return frame, dropped


def build_suite_board(frame: pd.DataFrame, sort: str = "avg_gap", verified_only: bool = False,
                      data_root: str | None = None, alpha: float = ALPHA) -> SuiteBoard:
    """The leaderboard of one suite's rows."""
    suites = frame["suite"].dropna().unique()
    if len(suites) != 1:
        raise ValueError(f"build_suite_board expects one suite, got {list(suites)}")
    unreadable = int(frame["scenario"].isna().sum()) if "scenario" in frame else len(frame)
    frame, dropped = prepare(frame[frame["scenario"].notna()] if "scenario" in frame else frame.iloc[:0],
                             verified_only, data_root)
    meta = metric_meta(frame)
    key = sort_key(sort, meta, frame)
    boards = [aggregate_scenario(rows, meta, key, str(suites[0]), str(scenario), alpha)
              for scenario, rows in frame.groupby("scenario", sort=True)]
    return SuiteBoard(str(suites[0]), boards, meta, key, average_ranks(boards), dropped, unreadable)


def average_ranks(boards: list[ScenarioBoard]) -> pd.DataFrame:
    """Rank of each competing entry per scenario, its mean over the scenarios it appears in, and how many."""
    ranks: dict[str, dict[str, float]] = {}
    for board in boards:
        for entry, rank in zip(board.table["entry"], board.table["rank"]):
            if not math.isnan(rank):
                ranks.setdefault(entry, {})[board.scenario] = rank
    table = pd.DataFrame.from_dict(ranks, orient="index")
    if table.empty:
        return pd.DataFrame(columns=["entry", "mean_rank", "n_scenarios"])
    table = table[[b.scenario for b in boards if b.scenario in table]]
    table["mean_rank"] = table.mean(axis=1)
    table["n_scenarios"] = table.drop(columns="mean_rank").notna().sum(axis=1)
    table = table.sort_values(["mean_rank", "n_scenarios"], ascending=[True, False])
    return table.rename_axis("entry").reset_index()
