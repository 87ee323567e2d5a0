"""Aggregate results rows into leaderboard entries: one per (scenario, method configuration).

An *entry* is a method with one hyper-parameter configuration (``config_hash``); two configurations of
one method are two entries, labelled ``method [hash]``. Rows that failed are counted per entry, never
averaged; rows that fail the integrity checks form separate, unranked entries marked unverified; entries
whose runs mostly returned the original (``noop``) are labelled no-op and not ranked. Each ranked entry gets a
verdict against the ``retrain`` floor row (``leaderboard.verdicts``); rankings across scenarios are in
``leaderboard.overall``, and ``leaderboard.board`` puts a suite's scenarios together.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.membership import percentile_interval
from harness.names import did_you_mean
from harness.protocol import ORACLE_METHOD
from leaderboard.shadows import (
    N_BOOT,
    ShadowTables,
    cluster_column,
    compare_tables,
    draws_of,
    resamplable,
    shared_shadows,
)
from leaderboard.stats import ALPHA, LEVEL, rank_values, summarize
from leaderboard.verdicts import FLOOR, NO_OP, NOT_TESTED, Verdict, seed_verdicts, shadow_verdicts
from leaderboard.verification import entry_recheck

ORACLE = ORACLE_METHOD
RUNTIME = ("time_ratio", "wall_time_s")  # lower is better; not part of metric_meta
HEADLINES = ("avg_gap", "avg_gap_rmia", "utility_gap")  # mean gaps to the oracles (harness.protocol); lower is better
NOT_OK = ("failed", "timeout", "invalid", "unreadable")
HASH_CHARS = 6
RECONSTRUCTED_METHOD_MARK = " (reconstructed)"  # after the entry label of a method registered reconstructed=True
NOOP_SHARE = 0.5  # an entry is a no-op when more than this share of its successful seeds are
UNSANDBOXED = {"none": "no sandbox", "off": "no isolation (--no-isolation)"}


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
            if name in found or name not in frame or info.get("direction") == "info":
                continue
            headline = name in HEADLINES or "terms" in info
            found[name] = Metric(name, "lower" if headline else info.get("direction", "match-oracle"),
                                 bool(info.get("in_avg_gap")), bool(info.get("reconstructed")),
                                 str(info.get("unit", "")), str(info.get("evaluator", "")),
                                 bool(info.get("per_method")), tuple(info.get("scenarios", ("random", "class"))),
                                 headline, str(info.get("description", "")), bool(info.get("privacy")))
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


def entry_labels(frame: pd.DataFrame) -> pd.Series:
    """``method`` or, where a method has several configurations in one scenario kind, ``method [config hash
    prefix]``: settings tuned per scenario kind (docs/tuning.md) are one entry, not one per kind."""
    kinds = frame["scenario"].map(scenario_kind) if "scenario" in frame else pd.Series("", index=frame.index)
    configs = frame.assign(_kind=kinds).groupby(["method", "_kind"])["config_hash"].nunique().groupby(level=0).max()
    rebuilt = set(frame.loc[frame["method_reconstructed"].fillna(False).astype(bool), "method"]
                  if "method_reconstructed" in frame else [])
    return pd.Series([(f"{m} [{str(h)[:HASH_CHARS]}]" if configs.get(m, 1) > 1 else str(m))
                      + (RECONSTRUCTED_METHOD_MARK if m in rebuilt else "")
                      for m, h in zip(frame["method"], frame["config_hash"])], index=frame.index)


@dataclass
class ScenarioBoard:
    """One scenario's leaderboard: a row per entry, with statistics, ranks and a verdict against the floor."""

    suite: str
    scenario: str
    table: pd.DataFrame  # one row per entry (see ``aggregate_scenario`` for the columns)
    sort: SortKey
    seeds: list[int]
    floor: str | None  # entry label of the retrain floor row
    margin: float  # equivalence margin (NaN: no floor measured, or the ranking metric is not a gap)
    margin_note: str  # how the margin was obtained, or why there is none
    per_seed: pd.DataFrame  # seed x ranked entry: the ranking metric (seed metrics only)
    draws: pd.DataFrame | None = None  # bootstrap draw x ranked entry: gap draws over shadows (per-method metrics)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return scenario_kind(self.scenario)


def _status_counts(rows: pd.DataFrame) -> dict[str, int]:
    status = rows["status"].fillna("unreadable")
    return {"failed": int(status.isin(NOT_OK).sum()), "skipped": int((status == "skipped").sum())}


def _flags(good: pd.DataFrame, group: pd.DataFrame, reference: bool) -> dict:
    """No-op (most successful seeds returned the original's outputs) and how the method's runs were isolated
    (references run no user code, so their sandbox setting is not marked)."""
    noop_seeds = int(good["noop"].fillna(False).astype(bool).sum()) if "noop" in good else 0
    sandbox = sorted({str(s) for s in group["sandbox"].dropna()}) if "sandbox" in group else []
    unsandboxed = "" if reference else "; ".join(UNSANDBOXED[s] for s in sandbox if s in UNSANDBOXED)
    return {"noop_seeds": noop_seeds, "noop": len(good) > 0 and noop_seeds > NOOP_SHARE * len(good),
            "sandbox": ", ".join(sandbox), "unsandboxed": unsandboxed}


def _tuning(group: pd.DataFrame) -> dict:
    """How the configuration was tuned (``unlearn-bench tune``; rows from before it have no such columns)."""
    def first(col: str, default):
        return group[col].dropna().iloc[0] if col in group and group[col].notna().any() else default

    return {"tuning_budget": int(first("tuning_budget", 0)), "tuning_trials": int(first("tuning_trials", 0)),
            "tuning_at_bound": str(first("tuning_at_bound", ""))}


def _summary(good: pd.DataFrame, col: str, meta: dict[str, Metric]) -> dict[str, float]:
    s = summarize(good[col].tolist())
    out = {f"{col}_mean": s.mean, f"{col}_std": s.std, f"{col}_lo": s.lo, f"{col}_hi": s.hi}
    if per_method(col, meta):
        # Every seed repeats the one value: an interval over seeds would claim a precision it lacks. The metric
        # itself carries its interval over shadow models when the evaluator stored one.
        out.update({f"{col}_std": math.nan, f"{col}_lo": math.nan, f"{col}_hi": math.nan})
        if not col.startswith("gap_") and f"{col}_boot_lo" in good:
            out[f"{col}_lo"] = summarize(good[f"{col}_boot_lo"].tolist()).mean
            out[f"{col}_hi"] = summarize(good[f"{col}_boot_hi"].tolist()).mean
    return out


def aggregate_scenario(rows: pd.DataFrame, meta: dict[str, Metric], sort: SortKey, suite: str, scenario: str,
                       alpha: float = ALPHA, tables: ShadowTables | None = None) -> ScenarioBoard:
    """Statistics per entry of one scenario. Columns: entry, method, method_kind, config_hash, hparams,
    verified, integrity, n, n_expected, failed, skipped, seeds, noop, noop_seeds, sandbox, unsandboxed,
    ``<col>_{mean,std,lo,hi}`` per value column, rank, within_floor and the verdict ``vs_floor_*``."""
    columns = value_columns(rows, meta)
    ok = rows[rows["status"] == "ok"]
    expected_seeds = sorted({int(s) for s in ok.loc[ok["verified"], "seed"]})
    records = []
    for (entry, method, chash, verified), group in rows.groupby(["entry", "method", "config_hash", "verified"],
                                                                sort=False, dropna=False):
        good = group[group["status"] == "ok"]
        kind = str(group["method_kind"].dropna().iloc[0]) if group["method_kind"].notna().any() else ""
        record = {
            "entry": entry, "method": method, "config_hash": chash, "verified": bool(verified), "method_kind": kind,
            "hparams": str(group["hparams"].dropna().iloc[0]) if group["hparams"].notna().any() else "{}",
            "integrity": "; ".join(sorted({r for r in group["integrity"] if r})),
            "recheck": entry_recheck(group["recheck"]) if "recheck" in group else "",
            "n": int(good["seed"].nunique()), "n_expected": len(expected_seeds),
            "seeds": sorted(int(s) for s in good["seed"].unique()),
            **_status_counts(group), **_flags(good, group, kind == "reference"), **_tuning(group),
        }
        for col in columns:
            record.update(_summary(good, col, meta))
        records.append(record)
    table = pd.DataFrame.from_records(records)
    board = ScenarioBoard(suite, scenario, table, sort, expected_seeds, None, math.nan, "", pd.DataFrame(),
                          provenance=provenance(rows))
    _rank(board)
    _judge(board, ok[ok["verified"]], meta, alpha, tables)
    board.table = _display_order(board.table, sort).reset_index(drop=True)
    return board


def is_floor(table: pd.DataFrame) -> pd.Series:
    return (table["method"] == ORACLE) & (table["method_kind"] == "reference")


def rankable(table: pd.DataFrame, sort: SortKey) -> pd.Series:
    """Entries that compete: verified, not a reference, not a no-op, with a value of the ranking metric."""
    mean = table.get(f"{sort.column}_mean", pd.Series(math.nan, index=table.index))
    return (table["verified"] & (table["method_kind"] != "reference") & (table["n"] > 0) & mean.notna()
            & ~table["noop"].astype(bool))


def _rank(board: ScenarioBoard) -> None:
    table, sort = board.table, board.sort
    table["rank"] = math.nan
    competing = rankable(table, sort)
    if competing.any():
        table.loc[competing, "rank"] = rank_values(table.loc[competing, f"{sort.column}_mean"].tolist(),
                                                   sort.lower_is_better)


def _per_seed(ok: pd.DataFrame, entry: str) -> pd.DataFrame:
    return ok[ok["entry"] == entry].drop_duplicates("seed", keep="last").set_index("seed")


def _verdict_columns(table: pd.DataFrame) -> None:
    for col, default in (("vs_floor_state", ""), ("vs_floor_unit", ""), ("vs_floor_n", 0),
                         ("vs_floor_diff", math.nan), ("vs_floor_lo", math.nan), ("vs_floor_hi", math.nan),
                         ("vs_floor_test", ""), ("vs_floor_p", math.nan), ("vs_floor_p_holm", math.nan),
                         ("vs_floor_p_equiv", math.nan), ("vs_floor_p_equiv_holm", math.nan),
                         ("within_floor", False)):
        table[col] = default
    table["within_floor"] = table["within_floor"].astype(object)


def _judge(board: ScenarioBoard, ok: pd.DataFrame, meta: dict[str, Metric], alpha: float,
           tables: ShadowTables | None) -> None:
    """Verdicts of the ranked entries against the retrain floor row (paired by seed, or over shadows)."""
    table, sort = board.table, board.sort
    _verdict_columns(table)
    competing = rankable(table, sort)
    board.per_seed = _ranked_per_seed(ok, table, competing, sort.column)
    table.loc[table["noop"].astype(bool) & table["verified"] & (table["method_kind"] != "reference"),
              "vs_floor_state"] = NO_OP
    floors = table.index[is_floor(table) & table["verified"]]
    if not len(floors):
        board.margin_note = "no verified retrain floor row in this scenario: nothing to test against"
        table.loc[competing, "vs_floor_state"] = NOT_TESTED
        return
    floor_i = floors[0]
    board.floor = str(table.at[floor_i, "entry"])
    table.at[floor_i, "vs_floor_state"] = FLOOR
    if per_method(sort.column, meta):
        verdicts = _shadow_judge(board, floor_i, competing, meta, alpha, tables)
    else:
        verdicts = _seed_judge(board, ok, floor_i, competing, alpha)
    for i, v in verdicts.items():
        for key, value in (("state", v.state), ("unit", v.unit), ("n", v.n), ("diff", v.diff), ("lo", v.ci_lo),
                           ("hi", v.ci_hi), ("test", v.test), ("p", v.p), ("p_holm", v.p_holm),
                           ("p_equiv", v.p_equiv), ("p_equiv_holm", v.p_equiv_holm)):
            table.at[i, f"vs_floor_{key}"] = value


def _ranked_per_seed(ok: pd.DataFrame, table: pd.DataFrame, competing: pd.Series, col: str) -> pd.DataFrame:
    """seed x ranked entry values of the ranking metric (verified rows: canonical split and original)."""
    return pd.DataFrame({str(e): _per_seed(ok, str(e))[col].astype(float) for e in table.loc[competing, "entry"]})


def _seed_judge(board: ScenarioBoard, ok: pd.DataFrame, floor_i: int, competing: pd.Series,
                alpha: float) -> dict[int, Verdict]:
    table, sort = board.table, board.sort
    col = sort.column
    floor_rows = _per_seed(ok, str(table.at[floor_i, "entry"]))
    floor_mean = float(table.at[floor_i, f"{col}_mean"]) if f"{col}_mean" in table else math.nan
    floor_hi = float(table.at[floor_i, f"{col}_hi"]) if f"{col}_hi" in table else math.nan
    if not sort.is_gap:
        board.margin_note = f"no equivalence test: {col} is not a gap to the oracles"
    elif not (math.isfinite(floor_mean) and floor_mean > 0):
        board.margin_note = ("no equivalence test: the floor row's gap is 0 (results from before the noise floor "
                             "was measured: one oracle, scored against itself)")
    else:
        board.margin = floor_mean
        board.margin_note = f"margin ±{floor_mean:.3g} = the floor row's mean {col} over its seeds"
    pairs = {}
    for i in table.index[competing]:
        mine = _per_seed(ok, str(table.at[i, "entry"]))
        paired = mine.merge(floor_rows, left_index=True, right_index=True, suffixes=("_a", "_b"))
        # Only seeds on the same split and the same original are a fair pair.
        paired = paired[(paired["split_hash_a"] == paired["split_hash_b"])
                        & (paired["original_key_a"] == paired["original_key_b"])]
        pairs[i] = (paired[f"{col}_a"].astype(float).tolist(), paired[f"{col}_b"].astype(float).tolist())
        mean = float(table.at[i, f"{col}_mean"])
        bound = floor_hi if math.isfinite(floor_hi) else floor_mean
        table.at[i, "within_floor"] = bool(math.isfinite(bound) and sort.is_gap and mean <= bound)
    return seed_verdicts(pairs, board.margin, sort.lower_is_better, alpha)


def _shadow_judge(board: ScenarioBoard, floor_i: int, competing: pd.Series, meta: dict[str, Metric],
                  alpha: float, tables: ShadowTables | None) -> dict[int, Verdict]:
    """Per-method ranking metric: paired shadow bootstrap of each entry's value against the floor's."""
    table, sort = board.table, board.sort
    metric = sort.column.removeprefix("gap_")
    match_oracle = sort.column.startswith("gap_")
    if not resamplable(metric) or tables is None:
        board.margin_note = f"no test: {metric} is scored per method and cannot be resampled here"
        table.loc[competing, "vs_floor_state"] = NOT_TESTED
        return {}
    evaluator = metric.split("_", 1)[0]
    get = lambda i: tables.table(evaluator, board.scenario, str(table.at[i, "method"]), str(table.at[i, "config_hash"]))
    floor_table = get(floor_i)
    have = {i: get(i) for i in table.index[competing]}
    missing = [str(table.at[i, "entry"]) for i, t in have.items() if t is None]
    if floor_table is None or missing:
        board.margin_note = ("no test: per-example tables missing for "
                             + (", ".join(missing) if floor_table is not None else "the floor row"))
        table.loc[competing, "vs_floor_state"] = NOT_TESTED
        return {}
    unit = cluster_column(floor_table)
    shadows = shared_shadows(floor_table, *have.values())
    floor_draws = draws_of(floor_table, metric, shadows, N_BOOT)
    lo, hi = percentile_interval(floor_draws, LEVEL)
    board.margin = (hi - lo) / 2
    board.margin_note = (f"margin ±{board.margin:.3g} = half-width of the floor row's 95% bootstrap interval of "
                         f"{metric} over {len(shadows)} shadow {unit}s")
    keep = lambda t: t[t[unit].isin(shadows)]
    comparisons = {i: compare_tables(metric, keep(t), keep(floor_table)) for i, t in have.items()}
    gaps = {}
    for i, c in comparisons.items():
        table.at[i, "within_floor"] = bool(abs(c.diff) <= board.margin)
        # The gap draws (|entry - floor| per resample, or the value itself) for P(best) across scenarios.
        entry_draws = c.draws + floor_draws  # diff draws + floor draws = the entry's own draws
        gaps[str(table.at[i, "entry"])] = np.abs(c.draws) if match_oracle else entry_draws
    board.draws = pd.DataFrame(gaps)
    return shadow_verdicts(comparisons, board.margin, match_oracle, sort.lower_is_better, alpha)


def _display_order(table: pd.DataFrame, sort: SortKey) -> pd.DataFrame:
    """References first (floor on top), then ranked entries, no-ops, unranked ones (no seeds), unverified."""
    is_ref = table["method_kind"] == "reference"
    group = np.where(is_ref, 0, np.where(table["rank"].notna(), 1, np.where(
        table["noop"].astype(bool) & table["verified"], 2, np.where(table["verified"], 3, 4))))
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


def prepare(frame: pd.DataFrame, verified_only: bool = False, data_root: str | None = None,
            suite_file: str | None = None) -> tuple[pd.DataFrame, int]:
    """Integrity marks and entry labels; drops unverified rows when asked (returns how many)."""
    from leaderboard.integrity import mark_integrity

    frame = mark_integrity(frame, data_root, suite_file)
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
