"""The consistency check: do a method's scored runs look like its audit runs?

Per-method privacy metrics (U-LiRA, KLoM) come from the method's *audit runs* on the shadow bank; accuracy
metrics come from its *scored runs*. A submission that could tell the two apart could unlearn well where it is
audited and leak where it is scored. With ``pool = "half"`` (harness/protocol/splits.py) both kinds of task are drawn
from the same distribution: a scored run is one more draw of what the audit runs are, so each of its statistics
must fall where the audit runs' values fall. Three statistics are compared, each on what both kinds of run have:

* **attack AUC** -- the scored run attacked with the per-method attack's fits from the audit runs: per example,
  the signal minus the mean signal of the audit runs that never saw it (LiRA's offline score, fitted without the
  pair held out), forgotten training examples (1) against never-seen test images (0; class scenarios: the
  forget class's test images). Every audit run is scored the same way with fits that leave its own pair out;
* **output shift** -- the mean absolute change of the signal from the run's own original over the train set
  (how far the method moved the model);
* **CPU time** of the run (measured by the harness, outside the method), on a log scale.

For each, the scored value is compared with the audit runs' values by a prediction-interval t statistic
(``(x - mean) / (sd sqrt(1 + 1/N))`` on N - 1 degrees of freedom: is x a plausible further draw?); the three
p-values are Holm-corrected per run for the flag (rows store the raw p-values). A run is *inconsistent* when an adjusted p is below ``alpha`` (default 0.01)
-- for time, only when the ratio also exceeds ``time_factor`` (default 3) and the difference ``time_min_seconds``
(default 1 s): a short run's time is dominated by its process's warm-up (a fresh worker's first calls, a
plugin's import-time work), which differs between a method's consecutive audit runs and its scored runs spread
over run groups, and prepare jobs and run groups can meet different machine load. The leaderboard marks an entry
inconsistent when most of its runs are. With ``pool =
"all"`` the tasks differ in size by design, so the statistics are reported and never flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import nn

from harness.core.attack_stats import holm
from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.evaluate.ulira import BankRuns, bank_signals, method_bank_runs, per_method_result, pool_signals
from harness.protocol.scoring import ORACLE_METHOD
from harness.training.shadow_bank import ShadowBank, shadow_bank

DEFAULTS = {"alpha": 0.01, "time_factor": 3.0, "time_min_seconds": 1.0}
STATISTICS = ("auc", "shift", "time")


def _held_out_means(phi: np.ndarray, out: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """[pairs, n]: per held-out pair, the mean signal of the other shadows' OUT observations (NaN: none)."""
    weights = out.astype(float)
    total, count = (phi * weights).sum(0), weights.sum(0)
    means = []
    for p in range(pairs.max() + 1):
        mine = pairs == p
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append((total - (phi[mine] * weights[mine]).sum(0)) / (count - weights[mine].sum(0)))
    return np.stack(means)


def _auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC AUC in percent from the Mann-Whitney rank sum (ties count one half)."""
    positives, negatives = positives[np.isfinite(positives)], negatives[np.isfinite(negatives)]
    n1, n0 = len(positives), len(negatives)
    if not n1 or not n0:
        return math.nan
    # here, not at the top: scipy.stats costs ~1 s to import, and most commands never get this far
    from scipy.stats import rankdata

    ranks = rankdata(np.r_[positives, negatives])
    return 100.0 * (ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


@dataclass(frozen=True)
class AttackFits:
    """The offline attack's fits from the audit runs, one per held-out pair."""

    train: np.ndarray  # [pairs, n_train]
    test: np.ndarray  # [pairs, n_test]
    negatives: np.ndarray  # test positions of the never-seen examples

    def auc(self, pair: int, phi_train: np.ndarray, phi_test: np.ndarray, forget: np.ndarray) -> float:
        return _auc(phi_train[forget] - self.train[pair, forget],
                    phi_test[self.negatives] - self.test[pair, self.negatives])


def attack_fits(bank: ShadowBank, runs: BankRuns, negatives: np.ndarray) -> AttackFits:
    pairs = np.arange(len(bank)) // 2
    return AttackFits(_held_out_means(runs.phi, ~bank.in_half, pairs),
                      _held_out_means(runs.phi_test, np.ones_like(runs.phi_test, dtype=bool), pairs), negatives)


@dataclass(frozen=True)
class AuditStatistics:
    """Each statistic over the method's audit runs (one value per run)."""

    auc: np.ndarray
    shift: np.ndarray
    time: np.ndarray  # log CPU seconds (NaN for references, which run no method)


def audit_statistics(bank: ShadowBank, runs: BankRuns, originals: np.ndarray, fits: AttackFits) -> AuditStatistics:
    auc = np.array([fits.auc(i // 2, runs.phi[i], runs.phi_test[i], bank.shadows[i].forget)
                    for i in range(len(bank))])
    shift = np.abs(runs.phi - originals).mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        time = np.log(runs.cpu_seconds)
    return AuditStatistics(auc, shift, time)


def prediction_p(value: float, sample: np.ndarray) -> float:
    """Two-sided p of ``value`` as one more draw from the population of ``sample`` (t prediction interval)."""
    sample = sample[np.isfinite(sample)]
    if not math.isfinite(value) or len(sample) < 3:
        return math.nan
    sd = float(np.std(sample, ddof=1))
    if sd == 0:
        return 1.0 if value == float(sample[0]) else 0.0
    t = (value - float(np.mean(sample))) / (sd * math.sqrt(1 + 1 / len(sample)))
    from scipy.stats import t as student_t

    return float(2 * student_t.sf(abs(t), len(sample) - 1))


def decide(p: dict[str, float], time_ratio: float, time_difference: float, options: dict) -> dict[str, float]:
    """The raw p per statistic and the flag from their Holm-adjusted values (see the module docstring).

    The raw values are stored so that the attack and shift p-values stay reproducible: Holm's adjustment mixes
    in the time p, which depends on how fast the runs went."""
    adjusted = dict(zip(STATISTICS, holm([p.get(n, math.nan) for n in STATISTICS])))  # NaN: not a comparison
    large_time = (math.isfinite(time_ratio) and max(time_ratio, 1 / time_ratio) > float(options["time_factor"])
                  and abs(time_difference) > float(options["time_min_seconds"]))
    flagged = [n for n, q in adjusted.items() if q < float(options["alpha"]) and (n != "time" or large_time)]
    return {**{f"consistency_{n}_p": float(p.get(n, math.nan)) for n in STATISTICS},
            "consistency_flag": float(bool(flagged))}


def _audit(ctx: EvalContext, bank: ShadowBank) -> tuple[AttackFits, AuditStatistics]:
    """The audit side, computed once per method configuration (in its prepare job) and cached."""
    split = ctx.split
    negatives = (split.test_forget if split.scenario.forgets_class else split.test_retain).numpy()

    def compute() -> dict:
        runs = method_bank_runs(ctx, bank)
        fits = attack_fits(bank, runs, negatives)
        audit = audit_statistics(bank, runs, bank_signals(ctx, bank, "original"), fits)
        return {"metrics": {"fits_train": fits.train, "fits_test": fits.test, "auc": audit.auc,
                            "shift": audit.shift, "time": audit.time}}

    saved = per_method_result(ctx, "consistency", bank, {"negatives": len(negatives)}, compute)
    return (AttackFits(saved["fits_train"], saved["fits_test"], negatives),
            AuditStatistics(saved["auc"], saved["shift"], saved["time"]))


def prepare_consistency(ctx: EvalContext) -> None:
    """The audit runs and their statistics (cached), so a seed's row only compares its own run with them."""
    if ctx.method is not None and ctx.method.name != ORACLE_METHOD:
        _audit(ctx, shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo))


def evidence(metrics: dict[str, float]) -> str:
    """One line for a flagged row: which statistic, the scored value against the audit runs'."""
    parts = []
    for name, scored, audit, unit in (("attack AUC", "consistency_auc", "consistency_audit_auc", ""),
                                      ("output shift", "consistency_shift", "consistency_audit_shift", ""),
                                      ("CPU time", "consistency_time_ratio", None, "x")):
        p = metrics.get(f"consistency_{STATISTICS[len(parts)]}_p", math.nan)
        if audit is None:
            parts.append(f"{name} {metrics.get(scored, math.nan):.2f}{unit} the audit runs' median (p = {p:.2g})")
        else:
            parts.append(f"{name} {metrics.get(scored, math.nan):.3g} vs audit {metrics.get(audit, math.nan):.3g} "
                         f"(p = {p:.2g})")
    return "scored runs differ from audit runs: " + "; ".join(parts)


def consistency_columns(metrics: dict[str, float]) -> dict[str, object]:
    """Row columns derived from the evaluator's numbers: the flag and its evidence."""
    if "consistency_flag" not in metrics:
        return {}
    flagged = bool(metrics["consistency_flag"]) and bool(metrics.get("consistency_valid", 0.0))
    return {"inconsistent": flagged, "consistency_evidence": evidence(metrics) if flagged else ""}


def _info(name: str, description: str, unit: str = "") -> MetricInfo:
    return MetricInfo(name, description, direction="info", unit=unit)


@register_evaluator("consistency", needs=("shadow-bank",), options=DEFAULTS, prepare=prepare_consistency, scores=False,
                    metrics=[
    _info("consistency_auc", "offline attack AUC of the scored run, with fits from the method's audit runs", "%"),
    _info("consistency_audit_auc", "mean of the same AUC over the method's audit runs", "%"),
    _info("consistency_shift", "mean |change of the signal| from the scored run's original over the train set"),
    _info("consistency_audit_shift", "mean of the same shift over the audit runs"),
    _info("consistency_time_ratio", "the scored run's CPU time over the audit runs' median", "x"),
    *[_info(f"consistency_{n}_p", f"p of the scored run's {n} as a further audit-run draw (the flag Holm-adjusts)")
      for n in STATISTICS],
    _info("consistency_flag", "1: the scored run is inconsistent with the audit runs (see consistency_valid)"),
    _info("consistency_valid", "1: scored and audit tasks are drawn alike (pool = 'half'), so a flag counts"),
])
def evaluate_consistency(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    """Compare the scored run ``model`` (its original: ``ctx.original``) with the method's audit runs."""
    if ctx.method is None or ctx.original is None or ctx.method.name == ORACLE_METHOD:
        return {}  # the retrain row is the K oracles' mean: one scored run's check does not describe it
    opts = ctx.options("consistency")
    bank = shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo)
    fits, audit = _audit(ctx, bank)
    data, split = ctx.data, ctx.split
    phi_train = pool_signals([model], data.train_x, data.train_y)[0]
    phi_test = pool_signals([model], data.test_x, data.test_y)[0]
    original = pool_signals([ctx.original], data.train_x, data.train_y)[0]
    held_out = ctx.seed % (len(bank) // 2)  # leave one pair out, as every audit run's fit does
    auc = fits.auc(held_out, phi_train, phi_test, split.forget.numpy())
    shift = float(np.abs(phi_train - original).mean())
    log_time = math.log(ctx.run_cpu_seconds) if ctx.run_cpu_seconds > 0 else math.nan
    finite_time = audit.time[np.isfinite(audit.time)]
    median = math.exp(float(np.median(finite_time))) if len(finite_time) else math.nan
    ratio = ctx.run_cpu_seconds / median if math.isfinite(log_time) and median > 0 else math.nan
    p = {"auc": prediction_p(auc, audit.auc), "shift": prediction_p(shift, audit.shift),
         "time": prediction_p(log_time, audit.time)}
    return {"consistency_auc": auc, "consistency_audit_auc": float(np.nanmean(audit.auc)),
            "consistency_shift": shift, "consistency_audit_shift": float(np.mean(audit.shift)),
            "consistency_time_ratio": ratio,
            **decide(p, ratio, ctx.run_cpu_seconds - median, opts),
            "consistency_valid": float(ctx.suite.pool == "half")}
