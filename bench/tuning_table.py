"""docs/tuning.md's result table, printed as Markdown from a suite's hparams file and its trial logs.

One line per tuned (method, kind): the chosen values, the best validation objective, the objective of trial 0
(the setting in force before the search), the knobs at a search bound and the trials run.

    python bench/tuning_table.py [--suite fmnist-quick]
"""

from __future__ import annotations

import argparse
import tomllib

import pandas as pd
from _common import ROOT

SUITES = ROOT / "harness" / "suites"


def _value(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def rows(suite: str) -> list[str]:
    doc = tomllib.loads((SUITES / f"{suite}.hparams.toml").read_text())
    lines = []
    for method, section in doc.items():
        for kind in ("random", "class"):
            table = section.get(kind) if isinstance(section, dict) else None
            if not isinstance(table, dict) or "tuning" not in table:
                continue
            record = table["tuning"]
            chosen = ", ".join(f"{k} = {_value(v)}" for k, v in table.items() if k != "tuning")
            log = pd.read_csv(SUITES / record["log"])
            before = log.loc[log["trial"] == 0, "avg_gap"]
            lines.append(f"| {method} | {kind} | {chosen} | {record['objective']:.2f} | "
                         f"{before.iloc[0]:.2f} | {', '.join(record['at_bound']) or '–'} | "
                         f"{record['trials']}/{record['budget']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    args = parser.parse_args()
    print("| method | kind | chosen | validation avg_gap | trial 0 (previous setting) | at a bound | trials |")
    print("|---|---|---|---:|---:|---|---:|")
    print("\n".join(rows(args.suite)))


if __name__ == "__main__":
    main()
