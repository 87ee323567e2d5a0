"""KLoM on the shadow bank: per example, the KL divergence between the margins of unlearned and retrained models.

KLoM ("KL divergence of margins", Georgiev et al. 2024, the score of EasyDUB / data-unlearning-bench) asks
whether the *distribution* of a method's outputs matches the distribution of retraining, example by example,
rather than comparing one unlearned model with one oracle:

* margin of a model on (x, y): the correct-class logit minus the logsumexp of the other logits (the U-LiRA
  signal, :func:`harness.evaluate.ulira.logit_confidence`);
* per example: a sample of unlearned models' margins and a sample of retrained models' margins are binned on
  shared equal-width bins spanning both (clipped to +-``clip``), and the KL divergence of the two histograms is
  computed with a ``floor`` on the reference bins that hold no sample;
* reported: the median and the 95th percentile over the forget, retain and test examples (class scenarios: the
  test images of the remaining classes).

**Which models** (all from the shadow bank, :mod:`harness.training.shadow_bank`, and the method's runs on it that U-LiRA makes
anyway: KLoM costs no method run of its own). For a forget example x, the unlearned sample is the method's runs
on the shadows that forgot x; the references are the bank's retrained models that never saw x (the retrained
counterparts of the shadows whose half excludes x). Both are models of the same size trained on the same kind of
data; the references are disjoint from the unlearned side by construction. For retain and test examples the bank
is split by shadow pair into two halves: the unlearned sample comes from one (the shadows that kept x), the
references from the other. The ``retrain`` reference is scored by the same code with the retrained counterparts
as its "unlearned" side: independent retrains against the same references, so its value is the floor a perfect
method reaches at this bank size (measured, never set to 0; histogram KL is biased upward at small samples).

**Direction: KL(unlearned || reference)**, the expected log-likelihood ratio "unlearned vs retrained" for an
observer who sees a released unlearned model's margin: how much evidence a released model gives away. Its
large values come from unlearned mass where no retrain goes (a model that still remembers, or one pushed past
retraining). EasyDUB's public code computes the same direction (its binned KL, documented as KL(p || q), is
called with p = the unlearned margins), although its README and function signature list the oracle first.

**Bins and floor.** ``bins = 0`` (default) uses ``max(3, round(2 sqrt(n)))`` bins for n unlearned samples of the
example (EasyDUB's ratio: 20 bins for 100 models); ``floor = 1e-3`` caps one empty reference bin's contribution
and the value near log(1000) = 6.9 nats. Values depend on the bank size and the bins: compare them only within
a suite. Entries at the cap are fully distinguishable from retraining at this resolution and tie there, so a
distance-aware companion is reported beside it: ``margin_w1_forget_p50``, the median per-example Wasserstein-1
distance between the two margin samples in units of the references' pooled within-example standard deviation
(it grows with how far the margins moved, without a cap).

**Uncertainty.** The forget-set medians carry a 95% percentile interval from a bootstrap over the audited
*examples* (``bootstrap`` draws, fixed seed): draw k resamples the same examples for every method of the suite,
so differences per draw are a paired bootstrap. Examples, not shadow models, because a histogram KL is biased
upward in the number of distinct models it sees: a draw of shadow pairs with replacement holds about 63% of them,
and its medians sat above the estimate (fmnist-quick random-10, the retrain floor: 0.65 against a pair-bootstrap
interval of [1.03, 2.02]). Resampling examples keeps every model and resamples the unit the median is taken over;
the interval describes which examples were audited, not which shadow models were drawn (U-LiRA's interval over
shadow pairs gives that). The draws are stored beside the per-example table
(``klom-draws-<scenario>-<method>-<config>.parquet``) for the leaderboard's comparisons.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import rel_entr
from torch import nn

from harness.core.attack_stats import percentile_interval
from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.evaluate.ulira import bank_signals, method_bank_runs, per_method_result
from harness.protocol.hparams import config_hash
from harness.training.shadow_bank import ShadowBank, shadow_bank

DEFAULTS = {"bins": 0, "floor": 1e-3, "clip": 100.0, "bootstrap": 200}
SETS = ("forget", "retain", "test")
PERCENTILE = 95  # the high percentile reported (fixed: it is part of the metric names)
BOOTSTRAP_SEED = 0  # the same example resamples for every method: paired differences


def auto_bins(n_samples: int | np.ndarray) -> int | np.ndarray:
    """EasyDUB's ratio (20 bins for 100 models), at least 3 bins."""
    bins = np.maximum(3, np.round(2 * np.sqrt(n_samples))).astype(np.int64)
    return int(bins) if np.ndim(bins) == 0 else bins


def _weights(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    return np.ones_like(x) if w is None else np.asarray(w, float)


def binned_kl(p: np.ndarray, q: np.ndarray, bins: int | np.ndarray, floor: float, clip: float = math.inf,
              wp: np.ndarray | None = None, wq: np.ndarray | None = None) -> np.ndarray:
    """Per row, KL(P || Q) in nats between weighted histograms of the samples ``p`` [E, n] and ``q`` [E, m].

    ``wp``/``wq`` weight each sample (0 leaves it out; bootstrap multiplicities count it several times); ``bins``
    is one count or one per row. Both histograms use the row's equal-width bins spanning the values with weight
    of both samples (after clipping to +-``clip``). Q's empty bins where P has mass get ``floor``, then Q is
    renormalised (so the value is >= 0); P's empty bins contribute 0. A row without weight on a side is NaN.
    """
    p, q = np.atleast_2d(np.asarray(p, float)), np.atleast_2d(np.asarray(q, float))
    if p.shape[0] != q.shape[0]:
        raise ValueError(f"p and q must have one row per example, got {p.shape[0]} and {q.shape[0]} rows")
    bins = np.broadcast_to(np.asarray(bins, dtype=np.int64), (p.shape[0],))
    if (bins < 1).any() or not 0 < floor < 1:
        raise ValueError(f"need bins >= 1 and 0 < floor < 1, got bins={bins.min()}, floor={floor}")
    wp, wq = _weights(p, wp), _weights(q, wq)
    p, q = np.clip(p, -clip, clip), np.clip(q, -clip, clip)
    lo = np.minimum(np.where(wp > 0, p, np.inf).min(1), np.where(wq > 0, q, np.inf).min(1))
    hi = np.maximum(np.where(wp > 0, p, -np.inf).max(1), np.where(wq > 0, q, -np.inf).max(1))
    empty = ~np.isfinite(lo) | ~np.isfinite(hi)
    lo, width = np.where(empty, 0.0, lo)[:, None], np.where(empty | (hi <= lo), 1.0, hi - lo)[:, None]
    most = int(bins.max())

    def histogram(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        # the top edge joins the last bin; every value equal: one bin holds both samples, KL = 0
        index = np.clip(((x - lo) / width * bins[:, None]).astype(np.int64), 0, bins[:, None] - 1)
        rows = np.repeat(np.arange(len(x)), x.shape[1])
        counts = np.bincount(rows * most + index.ravel(), weights=w.ravel(), minlength=len(x) * most)
        counts = counts.reshape(len(x), most)
        with np.errstate(invalid="ignore"):
            return counts / counts.sum(1, keepdims=True)

    hp, hq = histogram(p, wp), histogram(q, wq)
    hq = np.where((hq == 0) & (hp > 0), floor, hq)  # only where it matters: P has mass, Q none
    with np.errstate(invalid="ignore"):
        hq = hq / hq.sum(1, keepdims=True)
        return rel_entr(hp, hq).sum(1)


def w1_distance(p: np.ndarray, q: np.ndarray, wp: np.ndarray | None = None,
                wq: np.ndarray | None = None) -> np.ndarray:
    """Per row, the Wasserstein-1 distance between the weighted samples ``p`` [E, n] and ``q`` [E, m] (the area
    between their empirical distribution functions); NaN for a row without weight on a side."""
    p, q = np.atleast_2d(np.asarray(p, float)), np.atleast_2d(np.asarray(q, float))
    wp, wq = _weights(p, wp), _weights(q, wq)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = wp / wp.sum(1, keepdims=True)
        b = wq / wq.sum(1, keepdims=True)
    values = np.concatenate([p, q], axis=1)
    mass = np.concatenate([a, -b], axis=1)  # the running sum is F_p - F_q
    order = np.argsort(values, axis=1, kind="stable")
    values, mass = np.take_along_axis(values, order, 1), np.take_along_axis(mass, order, 1)
    gaps = np.diff(values, axis=1)
    return (np.abs(np.cumsum(mass, axis=1)[:, :-1]) * gaps).sum(1)


@dataclass(frozen=True)
class SetSamples:
    """One set's examples and, per (example, shadow), which shadows are unlearned samples / references."""

    examples: np.ndarray  # positions in the train or test set
    part: str  # "train" | "test"
    unlearned: np.ndarray  # [E, N] bool
    references: np.ndarray  # [E, N] bool


def _pair_halves(bank: ShadowBank) -> tuple[np.ndarray, np.ndarray]:
    """Shadows of even-numbered pairs and of odd-numbered pairs (disjoint groups of whole pairs)."""
    first = (np.arange(len(bank)) // 2) % 2 == 0
    return first, ~first


def set_samples(bank: ShadowBank, test_positions: np.ndarray) -> dict[str, SetSamples]:
    """Forget: shadows that forgot x against retrains that never saw it; retain and test: one half of the pairs
    against the other (see the module docstring)."""
    audited = np.flatnonzero(bank.in_forget.any(0))
    kept = bank.in_half & ~bank.in_forget
    first, second = _pair_halves(bank)
    retained = np.flatnonzero((kept & first[:, None]).any(0) & (kept & second[:, None]).any(0))
    n_test = len(test_positions)
    return {
        "forget": SetSamples(audited, "train", bank.in_forget[:, audited].T, ~bank.in_half[:, audited].T),
        "retain": SetSamples(retained, "train", (kept & first[:, None])[:, retained].T,
                             (kept & second[:, None])[:, retained].T),
        "test": SetSamples(test_positions, "test", np.repeat(first[None, :], n_test, 0),
                           np.repeat(second[None, :], n_test, 0)),
    }


def pooled_std(values: np.ndarray, weights: np.ndarray) -> float:
    """The references' within-example standard deviation, pooled over examples (the W1 companion's unit)."""
    w = weights.astype(float)
    n = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (values * w).sum(1) / n
        var = ((values - mean[:, None]) ** 2 * w).sum(1) / (n - 1)
    var = var[(n >= 2) & np.isfinite(var)]
    return float(math.sqrt(var.mean())) if len(var) and var.mean() > 0 else 1.0


@dataclass(frozen=True)
class Settings:
    floor: float
    clip: float
    bins: int  # 0: automatic per example
    bootstrap: int


def _bins(settings: Settings, unlearned: np.ndarray) -> int | np.ndarray:
    return settings.bins if settings.bins else auto_bins(np.maximum(unlearned.sum(1), 1))


def score_set(samples: SetSamples, mine: np.ndarray, retrained: np.ndarray, settings: Settings,
              scale: float, pair_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-example KLoM and scaled W1 of one set; ``mine``/``retrained`` are [N, n] signals of the unlearned
    side and of the bank's retrained models on the set's part, ``pair_weights`` [N] a bootstrap's multiplicity
    of each shadow."""
    u, r = mine[:, samples.examples].T, retrained[:, samples.examples].T
    weight = np.ones(u.shape[1]) if pair_weights is None else pair_weights
    wu, wr = samples.unlearned * weight, samples.references * weight
    kl = binned_kl(u, r, _bins(settings, samples.unlearned), settings.floor, settings.clip, wu, wr)
    return kl, w1_distance(np.clip(u, -settings.clip, settings.clip), np.clip(r, -settings.clip, settings.clip),
                           wu, wr) / scale


def example_draws(n_examples: int, draws: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """[draws, n] example indices drawn with replacement (fixed seed: the same draws for every method)."""
    return np.random.default_rng(seed).integers(0, n_examples, size=(draws, n_examples))


def bootstrap_draws(values: dict[str, np.ndarray], draws: int) -> pd.DataFrame:
    """Per metric, the median of the per-example values over ``draws`` resamples of the examples."""
    frames = []
    for metric, per_example in values.items():
        index = example_draws(len(per_example), draws)
        frames.append(pd.DataFrame({"draw": np.arange(draws), "metric": metric,
                                    "value": np.nanmedian(per_example[index], axis=1) if draws else []}))
    return pd.concat(frames, ignore_index=True)


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else math.nan


def _percentile(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, PERCENTILE)) if len(finite) else math.nan


def check_options(options: dict) -> None:
    """Validate ``[evaluate.klom]`` before anything trains (errors name the option)."""
    bins, floor, clip, boot = options.get("bins"), options.get("floor"), options.get("clip"), options.get("bootstrap")
    if not (isinstance(bins, int) and not isinstance(bins, bool) and bins >= 0):
        raise ValueError(f"bins must be a non-negative integer (0: max(3, round(2 sqrt(n)))), got {bins!r}")
    if not (isinstance(floor, (int, float)) and not isinstance(floor, bool) and 0 < floor < 1):
        raise ValueError(f"floor must be a number in (0, 1), got {floor!r}")
    if not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip > 0):
        raise ValueError(f"clip must be a positive number, got {clip!r}")
    if not (isinstance(boot, int) and not isinstance(boot, bool) and boot >= 0):
        raise ValueError(f"bootstrap must be a non-negative integer (0: no interval), got {boot!r}")


def _settings(ctx: EvalContext) -> Settings:
    opts = ctx.options("klom")
    check_options(opts)
    return Settings(float(opts["floor"]), float(opts["clip"]), int(opts["bins"]), int(opts["bootstrap"]))


def _scale(ctx: EvalContext, bank: ShadowBank, samples: SetSamples) -> float:
    key = ("klom-scale", bank.key, samples.part, len(samples.examples))
    if key not in ctx.memo:
        retrained = bank_signals(ctx, bank, "retrained", samples.part)[:, samples.examples].T
        ctx.memo[key] = pooled_std(retrained, samples.references)
    return ctx.memo[key]


def klom_values(ctx: EvalContext, bank: ShadowBank, settings: Settings) -> tuple[dict[str, float], pd.DataFrame,
                                                                                  pd.DataFrame]:
    """The metrics, the per-example table and the bootstrap draws of the method under test."""
    runs = method_bank_runs(ctx, bank)
    sets = set_samples(bank, ctx.split.test_retain.numpy())
    mine = {"train": runs.phi, "test": runs.phi_test}
    metrics: dict[str, float] = {"klom_n_models": float(len(bank))}
    frames, draws = [], []
    for name, samples in sets.items():
        retrained = bank_signals(ctx, bank, "retrained", samples.part)
        kl, w1 = score_set(samples, mine[samples.part], retrained, settings, _scale(ctx, bank, samples))
        metrics[f"klom_{name}_p50"], metrics[f"klom_{name}_p{PERCENTILE}"] = _median(kl), _percentile(kl)
        u = mine[samples.part][:, samples.examples].T
        r = retrained[:, samples.examples].T
        frames.append(pd.DataFrame({
            "set": name, "example": samples.examples.astype(np.int64), "klom": kl.astype(np.float32),
            "w1": w1.astype(np.float32),
            "unlearned_median": np.nanmedian(np.where(samples.unlearned, u, np.nan), 1).astype(np.float32),
            "oracle_median": np.nanmedian(np.where(samples.references, r, np.nan), 1).astype(np.float32),
            "n_unlearned": samples.unlearned.sum(1).astype(np.int32),
            "n_references": samples.references.sum(1).astype(np.int32)}))
        if name == "forget":
            metrics["margin_w1_forget_p50"] = _median(w1)
            metrics["klom_forget_n_unlearned"] = float(samples.unlearned.sum(1).mean())
            metrics["klom_forget_n_references"] = float(samples.references.sum(1).mean())
            draws.append(bootstrap_draws({"klom_forget_p50": kl, "margin_w1_forget_p50": w1}, settings.bootstrap))
    draws_frame = pd.concat(draws, ignore_index=True) if draws else pd.DataFrame(columns=["draw", "metric", "value"])
    for metric in ("klom_forget_p50", "margin_w1_forget_p50"):
        lo, hi = percentile_interval(draws_frame.loc[draws_frame["metric"] == metric, "value"].to_numpy(float))
        metrics[f"{metric}_boot_lo"], metrics[f"{metric}_boot_hi"] = lo, hi
    return metrics, pd.concat(frames, ignore_index=True), draws_frame


def _metric(name: str, what: str) -> list[MetricInfo]:
    return [MetricInfo(f"klom_{name}_p50", f"median over {what} of the per-example KL(unlearned || retrained) of "
                       "margins on the shadow bank (the retrain row: independent retrains, its floor)",
                       direction="lower", unit="nats", privacy=True, axis="privacy" if name == "forget" else ""),
            MetricInfo(f"klom_{name}_p{PERCENTILE}", f"{PERCENTILE}th percentile over {what} of the per-example "
                       "KL(unlearned || retrained) of margins", direction="lower", unit="nats", privacy=True)]


def _interval(name: str) -> list[MetricInfo]:
    return [MetricInfo(f"{name}_boot_{end}", f"{end} end of the 95% bootstrap interval of {name} over shadow pairs",
                       direction="info", unit="nats" if name.startswith("klom") else "sd") for end in ("lo", "hi")]


def prepare_klom(ctx: EvalContext) -> None:
    """The audit runs, then KLoM on them (cached): a seed's row only loads the result."""
    if ctx.method is not None:
        evaluate_klom(None, ctx)


@register_evaluator("klom", per_method=True, needs=("shadow-bank",), options=DEFAULTS, prepare=prepare_klom,
                    check=check_options, metrics=[
    *_metric("forget", "the forget examples"),
    *_metric("retain", "the retain examples"),
    *_metric("test", "the test examples (class scenarios: of the remaining classes)"),
    *_interval("klom_forget_p50"),
    MetricInfo("margin_w1_forget_p50", "median over the forget examples of the Wasserstein-1 distance between the "
               "unlearned and the retrained margins, in the retrained margins' pooled standard deviation (KLoM's "
               "companion without a cap)", direction="lower", unit="sd", privacy=True),
    *_interval("margin_w1_forget_p50"),
    MetricInfo("klom_n_models", "N: shadow models behind the KLoM values", direction="info", unit="count"),
    MetricInfo("klom_forget_n_unlearned", "mean number of unlearned margins per forget example", direction="info",
               unit="count"),
    MetricInfo("klom_forget_n_references", "mean number of retrained margins per forget example", direction="info",
               unit="count"),
])
def evaluate_klom(model: nn.Module | None, ctx: EvalContext) -> dict[str, float]:
    """Scores ``ctx.method`` through its runs on the shadow bank; ``model`` (one seed's output) is not used."""
    del model
    if ctx.method is None:
        return {}
    settings = _settings(ctx)
    bank = shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo)
    name = f"{bank.scenario.name}-{ctx.method.name}-{config_hash(ctx.method.name, ctx.hparams)}"

    def compute() -> dict:
        metrics, table, draws = klom_values(ctx, bank, settings)
        return {"metrics": metrics, "tables": {f"klom-{name}": table, f"klom-draws-{name}": draws}}

    return per_method_result(ctx, "klom", bank, dataclasses.asdict(settings), compute)

