"""Integrity marks: is a stored row comparable with the suite as defined now?

A row is *verified* when its hash matches its values (not ``tampered``), it was produced by the current
definition of its suite (same version and, when the row stores its suite file, the same file text), and its
split hash, original key and oracle keys equal the ones recomputed here from that definition (splits are pure
functions of suite, scenario and seed; model keys are hashes of what determines the weights). Recomputing is
cheap: it loads the suite's data and hashes index sets, no training.

A difficulty scenario's split (``memorised-P-T``, ``entangled-P-T``) also needs its per-example scores, which come
from the shadow originals: they are read from the artifact cache (``UNLEARN_BENCH_CACHE``, else the default) when
it holds them, never trained here. Without them the split hash and oracle keys cannot be recomputed: the rows of
one (scenario, seed) must then agree with one another on both (the original key is still recomputed), and
``unlearn-bench verify`` re-runs them in full.

Which definition counts: the suite file named on the command line, else the built-in suite of that name, else
the definition stored in the rows themselves (``suite_definition``: a custom suite run from a file), so a
custom suite is verified and ranked from its rows alone.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import pandas as pd

from leaderboard.suites import SuiteRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Canonical:
    split_hash: str | None  # None: not recomputable here (a difficulty split without its cached scores)
    original_key: str
    oracle_keys: tuple[str, ...] | None


def canonical_suite(name: str, rows: pd.DataFrame, suite_file: str | None):
    """(Suite, where it came from) for a suite's rows, or the reason none can be had."""
    from harness.protocol.suite import load_suite, parse_definition, suite_files

    try:
        if suite_file:
            suite = load_suite(suite_file)
            if suite.name != name:
                return f"the suite file {suite_file} defines suite {suite.name!r}, not {name!r}"
            return suite, suite_file
        if name in suite_files():
            return load_suite(name), f"built-in suite {name}"
        stored = rows["suite_definition"].dropna() if "suite_definition" in rows else pd.Series(dtype=str)
        if stored.empty:
            return "unknown suite: no built-in suite of that name and no definition stored in its rows"
        newest = rows.loc[stored.index].sort_values("created_at")["suite_definition"].iloc[-1] \
            if "created_at" in rows else stored.iloc[-1]
        return parse_definition(str(newest), f"{name} (definition stored in its rows)"), "the definition stored in the rows"
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot verify", reported per row
        return f"cannot read the suite definition ({type(exc).__name__}: {exc})"


def canonical_keys(suite, pairs: set[tuple], data_root: str | None = None) -> dict[tuple, Canonical] | str:
    """Canonical keys per (scenario, seed) or (scenario, seed, step) (a sequential scenario's rows: step >= 1);
    or, when they cannot be computed, the reason."""
    from harness.training.reference_models import model_key, oracle_key

    try:
        data = suite.load_data(data_root)
    except Exception as exc:  # noqa: BLE001
        return f"cannot recompute the suite's splits ({type(exc).__name__}: {exc})"
    from harness.protocol.splits import DIFFICULTY_KINDS, parse_scenario
    from harness.training.difficulty import cached_scores

    out: dict[tuple, Canonical] = {}
    oracles = int(getattr(suite, "oracles", 1))
    scores: dict[str, object] = {}
    for scenario, seed, *step in sorted(pairs):
        try:
            kind = parse_scenario(scenario, data.num_classes).kind
            if kind in DIFFICULTY_KINDS and kind not in scores:
                scores[kind] = cached_scores(suite, data, kind)
            original = model_key(suite, data, "original", suite.original_positions(data, int(seed)), int(seed))
            if kind in DIFFICULTY_KINDS and scores[kind] is None:
                out[(scenario, int(seed), *step)] = Canonical(None, original, None)
                continue
            split = suite.split(data, scenario, int(seed), scores.get(kind), step=int(step[0]) if step else None)
        except ValueError as exc:
            log.warning("integrity: %s seed %s: %s", scenario, seed, exc)
            continue
        keys = tuple(oracle_key(suite, data, split, k) for k in range(oracles))
        out[(scenario, int(seed), *step)] = Canonical(split.hash, original, keys)
    return out


def _pair(row: dict) -> tuple:
    """What a row's canonical keys are computed for: (scenario, seed), and the step of a sequential row."""
    step = row.get("step")
    has_step = step is not None and not math.isnan(float(step))  # NaN / None: no step
    return (str(row["scenario"]), int(row["seed"]), *((int(step),) if has_step else ()))


def _row_reasons(row: dict, suite, source: str, keys: dict[tuple[str, int], Canonical]) -> list[str]:
    from harness.protocol.suite import split_definition

    reasons = []
    if str(row.get("suite_version")) != str(suite.version):
        reasons.append(f"suite version {row.get('suite_version')} (current {suite.version})")
    stored = row.get("suite_definition")
    # The suite file itself must match; its hparams part may differ (each entry's config hash covers it).
    if (isinstance(stored, str) and stored and suite.definition
            and split_definition(stored)[0] != split_definition(suite.definition)[0]):
        reasons.append(f"suite file differs from {source}")
    if row.get("status") != "ok":
        return reasons  # no split/model keys to check on failed runs; they are counted, never averaged
    canon = keys.get(_pair(row))
    if canon is None:
        return reasons + ["scenario not valid for this suite"]
    if canon.split_hash is None:  # a difficulty split without its scores: the rows must agree (mark_integrity)
        if row.get("original_key") != canon.original_key:
            reasons.append("original_key differs from the suite's")
        return reasons
    if row.get("split_hash") != canon.split_hash:
        reasons.append("split_hash differs from the suite's")
    if row.get("original_key") != canon.original_key:
        reasons.append("original_key differs from the suite's")
    stored_oracles = row.get("oracle_keys")
    oracle_keys = tuple(json.loads(stored_oracles)) if isinstance(stored_oracles, str) and stored_oracles else None
    if row.get("oracle_key") != canon.oracle_keys[0] or (oracle_keys is not None and oracle_keys != canon.oracle_keys):
        reasons.append("oracle keys differ from the suite's")
    return reasons


def _check_agreement(positions: list[int], records: list[dict], keys: dict[tuple, Canonical],
                     reasons: list[list[str]]) -> None:
    """Where a split cannot be recomputed (``Canonical.split_hash`` None), the ok rows of one (scenario, seed)
    must share one split hash and one set of oracle keys."""
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for pos, row in zip(positions, records):
        if row.get("status") == "ok" and (canon := keys.get(_pair(row))) is not None and canon.split_hash is None:
            groups.setdefault(_pair(row), []).append((pos, row))
    for members in groups.values():
        seen = {tuple(str(r.get(c)) for c in ("split_hash", "oracle_key", "oracle_keys")) for _, r in members}
        if len(seen) > 1:
            for pos, _ in members:
                reasons[pos].append("split_hash or oracle keys differ between the rows of this scenario and seed "
                                    "(the difficulty scores are not in the cache, so the split is not recomputed)")


def mark_integrity(frame: pd.DataFrame, data_root: str | None = None, suite_file: str | SuiteRef | None = None
                   ) -> pd.DataFrame:
    """Add ``verified`` (bool) and ``integrity`` (why not verified; '' when verified) to a results frame."""
    frame = frame.reset_index(drop=True)
    path = suite_file.path if isinstance(suite_file, SuiteRef) else suite_file
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    if "tampered" in frame:
        for i, bad in enumerate(frame["tampered"].fillna(False)):
            if bad:
                reasons[i].append("row hash mismatch (edited)")
    for suite_name, rows in frame.groupby("suite", sort=False):
        positions = rows.index.tolist()
        found = canonical_suite(str(suite_name), rows, path)
        if isinstance(found, str):
            for pos in positions:
                reasons[pos].append(found)
            continue
        suite, source = found
        ok = rows["status"] == "ok"
        pairs = {_pair(row) for row in rows.loc[ok].to_dict("records")}
        keys = canonical_keys(suite, pairs, data_root)
        if isinstance(keys, str):
            for pos in positions:
                reasons[pos].append(keys)
            continue
        records = rows.to_dict("records")
        for pos, row in zip(positions, records):
            reasons[pos].extend(_row_reasons(row, suite, source, keys))
        _check_agreement(positions, records, keys, reasons)
    frame["integrity"] = ["; ".join(r) for r in reasons]
    frame["verified"] = [not r for r in reasons]
    return frame
