"""Rankings across a suite's scenarios: Friedman over (scenario x seed) blocks, Nemenyi, P(best).

Only entries ranked in every scenario with every seed take part: a Friedman block needs a value of every
entry, and an average rank over a different set of scenarios (or of competitors) is not comparable. The
others are listed apart with the reason. For a per-method ranking metric (one value per scenario, no seed
information) the blocks are the scenarios and P(best) resamples shadow models instead of seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from leaderboard.aggregate import ScenarioBoard, SortKey
from leaderboard.marks import unranked_mark
from leaderboard.ranking import N_BOOT, Friedman, block_ranks, friedman, p_best, p_best_from_draws
from leaderboard.stats import ALPHA


@dataclass
class Overall:
    blocks: str  # what a block is: "scenario × seed" or "scenario"
    entries: list[str]  # taking part, best mean rank first
    table: pd.DataFrame  # entry, one mean-rank column per scenario, mean_rank, p_best
    scenarios: list[str]
    excluded: dict[str, str] = field(default_factory=dict)  # entry -> why it is not in the ranking
    friedman: Friedman | None = None
    p_best_unit: str = ""  # what P(best) resamples
    n_boot: int = N_BOOT
    note: str = ""  # why there is no test, when there is none
    rule: str = ""  # how the entries are ordered (the default: leaderboard.overall_pareto)

    @property
    def empty(self) -> bool:
        return self.table.empty


def candidates(boards: list[ScenarioBoard]) -> tuple[list[str], dict[str, str]]:
    """Entries ranked with every seed in every scenario; the reasons for the others."""
    seen: dict[str, dict[str, str]] = {}
    for b in boards:
        for r in b.table.to_dict("records"):
            if r["method_kind"] == "reference" or not r["verified"]:
                continue
            status = ("ok" if r["n"] == r["n_expected"] else f"{r['n']}/{r['n_expected']} seeds") \
                if not math.isnan(r["rank"]) else (unranked_mark(r) or "no result")
            seen.setdefault(str(r["entry"]), {})[b.scenario] = status
    names = [b.scenario for b in boards]
    keep, excluded = [], {}
    for entry, where in seen.items():
        problems = [f"{s}: {where[s]}" if s in where else f"{s}: not run" for s in names if where.get(s) != "ok"]
        if problems:
            excluded[entry] = "; ".join(problems)
        else:
            keep.append(entry)
    return keep, excluded


def rank_overall(boards: list[ScenarioBoard], sort: SortKey, alpha: float = ALPHA, n_boot: int = N_BOOT,
                 per_method: bool = False) -> Overall:
    """Friedman / Nemenyi / P(best) over the entries complete in every scenario. ``per_method``: the ranking
    metric is one value per configuration and scenario (copied to every seed), so a scenario is one block."""
    entries, excluded = candidates(boards)
    names = [b.scenario for b in boards]
    blocks = "scenario" if per_method else "scenario × seed"
    if not entries:
        return Overall(blocks, [], pd.DataFrame(columns=["entry", *names, "mean_rank", "p_best"]), names, excluded,
                       note="no entry is ranked with every seed in every scenario")
    if per_method:
        matrix = pd.DataFrame([b.table.set_index("entry").loc[entries, f"{sort.column}_mean"].astype(float)
                               for b in boards], index=pd.Index(names, name="scenario"))
        draws = [b.draws[entries] for b in boards if b.draws is not None and set(entries) <= set(b.draws)]
        probs = p_best_from_draws(draws, sort.lower_is_better) if len(draws) == len(boards) else \
            pd.Series(math.nan, index=entries)
        unit = "shadow models (paired within each scenario)" if len(draws) == len(boards) else ""
        n_boot = min(len(d) for d in draws) if len(draws) == len(boards) else 0
    else:
        frames = []
        for b in boards:
            block = b.per_seed.loc[b.per_seed.index.isin(b.seeds), entries].copy()
            block.index = pd.MultiIndex.from_product([[b.scenario], block.index], names=["scenario", "seed"])
            frames.append(block)
        matrix = pd.concat(frames).dropna()
        long = matrix.stack().rename("value").reset_index().rename(columns={"level_2": "entry"})
        long.columns = ["scenario", "seed", "entry", "value"]
        probs = p_best(long, sort.lower_is_better, n_boot)
        unit = "seeds within each scenario"
    result = friedman(matrix, sort.lower_is_better, alpha) if len(entries) >= 1 and len(matrix) else None
    ranks = block_ranks(matrix, sort.lower_is_better)
    level = ranks.index.get_level_values(0) if isinstance(ranks.index, pd.MultiIndex) else ranks.index
    per_scenario = ranks.groupby(level).mean().T
    table = per_scenario.reindex(columns=names)
    table["mean_rank"] = ranks.mean(axis=0)
    table["p_best"] = probs.reindex(table.index)
    table = table.sort_values(["mean_rank", "p_best"], ascending=[True, False]).rename_axis("entry").reset_index()
    note = ""
    if result is not None and not math.isfinite(result.p):
        note = "the Friedman test needs at least 2 blocks and 3 entries"
    return Overall(blocks, list(table["entry"]), table, names, excluded, result, unit, n_boot, note)
