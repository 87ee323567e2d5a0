"""The measured tables of docs/evaluators.md, printed as Markdown from a results folder (nothing is typed by hand).

Per scenario, one line per method: means over the seeds of the per-seed metrics, and the per-method metrics with
their intervals (U-LiRA over shadow pairs, KLoM over examples), the cost, and the consistency check's share of
flagged runs.

    python bench/measured_tables.py [--results results] [--suite fmnist-quick] [--klom]
"""

from __future__ import annotations

import argparse
import math

import pandas as pd
from _common import ROOT

from harness.core.results import read_results

PER_SEED = {"random": ["avg_gap", "utility_gap", "forget_acc", "salun_mia", "rmia_ft_auc", "tow"],
            "class": ["avg_gap", "utility_gap", "forget_acc", "mia_nn", "rmia_ft_auc", "kodge_mia", "tow"]}
PER_METHOD = {"random": ["ulira_acc", "klom_forget_p50", "margin_w1_forget_p50"],
              "class": ["ulira_acc", "klom_forget_p50", "margin_w1_forget_p50", "uvr_auc"]}
INTERVALS = {"ulira_acc": "ulira_acc_boot", "klom_forget_p50": "klom_forget_p50_boot",
             "margin_w1_forget_p50": "margin_w1_forget_p50_boot"}


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "–"


def scenario_table(rows: pd.DataFrame, kind: str) -> str:
    ok = rows[rows["status"] == "ok"]
    columns = [c for c in PER_SEED[kind] + PER_METHOD[kind] if c in ok]
    header = ["method", *columns, "time_ratio", "inconsistent runs", "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    means = ok.groupby("method")[[c for c in columns + ["time_ratio"]]].mean(numeric_only=True)
    order = means.sort_values("utility_gap").index if "utility_gap" in means else means.index
    refs = [m for m in ("retrain", "original") if m in order]
    for method in [*refs, *[m for m in order if m not in refs]]:
        mine = ok[ok["method"] == method]
        cells = [method]
        for col in columns:
            value = float(means.at[method, col])
            if col in INTERVALS and f"{INTERVALS[col]}_lo" in mine:
                lo, hi = mine[f"{INTERVALS[col]}_lo"].mean(), mine[f"{INTERVALS[col]}_hi"].mean()
                cells.append(f"{_fmt(value)} [{_fmt(lo)}, {_fmt(hi)}]")
            else:
                cells.append(_fmt(value, 3 if col == "tow" else 1 if col != "avg_gap" and col != "utility_gap" else 2))
        flagged = mine["inconsistent"].fillna(False).astype(bool).sum() if "inconsistent" in mine else 0
        cells += [_fmt(float(means.at[method, "time_ratio"])), f"{flagged}/{len(mine)}", str(mine["seed"].nunique())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


KLOM_COLUMNS = ["klom_forget_p50", "klom_forget_p95", "klom_retain_p50", "klom_retain_p95", "klom_test_p50",
                "klom_test_p95", "margin_w1_forget_p50", "klom_forget_n_unlearned", "klom_forget_n_references"]


def klom_table(rows: pd.DataFrame) -> str:
    """KLoM per set (one value per method: every seed's row carries the same per-method result), by forget median."""
    ok = rows[rows["status"] == "ok"]
    columns = [c for c in KLOM_COLUMNS if c in ok]
    per_method = ok.groupby("method")[columns].first().sort_values("klom_forget_p50")
    header = ["method", *[c.removeprefix("klom_") for c in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in per_method.iterrows():
        lines.append("| " + " | ".join([f"`{method}`", *[_fmt(float(values[c]), 1 if c.endswith(("unlearned",
                                                                                                   "references"))
                                                           else 2) for c in columns]]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--klom", action="store_true", help="also KLoM's per-set table")
    args = parser.parse_args()
    frame = read_results(args.results, args.suite)
    for scenario, rows in frame.groupby("scenario", sort=False):
        kind = str(scenario).split("-", 1)[0]
        print(f"\n**{scenario}** (means over seeds; per-method metrics with their 95% intervals)\n")
        print(scenario_table(rows, kind))
        if args.klom and "klom_forget_p50" in rows:
            print(f"\n**{scenario}**, KLoM per set (nats; W1 in retrain-noise units; sorted by forget median)\n")
            print(klom_table(rows))


if __name__ == "__main__":
    main()
