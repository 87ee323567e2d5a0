"""KLoM: per example, the KL divergence between the margins of N unlearned models and of M oracles.

KLoM ("KL divergence of margins", Georgiev et al. 2024, the score of EasyDUB / data-unlearning-bench) asks
whether the *distribution* of a method's outputs matches the distribution of retraining, example by example,
rather than comparing one unlearned model with one oracle:

* margin of a model on (x, y): the correct-class logit minus the logsumexp of the other logits (the U-LiRA
  signal, :func:`harness.evaluate.ulira.logit_confidence`);
* per example: the N unlearned models' margins and the M reference oracles' margins are binned on shared
  equal-width bins spanning both samples (clipped to +-``clip``), and the KL divergence of the two
  histograms is computed with a ``floor`` on the oracle bins that hold no sample (a bin where unlearned
  models land and no oracle does would otherwise give an infinite value);
* reported: the median and the 95th percentile of the per-example values over the forget, retain and test
  examples (class scenarios: the test images of the remaining classes, as ``test_acc``).

**Direction: KL(unlearned || oracle)**, the expected log-likelihood ratio, for an observer who sees a released
unlearned model's margin, of "unlearned" against "retrained": how much evidence per released model an audit
gets. Its large values come from unlearned mass where no oracle goes (a model that still remembers). EasyDUB's
public code computes the same direction (its binned KL, documented as KL(p || q), is called with p = the
unlearned margins and q = the oracle margins), although its README and its function signature list the oracle
first. The other direction penalises oracle mass the unlearned models miss instead; a test checks which one
is computed here.

**Bins and floor at small N.** EasyDUB bins N = 100 models into 20 bins with a floor of 1e-5. With N = 5 models
that setting measures sampling noise: simulated identical Gaussians scored a median of 6.2 nats against 10.8
for distributions 20 standard deviations apart. ``bins = 0`` (default) uses ``max(3, round(2 sqrt(N)))`` bins,
EasyDUB's ratio at N = 100 (20 bins) and 4 bins at N = 5; ``floor = 1e-3`` caps one empty oracle bin's
contribution and the value at log(1000) = 6.9 nats (simulated at N = 5, M = 10: identical distributions
median 0.52, shifted by 1 standard deviation 1.08, by 2: 3.06, disjoint: 6.91). The floored oracle histogram is
renormalised, so every value is >= 0. Values depend on N, M and the bins, so they compare only within a suite.

**Models** (:mod:`harness.klom_bank`): N originals (the suite's, per seed), one forget set per scenario shared
by all of them, M reference oracles on its retain set and N held-out retrains. A method is run on each of the N
originals (the ``prepare`` step, cached per configuration like U-LiRA's shadow runs). The ``retrain`` reference
is scored through the same computation with the N held-out retrains as its "unlearned" side: a disjoint set of
independent retrains against the same M references, so its value is the floor a perfect method reaches at this
N and M (measured, never set to 0).

Per-example values go to ``<results>/<suite>/_examples/klom-<scenario>-<method>-<config>.parquet`` (set,
example, klom, unlearned_median, oracle_median).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from scipy.special import rel_entr
from torch import nn

from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.evaluate.ulira import pool_signals, write_examples
from harness.hparams import config_hash
from harness.klom_bank import DEFAULT_MODELS, DEFAULT_REFERENCES, KlomBank, bank_settings, klom_bank
from harness.protocol import ORACLE_METHOD
from harness.suite import SuiteData

DEFAULTS = {"models": DEFAULT_MODELS, "references": DEFAULT_REFERENCES, "bins": 0, "floor": 1e-3, "clip": 100.0}
SETS = ("forget", "retain", "test")
PERCENTILE = 95  # the high percentile reported (fixed: it is part of the metric names)


def auto_bins(n_samples: int) -> int:
    """EasyDUB's ratio (20 bins for 100 models), at least 3 bins."""
    return max(3, round(2 * math.sqrt(n_samples)))


def binned_kl(p: np.ndarray, q: np.ndarray, bins: int, floor: float, clip: float = math.inf) -> np.ndarray:
    """Per row, KL(P || Q) in nats between histograms of the samples ``p`` [E, n] and ``q`` [E, m].

    Both histograms use the same ``bins`` equal-width bins spanning the row's values of both samples (after
    clipping to +-``clip``). Q's empty bins where P has mass get ``floor``, then Q is renormalised (so the value
    is >= 0); P's empty bins contribute 0.
    """
    p, q = np.atleast_2d(np.asarray(p, float)), np.atleast_2d(np.asarray(q, float))
    if p.shape[0] != q.shape[0]:
        raise ValueError(f"p and q must have one row per example, got {p.shape[0]} and {q.shape[0]} rows")
    if bins < 1 or not 0 < floor < 1:
        raise ValueError(f"need bins >= 1 and 0 < floor < 1, got bins={bins}, floor={floor}")
    p, q = np.clip(p, -clip, clip), np.clip(q, -clip, clip)
    lo = np.minimum(p.min(1), q.min(1))[:, None]
    width = np.maximum(p.max(1), q.max(1))[:, None] - lo
    width = np.where(width > 0, width, 1.0)  # every value equal: one bin holds both samples, KL = 0

    def histogram(x: np.ndarray) -> np.ndarray:
        index = np.clip(((x - lo) / width * bins).astype(np.int64), 0, bins - 1)  # the top edge joins the last bin
        rows = np.repeat(np.arange(len(x)), x.shape[1])
        counts = np.bincount(rows * bins + index.ravel(), minlength=len(x) * bins).reshape(len(x), bins)
        return counts / x.shape[1]

    hp, hq = histogram(p), histogram(q)
    hq = np.where((hq == 0) & (hp > 0), floor, hq)  # only where it matters: P has mass, Q none
    hq = hq / hq.sum(1, keepdims=True)
    return rel_entr(hp, hq).sum(1)


def per_example(split_sets: dict[str, tuple[str, np.ndarray]], unlearned: dict[str, np.ndarray],
                oracle: dict[str, np.ndarray], bins: int, floor: float, clip: float) -> pd.DataFrame:
    """One row per (set, example): its KLoM and the medians of both margin samples."""
    frames = []
    for name, (part, positions) in split_sets.items():
        u, o = unlearned[part][:, positions].T, oracle[part][:, positions].T  # [examples, models]
        frames.append(pd.DataFrame({
            "set": name, "example": positions.astype(np.int64),
            "klom": binned_kl(u, o, bins, floor, clip).astype(np.float32),
            "unlearned_median": np.median(u, 1).astype(np.float32),
            "oracle_median": np.median(o, 1).astype(np.float32)}))
    return pd.concat(frames, ignore_index=True)


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """Median and high percentile of the per-example values, per set."""
    out = {}
    for name in SETS:
        values = table.loc[table["set"] == name, "klom"].to_numpy(float)
        out[f"klom_{name}_p50"] = float(np.median(values)) if len(values) else math.nan
        out[f"klom_{name}_p{PERCENTILE}"] = float(np.percentile(values, PERCENTILE)) if len(values) else math.nan
    return out


def check_options(options: dict) -> None:
    """Validate ``[evaluate.klom]`` before anything trains (errors name the option)."""
    bank_settings(options)
    bins, floor, clip = options.get("bins"), options.get("floor"), options.get("clip")
    if not (isinstance(bins, int) and not isinstance(bins, bool) and bins >= 0):
        raise ValueError(f"bins must be a non-negative integer (0: max(3, round(2 sqrt(models)))), got {bins!r}")
    if not (isinstance(floor, (int, float)) and not isinstance(floor, bool) and 0 < floor < 1):
        raise ValueError(f"floor must be a number in (0, 1), got {floor!r}")
    if not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip > 0):
        raise ValueError(f"clip must be a positive number, got {clip!r}")


def model_margins(models: list[nn.Module], data: SuiteData) -> dict[str, np.ndarray]:
    """[len(models), n] margins on the train pool and on the test set."""
    return {"train": pool_signals(models, data.train_x, data.train_y),
            "test": pool_signals(models, data.test_x, data.test_y)}


def _bank(ctx: EvalContext) -> KlomBank:
    return klom_bank(ctx.suite, ctx.data, ctx.cache, ctx.split.scenario, ctx.device,
                     bank_settings(ctx.options("klom")), memo=ctx.memo)


def bank_margins(ctx: EvalContext, bank: KlomBank, role: str) -> dict[str, np.ndarray]:
    """Margins of the bank's 'references' or 'held-out' retrains (memoised per process)."""
    key = ("klom-margins", bank.key, role)
    if key not in ctx.memo:
        models = bank.references() if role == "references" else bank.held_out()
        ctx.memo[key] = model_margins([m.model for m in models], ctx.data)
    return ctx.memo[key]


def unlearned_margins(ctx: EvalContext, bank: KlomBank) -> dict[str, np.ndarray]:
    """The method under test run on each of the bank's originals (cached per configuration); their margins.

    The retrain reference's side is the bank's held-out retrains (independent of the references).
    """
    spec = ctx.method
    if spec.name == ORACLE_METHOD:
        return bank_margins(ctx, bank, "held-out")
    key = ctx.method_runs_key(bank.key)

    def compute() -> dict:
        start = time.perf_counter()
        forget, retain = bank.split.forget, bank.split.retain
        models = [ctx.unlearn(o.model, forget, retain, seed, original_key=o.key)
                  for seed, o in zip(bank.seeds, bank.originals())]
        out = model_margins(models, ctx.data)
        return {"train": torch.from_numpy(out["train"]), "test": torch.from_numpy(out["test"]),
                "seconds": time.perf_counter() - start}

    payload = ctx.cache.get_or_compute("klom-unlearned", key, compute,
                                       parts={"method": spec.name, "scenario": bank.scenario.name})
    return {"train": payload["train"].numpy(), "test": payload["test"].numpy()}


def prepare_klom(ctx: EvalContext) -> None:
    """Run the method on the bank's originals now (cached), so every seed's row only reads the result."""
    if ctx.method is not None and ctx.method.name != ORACLE_METHOD:
        unlearned_margins(ctx, _bank(ctx))


def _sets(bank: KlomBank) -> dict[str, tuple[str, np.ndarray]]:
    split = bank.split
    return {"forget": ("train", split.forget.numpy()), "retain": ("train", split.retain.numpy()),
            "test": ("test", split.test_retain.numpy())}


def _metric(name: str, what: str) -> list[MetricInfo]:
    return [MetricInfo(f"klom_{name}_p50", f"median over {what} of the per-example KL(unlearned || oracle) of "
                       "margins (N unlearned vs M oracles; the retrain row: N held-out retrains, its floor)",
                       direction="lower", unit="nats", privacy=True, axis="privacy" if name == "forget" else ""),
            MetricInfo(f"klom_{name}_p{PERCENTILE}", f"{PERCENTILE}th percentile over {what} of the per-example "
                       "KL(unlearned || oracle) of margins", direction="lower", unit="nats", privacy=True)]


@register_evaluator("klom", per_method=True, options=DEFAULTS, prepare=prepare_klom, check=check_options, metrics=[
    *_metric("forget", "the forget examples"),
    *_metric("retain", "the retain examples"),
    *_metric("test", "the test examples (class scenarios: of the remaining classes)"),
    MetricInfo("klom_n_models", "N: unlearned models (one per original) behind the KLoM values", direction="info",
               unit="count"),
    MetricInfo("klom_n_references", "M: reference oracles behind the KLoM values", direction="info", unit="count"),
])
def evaluate_klom(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    """Scores ``ctx.method`` through its runs on the bank's originals; ``model`` (one seed's output) is unused."""
    del model
    if ctx.method is None:
        return {}
    opts = ctx.options("klom")
    check_options(opts)
    bank = _bank(ctx)
    chash = config_hash(ctx.method.name, ctx.hparams)
    memo_key = ("klom", bank.key, ctx.method.name, chash, tuple(sorted(opts.items())))
    if memo_key not in ctx.memo:
        bins = int(opts["bins"]) or auto_bins(len(bank.seeds))
        table = per_example(_sets(bank), unlearned_margins(ctx, bank), bank_margins(ctx, bank, "references"),
                            bins, float(opts["floor"]), float(opts["clip"]))
        write_examples(ctx, f"klom-{bank.scenario.name}-{ctx.method.name}-{chash}", table)
        ctx.memo[memo_key] = {**summarize(table), "klom_n_models": float(len(bank.seeds)),
                              "klom_n_references": float(len(bank.references_plan))}
    return dict(ctx.memo[memo_key])
