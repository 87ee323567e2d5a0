"""Integrity marks: is a stored row comparable with the suite as defined now?

A row is *verified* when its hash matches its values (not ``tampered``), it was produced by the current
suite version, and its split hash, original key and oracle key equal the ones recomputed here from the
suite definition (splits are pure functions of suite, scenario and seed; model keys are hashes of what
determines the weights). Recomputing is cheap: it loads the suite's data and hashes index sets, no training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Canonical:
    split_hash: str
    original_key: str
    oracle_key: str


def canonical_keys(suite_name: str, pairs: set[tuple[str, int]], data_root: str | None = None
                   ) -> tuple[str, dict[tuple[str, int], Canonical]] | str:
    """(suite version, canonical keys per (scenario, seed)); or, when they cannot be computed, the reason."""
    from harness.artifacts import model_key
    from harness.splits import make_split, parse_scenario
    from harness.suite import load_suite

    try:
        suite = load_suite(suite_name)
        data = suite.load_data(data_root)
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot verify", reported per row
        return f"cannot recompute the suite's splits ({type(exc).__name__}: {exc})"
    out: dict[tuple[str, int], Canonical] = {}
    for scenario, seed in sorted(pairs):
        try:
            split = make_split(suite.name, parse_scenario(scenario, data.num_classes), int(seed), data.train_y,
                               data.test_y)
        except ValueError as exc:
            log.warning("integrity: %s seed %s: %s", scenario, seed, exc)
            continue
        original = model_key(suite, data, "original", torch.arange(len(data.train_y)), int(seed))
        oracle = model_key(suite, data, "oracle", split.retain, int(seed))
        out[(scenario, int(seed))] = Canonical(split.hash, original, oracle)
    return suite.version, out


def mark_integrity(frame: pd.DataFrame, data_root: str | None = None) -> pd.DataFrame:
    """Add ``verified`` (bool) and ``integrity`` (why not verified; '' when verified) to a results frame."""
    frame = frame.reset_index(drop=True)
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    if "tampered" in frame:
        for i, bad in enumerate(frame["tampered"].fillna(False)):
            if bad:
                reasons[i].append("row hash mismatch (edited)")
    for suite_name, rows in frame.groupby("suite", sort=False):
        positions = rows.index.tolist()
        ok = rows["status"] == "ok"
        pairs = {(str(s), int(d)) for s, d in zip(rows.loc[ok, "scenario"], rows.loc[ok, "seed"])}
        found = canonical_keys(str(suite_name), pairs, data_root)
        if isinstance(found, str):
            for pos in positions:
                reasons[pos].append(found)
            continue
        version, keys = found
        for pos, row in zip(positions, rows.to_dict("records")):
            if str(row.get("suite_version")) != version:
                reasons[pos].append(f"suite version {row.get('suite_version')} (current {version})")
            if row.get("status") != "ok":
                continue  # no split/model keys to check on failed runs; they are counted, never averaged
            canon = keys.get((str(row["scenario"]), int(row["seed"])))
            if canon is None:
                reasons[pos].append("scenario not valid for this suite")
                continue
            for column in ("split_hash", "original_key", "oracle_key"):
                if row.get(column) != getattr(canon, column):
                    reasons[pos].append(f"{column} differs from the suite's")
    frame["integrity"] = ["; ".join(r) for r in reasons]
    frame["verified"] = [not r for r in reasons]
    return frame
