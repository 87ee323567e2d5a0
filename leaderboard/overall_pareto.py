"""The default ranking across scenarios: the mean of the per-scenario Pareto ranks.

Who takes part: the entries ranked with every seed in every scenario (as ``leaderboard.overall``). In each
scenario they are re-ranked among themselves by the per-scenario rule (``leaderboard.pareto``: fronts over
(utility, privacy), then the worse axis); the overall order is the mean of those ranks. If A dominates B in every
scenario, A ranks above B in every scenario and so has the lower mean rank: no entry worse on both axes
everywhere is ranked above the entry that beats it.

Statistics, each with its own resampling unit:

* **Friedman / Nemenyi** over blocks = scenarios (one Pareto ranking per scenario; seeds are not blocks here,
  because the privacy axis mixes per-seed attacks with per-method ones that have one value per scenario);
* **P(best)**: each bootstrap draw recomputes every scenario's ranking from resampled evidence: the seeds (with
  replacement, the same seeds for every entry) for per-seed quantities (utility_gap, per-seed attack gaps), and
  draw b of the paired shadow bootstrap for per-method attacks (the same draw for every entry). The attacks on
  the axis and the normalising original's gaps are held at their point values (a fixed scale), so a draw moves
  the entries, not the ruler.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from leaderboard.aggregate import ScenarioBoard
from leaderboard.axes import UTILITY, Axes
from leaderboard.overall import Overall, candidates
from leaderboard.pareto import rank, usable_scale
from leaderboard.ranking import N_BOOT, friedman
from leaderboard.stats import ALPHA

RULE = ("mean over scenarios of the per-scenario Pareto rank (re-ranked among the entries ranked in every "
        "scenario)")
UNIT = "seeds (per-seed quantities) and paired shadow draws (per-method attacks), within each scenario"


class ScenarioSampler:
    """Recomputes one scenario's ranking of ``entries`` from a resample of its evidence."""

    def __init__(self, board: ScenarioBoard, axes: Axes, ok: pd.DataFrame, entries: list[str]):
        self.entries = entries
        rows = ok[ok["entry"].isin(entries) & ok["seed"].isin(board.seeds)].drop_duplicates(["entry", "seed"],
                                                                                           keep="last")
        utility = rows.pivot(index="seed", columns="entry", values=UTILITY).reindex(index=sorted(board.seeds))
        self.utility = utility[entries].to_numpy(float)
        t = axes.table
        self.utility_scale = usable_scale(t.at[axes.original, "utility"]) if axes.original in t.index else 1.0
        self.seed_gaps, self.draw_gaps, self.fixed_gaps, self.scales = [], [], [], []
        for metric in axes.in_axis:
            attack = axes.attack(metric)
            scale = float(attack.gap.at[axes.original, "gap"])
            if attack.seed_values is not None and set(entries) <= set(attack.seed_values):
                values = attack.seed_values.reindex(index=sorted(board.seeds))[entries]
                self.seed_gaps.append((values.to_numpy(float), scale))
            elif attack.draws is not None and set(entries) <= set(attack.draws):
                self.draw_gaps.append((attack.draws[entries].to_numpy(float), scale))
            else:  # no draws: the point value in every resample (it adds no uncertainty it could not measure)
                self.fixed_gaps.append((attack.gap.loc[entries, "gap"].to_numpy(float), scale))
        self.n_draws = min((len(d) for d, _ in self.draw_gaps), default=None)

    def ranks(self, seeds: np.ndarray | None = None, draw: int | None = None) -> np.ndarray:
        """Ranks of the entries (1 = best) on the seeds at positions ``seeds`` (all when None) and draw
        ``draw`` of the per-method attacks (their point values when None)."""
        pick = slice(None) if seeds is None else seeds
        with warnings.catch_warnings():  # all-NaN columns (no value on a resample) give NaN, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            utility = np.nanmean(self.utility[pick], axis=0)
            shares = [np.nanmean(v[pick], axis=0) / s for v, s in self.seed_gaps]
        shares += [(d[draw] if draw is not None else np.nanmean(d, axis=0)) / s for d, s in self.draw_gaps]
        shares += [g / s for g, s in self.fixed_gaps]
        if shares:
            points = np.column_stack([utility, np.max(np.column_stack(shares), axis=1)])
            scale = [self.utility_scale, 1.0]
        else:
            points, scale = utility[:, None], [self.utility_scale]
        if not np.isfinite(points).all():
            return np.full(len(self.entries), math.nan)
        return rank(points, scale, self.entries)[1].astype(float)


def point_ranks(boards: list[ScenarioBoard], entries: list[str]) -> pd.DataFrame:
    """scenario x entry: each scenario's Pareto rank of ``entries`` among themselves (point values)."""
    rows = {}
    for b in boards:
        t = b.axes.table.loc[entries]
        cols = ["utility", "privacy"] if b.axes.in_axis else ["utility"]
        scale = [usable_scale(b.axes.table.at[b.axes.original, "utility"]) if b.axes.original in b.axes.table.index
                 else 1.0, 1.0][:len(cols)]
        rows[b.scenario] = pd.Series(rank(t[cols].to_numpy(float), scale, entries)[1], index=entries, dtype=float)
    return pd.DataFrame(rows).T.rename_axis("scenario")


def p_best(samplers: list[ScenarioSampler], seeds_per: list[int], n_boot: int, seed: int = 0) -> np.ndarray:
    """Share of bootstrap draws in which each entry has the best mean rank over scenarios (ties split)."""
    rng = np.random.default_rng(seed)
    k = len(samplers[0].entries)
    wins, used = np.zeros(k), 0
    for b in range(n_boot):
        total = np.zeros(k)
        for sampler, n in zip(samplers, seeds_per):
            total += sampler.ranks(rng.integers(0, n, size=n), b if sampler.n_draws else None)
        if not np.isfinite(total).all():
            continue  # a resample without a value for some entry (e.g. a NaN bootstrap draw): no ranking
        best = np.isclose(total, total.min(), rtol=0, atol=1e-12)
        wins[best] += 1.0 / best.sum()
        used += 1
    return wins / used if used else np.full(k, math.nan)


def rank_overall_pareto(boards: list[ScenarioBoard], oks: dict[str, pd.DataFrame], alpha: float = ALPHA,
                        n_boot: int = N_BOOT) -> Overall:
    """The cross-scenario ranking of the default rule, with Friedman / Nemenyi over scenarios and P(best)."""
    entries, excluded = candidates(boards)
    names = [b.scenario for b in boards]
    if not entries:
        return Overall("scenario", [], pd.DataFrame(columns=["entry", *names, "mean_rank", "p_best"]), names,
                       excluded, note="no entry is ranked with every seed in every scenario", rule=RULE)
    matrix = point_ranks(boards, entries)
    samplers = [ScenarioSampler(b, b.axes, oks[b.scenario], entries) for b in boards]
    draws = [s.n_draws for s in samplers if s.n_draws]
    n = min([n_boot, *draws])
    probs = p_best(samplers, [s.utility.shape[0] for s in samplers], n)
    table = matrix.T.copy()
    table.columns.name = None
    table["mean_rank"] = matrix.mean(axis=0)
    table["p_best"] = probs
    table = table.rename_axis("entry").reset_index()
    table = table.sort_values(["mean_rank", "p_best", "entry"], ascending=[True, False, True]).reset_index(drop=True)
    result = friedman(matrix, True, alpha) if len(entries) >= 1 else None
    note = "" if result is not None and math.isfinite(result.p) else \
        "the Friedman test needs at least 2 blocks (scenarios) and 3 entries"
    return Overall("scenario", list(table["entry"]), table, names, excluded, result, UNIT, n, note, RULE)
