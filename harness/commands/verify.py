"""``unlearn-bench verify``: re-run stored result rows from their provenance and check that they reproduce.

A row stores what determines it: the suite definition (its text, hash and version), scenario and seed (so its
split, checked by hash), the cache keys of the original and the oracles it was scored against, the method and
its hyper-parameters. Verify re-derives the suite from the row (:func:`harness.protocol.suite.parse_definition` on the
stored text; the built-in suite of the row's name when the row stores none), re-runs the row into a scratch
results folder through the same code path as ``unlearn-bench run`` (``--set`` of every stored hyper-parameter),
and compares the re-run row with the stored one:

* **identity fields, exactly** (:data:`EXACT_COLUMNS`): run id, suite hash and version, split hash, original and
  oracle keys, config hash and hyper-parameters, status, the no-op verdict;
* **every other numeric column within an absolute tolerance per unit** (:data:`TOLERANCES`): metrics, their
  gaps, headlines, ToW, per-method metrics, the no-op and copy-check evidence;
* **not compared** (:data:`ENVIRONMENT_COLUMNS`): when, where and how fast the run happened.

Tolerances, measured on this project's CPU machine (docs/submission.md, "Tolerances"): re-runs of 8 fmnist-quick
rows with the recorded torch thread count reproduced all 367 values bit for bit; with another thread count (a
different reduction order, as on another machine) 51 differed, by at most 0.05 points (%), 1.2e-6 (fractions)
and 0.17 nats (KLoM, whose quantiles move in steps). The tolerances sit above those and below what an edit that
changes a ranking moves. By default the re-run uses the thread count the row records (``hardware``:
``cpu:...xNthreads``).

A sequential scenario's row (``step`` s, docs/scenarios.md) is re-run with its method's whole sequence (step s
unlearns step s - 1's output), once per sequence for all the rows of it being verified; ``step`` is an identity
field.

What is recomputed: the method's run and everything derived from it (its U-LiRA shadow runs, its KLoM runs,
``task.cached`` artifacts) in a scratch cache, so the method's code really runs again. Trained reference models
(originals, oracles, shadow models) come from ``--cache-dir`` by key: their keys are among the exact fields,
and they are the verifier's own models (an empty cache trains them).

Each outcome is written atomically to ``<results>/<suite>/_verifications/<run_id>.json``
(:mod:`leaderboard.rechecks` reads them back: verified / mismatch / not re-checked).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from harness.core.files import atomic_write_bytes
from harness.core.results import record_path, row_hash
from harness.pipeline.options import Options
from harness.training.cache import default_cache_dir

# Compared exactly: they name what was run, on which data and against which models.
EXACT_COLUMNS = ("run_id", "suite", "suite_version", "suite_hash", "scenario", "seed", "method", "method_kind",
                 "config_hash", "hparams", "dataset_fingerprint", "model", "split_hash", "original_key",
                 "oracle_key", "oracle_keys", "oracles", "status", "noop", "copy_check", "step")
# Not compared: when, where and how fast the run happened, and bookkeeping derived from the rest.
ENVIRONMENT_COLUMNS = ("created_at", "git_sha", "packages", "hardware", "device", "harness_version", "sandbox",
                       "wall_time_s", "time_ratio", "oracle_train_s", "row_hash", "schema_version", "error",
                       "metric_meta", "suite_definition", "tampered", "tuning_budget", "tuning_trials", "tuned_on",
                       "tuning_at_bound", "cpu_time_s", "oracle_cpu_s", "time_budget", "over_budget", "limits",
                       "grade", "evaluator_seconds",
                       # the consistency check's time statistic (and so its flag) depends on how fast the runs went
                       "consistency_time_ratio", "consistency_time_p", "consistency_flag", "inconsistent",
                       "consistency_evidence")
# metric_meta is compared on what ranks a metric (descriptions may change between harness versions).
META_FIELDS = ("direction", "unit", "per_method", "terms", "from")
# Absolute tolerance per metric unit (metric_meta "unit"); columns without a unit count as "fraction".
TOLERANCES = {"%": 0.5, "nats": 0.05, "fraction": 0.005, "count": 0.0, "class": 0.0}
# Metrics whose values move in steps: KLoM's percentiles are quantiles of per-example KLs of bin counts (N = 5
# models), so a margin crossing a bin edge moves an example's value by a step, up to 0.5 nats between the two top
# levels (6.41 and 6.91); measured 0.17 nats with another thread count.
STEP_TOLERANCES = {"klom_": 0.5}
MODEL_KINDS = ("original", "oracle", "shadow-original", "shadow-retrained")  # trained references, reused by key
MATCH, MISMATCH, ERROR = "match", "mismatch", "error"


class VerifyError(ValueError):
    """Bad input to verify (no rows, unknown run ids, a row that cannot be re-derived)."""


@dataclass(frozen=True, kw_only=True)
class Settings(Options):
    """How rows are re-run: methods isolated, and ``threads`` None: the thread count each row records."""

    threads: int | None = None
    isolate: bool = True


@dataclass
class Outcome:
    """The verdict on one stored row."""

    row: dict[str, Any]
    outcome: str  # match | mismatch | error
    differences: list[dict[str, Any]] = field(default_factory=list)
    compared: int = 0
    reason: str = ""
    threads: int | None = None

    def record(self) -> dict[str, Any]:
        from harness.core.version import HARNESS_VERSION
        from harness.pipeline.provenance import git_sha

        row = self.row
        return {"run_id": row.get("run_id"), "suite": row.get("suite"), "method": row.get("method"),
                "scenario": row.get("scenario"), "seed": _plain(row.get("seed")), "step": _plain(row.get("step")),
                "config_hash": row.get("config_hash"), "row_hash": row.get("row_hash"),
                "row_hash_ok": not bool(row.get("tampered", False)), "outcome": self.outcome,
                "differences": self.differences, "compared": self.compared, "reason": self.reason,
                "tolerances": {**TOLERANCES, **STEP_TOLERANCES}, "threads": self.threads,
                "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "harness_version": HARNESS_VERSION, "git_sha": git_sha()}

    def line(self) -> str:
        row = self.row
        step = "" if _missing(row.get("step")) else f" step {int(row['step'])}"
        head = (f"{row.get('run_id')} {row.get('method')} {row.get('scenario')} seed {row.get('seed')}{step}: "
                f"{self.outcome}")
        if self.outcome == ERROR:
            return f"{head} ({self.reason})"
        if self.outcome == MATCH:
            return f"{head} ({self.compared} fields)"
        shown = "; ".join(_describe(d) for d in self.differences[:6])
        more = f"; {len(self.differences) - 6} more" if len(self.differences) > 6 else ""
        return f"{head} ({len(self.differences)} of {self.compared} fields differ: {shown}{more})"


# ------------------------------------------------------------------------------------------ the rows
def _file_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one Parquet file with exactly their own columns, and whether each row's hash holds."""
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["tampered"] = row.get("row_hash") != row_hash(row)
    return rows


def load_rows(source: Path) -> tuple[list[dict[str, Any]], Path | None]:
    """Rows of a Parquet file, one suite's results folder or a results root; and the results root (None: file)."""
    source = Path(source)
    if source.is_file():
        return _file_rows(source), None
    if not source.is_dir():
        raise VerifyError(f"{source}: no such file or folder")
    if any(source.glob("*.parquet")):  # one suite's folder
        files, root = sorted(source.glob("*.parquet")), source.parent
    else:
        files, root = sorted(source.glob("*/*.parquet")), source
    return [row for path in files for row in _file_rows(path)], root


def select_rows(rows: list[dict[str, Any]], sample: int, run_ids: list[str], seed: int = 0) -> list[dict[str, Any]]:
    """The rows named by ``run_ids``, else ``sample`` ok rows drawn with ``seed`` (0: every ok row)."""
    if not rows:
        raise VerifyError("no result rows found")
    by_id = {str(r.get("run_id")): r for r in rows}
    if run_ids:
        missing = [r for r in run_ids if r not in by_id]
        if missing:
            raise VerifyError(f"no row with run_id {', '.join(missing)}")
        return [by_id[r] for r in dict.fromkeys(run_ids)]
    if sample < 0:
        raise VerifyError(f"--sample must be >= 0, got {sample}")
    ok = [by_id[k] for k in sorted(by_id) if by_id[k].get("status") == "ok"]
    if not ok:
        raise VerifyError("no row with status ok to re-run")
    if sample == 0 or sample >= len(ok):
        return ok
    return [ok[i] for i in np.sort(np.random.default_rng(seed).choice(len(ok), size=sample, replace=False))]


def suite_of(row: dict[str, Any]):
    """The suite a row was produced by: its stored definition, else the built-in suite of its name."""
    from harness.protocol.suite import SuiteError, load_suite, parse_definition

    definition = row.get("suite_definition")
    try:
        if isinstance(definition, str) and definition:
            suite = parse_definition(definition, f"{row.get('suite')} (definition stored in the row)")
        else:
            suite = load_suite(str(row.get("suite")))
    except SuiteError as exc:
        raise VerifyError(f"cannot re-derive the suite: {exc}") from exc
    if suite.name != row.get("suite"):
        raise VerifyError(f"the stored definition names suite {suite.name!r}, the row {row.get('suite')!r}")
    return suite


def recorded_threads(row: dict[str, Any]) -> int:
    """The torch thread count a CPU row was produced with (``hardware`` = 'cpu:<arch>x<N>threads'), else 1."""
    match = re.search(r"x(\d+)threads$", str(row.get("hardware", "")))
    return int(match.group(1)) if match else 1


# ------------------------------------------------------------------------------------------ re-running
def _scratch_cache(scratch: Path, models_from: Path) -> Path:
    """A cache whose trained reference models are ``models_from``'s (linked, by key) and nothing else."""
    cache = scratch / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for kind in MODEL_KINDS:
        (models_from / kind).mkdir(parents=True, exist_ok=True)
        link = cache / kind
        if not link.exists():
            link.symlink_to((models_from / kind).resolve(), target_is_directory=True)
    return cache


def rerun(row: dict[str, Any], suite, settings: Settings, scratch: Path, threads: int,
          memo: dict | None = None) -> dict[str, Any]:
    """Re-run one row into ``scratch`` and return the new row as stored (read back from its Parquet file).

    ``memo`` keeps each re-run's rows: the other steps of a sequential row's sequence come out of the same re-run
    (re-running step s runs steps 1..s), so they are not re-run again."""
    hparams = json.loads(row["hparams"]) if isinstance(row.get("hparams"), str) and row["hparams"] else {}
    results = scratch / "results"
    sequence = (suite.definition_hash, str(row["method"]), str(row.get("hparams")), str(row["scenario"]),
                int(row["seed"]), threads)
    if memo is not None and not _missing(row.get("step")) and sequence in memo:
        rows = memo[sequence]
    else:
        rows = _rerun_rows(row, suite, settings, scratch, threads, hparams)
        if memo is not None and not _missing(row.get("step")):
            memo[sequence] = rows
    # a sequential row's re-run is its method's whole sequence (step s needs steps 1..s-1): the row of its step
    step = None if _missing(row.get("step")) else int(row["step"])
    fresh = [r for r in rows if r["method"] == row["method"] and r["scenario"] == row["scenario"]
             and int(r["seed"]) == int(row["seed"]) and (None if _missing(r.get("step")) else int(r["step"])) == step]
    if len(fresh) != 1:
        raise VerifyError(f"the re-run produced {len(fresh)} rows for this method, scenario, seed and step")
    return pq.read_table(results / suite.name / f"{fresh[0]['run_id']}.parquet").to_pylist()[0]


def _rerun_rows(row: dict[str, Any], suite, settings: Settings, scratch: Path, threads: int,
                hparams: dict[str, Any]) -> list[dict[str, Any]]:
    from harness.pipeline.driver import RunOptions, run_suite

    results = scratch / "results"
    shared = {**settings.shared(), "threads": threads,
              "cache_dir": _scratch_cache(scratch, Path(settings.cache_dir or default_cache_dir()))}
    options = RunOptions(**shared, methods=[str(row["method"])], seeds=[int(row["seed"])],
                         scenarios=[str(row["scenario"])], results_root=results, force=True,
                         overrides={str(row["method"]): hparams} if hparams else {}, progress=False)
    return run_suite(suite, options).rows


# ------------------------------------------------------------------------------------------ comparing
def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def units_of(row: dict[str, Any]) -> dict[str, str]:
    """Metric -> unit from the row's ``metric_meta`` (headlines and ToW included)."""
    try:
        meta = json.loads(row.get("metric_meta") or "{}")
    except (TypeError, ValueError):
        return {}
    return {name: str(info.get("unit", "")) for name, info in meta.items() if isinstance(info, dict)}


def tolerance_for(column: str, units: dict[str, str]) -> float:
    name = column.removeprefix("gap_")
    for prefix, tolerance in STEP_TOLERANCES.items():
        if name.startswith(prefix) and units.get(name) != "count":
            return tolerance
    return TOLERANCES.get(units.get(name, ""), TOLERANCES["fraction"])


def compare(stored: dict[str, Any], fresh: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The fields where the re-run differs from the stored row (beyond tolerance), and how many were compared."""
    units = units_of(stored)
    differences: list[dict[str, Any]] = []
    compared = 0
    skip = set(ENVIRONMENT_COLUMNS)
    # A column the stored row does not have (a metric added to the harness since) is no claim to check; a
    # stored column the re-run lacks is one that cannot be reproduced.
    for column in sorted(set(stored) - skip):
        a, b = stored.get(column), fresh.get(column)
        if _missing(a) and _missing(b):
            continue
        compared += 1
        if column not in EXACT_COLUMNS and _number(a) and _number(b):
            tolerance = tolerance_for(column, units)
            if not abs(float(a) - float(b)) <= tolerance:
                differences.append({"column": column, "stored": _plain(a), "rerun": _plain(b),
                                    "difference": abs(float(a) - float(b)), "tolerance": tolerance})
            continue
        if _plain(a) != _plain(b):
            differences.append({"column": column, "stored": _plain(a), "rerun": _plain(b), "tolerance": "exact"})
    meta_differences, meta_compared = _compare_meta(stored.get("metric_meta"), fresh.get("metric_meta"))
    return differences + meta_differences, compared + meta_compared


def _compare_meta(stored: Any, fresh: Any) -> tuple[list[dict[str, Any]], int]:
    """The stored metric_meta's ranking fields (:data:`META_FIELDS`) against the re-run's, exactly."""
    try:
        old, new = json.loads(stored or "{}"), json.loads(fresh or "{}")
    except (TypeError, ValueError):
        return [{"column": "metric_meta", "stored": _short(stored), "rerun": "(unreadable)", "tolerance": "exact"}], 1
    differences, compared = [], 0
    for name, info in sorted(old.items()):
        for key in META_FIELDS:
            if not isinstance(info, dict) or key not in info:
                continue
            compared += 1
            value = new.get(name, {}).get(key) if isinstance(new.get(name), dict) else None
            if info[key] != value:
                differences.append({"column": f"metric_meta.{name}.{key}", "stored": info[key], "rerun": value,
                                    "tolerance": "exact"})
    return differences, compared


def _describe(diff: dict[str, Any]) -> str:
    if diff.get("tolerance") == "exact":
        return f"{diff['column']} {_short(diff['stored'])} != {_short(diff['rerun'])}"
    return f"{diff['column']} {diff['stored']:.6g} vs {diff['rerun']:.6g} (tolerance {diff['tolerance']:g})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------------------ the command
def verify_row(row: dict[str, Any], settings: Settings, scratch: Path, memo: dict | None = None) -> Outcome:
    """Re-run and compare one row; faults of the re-run become an ``error`` outcome, never an exception."""
    if row.get("status") != "ok":
        return Outcome(row, ERROR, reason=f"status {row.get('status')!r}: only rows with status ok can be re-run")
    threads = settings.threads or recorded_threads(row)
    try:
        suite = suite_of(row)
        fresh = rerun(row, suite, settings, scratch, threads, memo)
    except Exception as exc:  # noqa: BLE001 - reported per row (a missing plugin, a changed method signature)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return Outcome(row, ERROR, reason=f"{type(exc).__name__}: {message}", threads=threads)
    differences, compared = compare(row, fresh)
    return Outcome(row, MISMATCH if differences else MATCH, differences, compared, threads=threads)


def write_record(results_root: Path, outcome: Outcome) -> Path:
    """``<results>/<suite>/_verifications/<run_id>.json``, written atomically."""
    path = record_path(results_root, str(outcome.row.get("suite")), str(outcome.row.get("run_id")))
    atomic_write_bytes(path, json.dumps(outcome.record(), indent=1, sort_keys=True, default=str).encode())
    return path


def verify(source: Path, settings: Settings, sample: int = 5, run_ids: list[str] = (), seed: int = 0,
           results_root: Path | None = None, scratch: Path | None = None) -> tuple[list[Outcome], Path]:
    """Verify a sample of the rows under ``source``; records go under ``results_root`` (default: the source's
    results folder, or ./results for a file). Returns the outcomes and where the records are."""
    found, source_root = load_rows(source)
    rows = select_rows(found, sample, list(run_ids), seed)
    root = Path(results_root or source_root or "results")
    work = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="unlearn-bench-verify-"))
    try:
        outcomes, memo = [], {}
        for row in rows:
            outcome = verify_row(row, settings, work, memo)
            write_record(root, outcome)
            outcomes.append(outcome)
    finally:
        if scratch is None:
            shutil.rmtree(work, ignore_errors=True)
    return outcomes, root
