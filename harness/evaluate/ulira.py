"""U-LiRA: a per-example unlearning membership-inference attack (Hayes et al. 2024), RECONSTRUCTED.

Seed spec §6: the numeric settings of Hayes et al. are UNVERIFIED, so this is *our instantiation*; every
constant is a suite option (``[evaluate.ulira]``) and the metrics carry ``reconstructed=True``.

The attack scores a *method*, not one model: the method under test is run (with its hyper-parameters) on
each of the N shadow originals of the shadow bank (:mod:`harness.shadow`), giving unlearned shadows
``U_i``. The signal is the logit-scaled confidence ``phi = log p_y - log sum_{k != y} p_k``. Per example x:

* IN  ("unlearned"): ``phi(U_j, x)`` for the shadows j whose forget set holds x;
* OUT ("never trained on"): ``out = "retrained"`` (default): ``phi(R_j, x)`` for the retrained counterparts
  R_j that never saw x (x outside j's half, or x in F_j); ``out = "heldout"``: ``phi(U_j, x)`` for x outside
  j's half (the method's own output on an example its original never saw).

Gaussians are fitted per example (means per example; variance global by default — few observations per
example at small N — or per example with ``variance = "per-example"``). Each shadow i is attacked
leave-one-out, with statistics from the other shadows only: positives ``(U_i, x in F_i)``, negatives
``(R_i, x in F_i)`` (retrained) or ``(U_i, x outside H_i)`` (heldout). Reported: balanced accuracy at the
likelihood-ratio threshold 1, ROC AUC and TPR at 1% FPR, in percent. A method whose output equals the
retrained model scores exactly 50%.

The value depends on the method and scenario only, so it is computed once per (method config, scenario)
and shared by every seed (``ctx.memo`` and the artifact cache); per-example scores go to
``<results>/<suite>/examples/``.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from harness.cache import atomic_write_bytes, cache_key
from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.hparams import config_hash
from harness.references import ORACLE_METHOD
from harness.shadow import ShadowBank, shadow_bank
from harness.splits import stable_seed
from harness.train import predict_logits

DEFAULTS = {"out": "retrained", "variance": "global", "min_count": 3, "fpr": 0.01}


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log p_y - log sum_{k != y} p_k`` computed from logits without cancellation."""
    logits = logits.double()
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), -math.inf)
    return (true - torch.logsumexp(others, dim=1)).float()


@dataclass
class AttackResult:
    accuracy: float  # balanced accuracy, percent
    auc: float  # percent
    tpr_at_fpr: float  # percent
    examples: pd.DataFrame  # one row per attacked (shadow, example, hypothesis)


def _normal_logpdf(v: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * var) + (v - mean) ** 2 / var)


def _fit(values: np.ndarray, examples: np.ndarray, n_examples: int, variance: str, min_count: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-example means (population mean where an example has none) and variances."""
    count = np.bincount(examples, minlength=n_examples).astype(float)
    total = np.bincount(examples, weights=values, minlength=n_examples)
    pop_mean = values.mean() if len(values) else 0.0
    mean = np.where(count > 0, total / np.maximum(count, 1), pop_mean)
    resid = values - mean[examples]
    sq = np.bincount(examples, weights=resid**2, minlength=n_examples)
    dof = count.sum() - (count > 0).sum()
    # Pooled within-example variance; the population variance when no example has two observations.
    global_var = sq.sum() / dof if dof > 0 else (values.var() if len(values) > 1 else 1.0)
    global_var = max(float(global_var), 1e-6)
    var = np.full(n_examples, global_var)
    if variance == "per-example":
        own = sq / np.maximum(count - 1, 1)
        var = np.where(count >= min_count, np.maximum(own, 1e-6), global_var)
    elif variance != "global":
        raise ValueError(f"ulira variance must be 'global' or 'per-example', got {variance!r}")
    return mean, var


def _labelled(pos_mask: np.ndarray, pos_values: np.ndarray, neg_mask: np.ndarray,
              neg_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(shadow, example, signal, is-positive) for the True cells of two [N, m] masks, positives first."""
    pos_s, pos_e = np.nonzero(pos_mask)
    neg_s, neg_e = np.nonzero(neg_mask)
    values = np.concatenate([pos_values[pos_s, pos_e], neg_values[neg_s, neg_e]]).astype(float)
    labels = np.concatenate([np.ones(len(pos_s), bool), np.zeros(len(neg_s), bool)])
    return np.concatenate([pos_s, neg_s]), np.concatenate([pos_e, neg_e]), values, labels


def ulira_attack(phi_unlearned: np.ndarray, phi_retrained: np.ndarray, in_forget: np.ndarray,
                 in_half: np.ndarray, out: str = "retrained", variance: str = "global", min_count: int = 3,
                 fpr: float = 0.01, shuffle_seed: int | None = None) -> AttackResult:
    """The leave-one-out per-example attack on [N, pool] signal matrices (see the module docstring).

    ``shuffle_seed`` permutes the IN/OUT labels of the fitting observations within each example: a
    control that must drive the attack to chance.
    """
    n, _ = phi_unlearned.shape
    audited = np.flatnonzero(in_forget.any(0))  # examples some shadow forgets: the attack's targets
    fu, fr = phi_unlearned[:, audited], phi_retrained[:, audited]
    forget, half = in_forget[:, audited], in_half[:, audited]
    if out == "retrained":
        out_mask, out_values = ~(half & ~forget), fr  # the retrained counterpart never saw x
        neg_mask, neg_values = forget, fr
    elif out == "heldout":
        out_mask, out_values = ~half, fu
        neg_mask, neg_values = ~half, fu
    else:
        raise ValueError(f"ulira out must be 'retrained' or 'heldout', got {out!r}")
    obs_s, obs_e, obs_v, obs_l = _labelled(forget, fu, out_mask, out_values)
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        grouped = np.lexsort((np.arange(len(obs_e)), obs_e))
        shuffled = np.lexsort((rng.random(len(obs_e)), obs_e))
        labels = np.empty_like(obs_l)
        labels[grouped] = obs_l[shuffled]
        obs_l = labels
    t_s, t_e, t_v, t_l = _labelled(forget, fu, neg_mask, neg_values)
    t_l = t_l.astype(int)
    score = np.zeros(len(t_v))
    n_in = np.zeros(len(t_v), int)
    n_out = np.zeros(len(t_v), int)
    m = len(audited)
    for i in range(n):
        keep = obs_s != i
        sel_in, sel_out = keep & obs_l, keep & ~obs_l
        mu_in, var_in = _fit(obs_v[sel_in], obs_e[sel_in], m, variance, min_count)
        mu_out, var_out = _fit(obs_v[sel_out], obs_e[sel_out], m, variance, min_count)
        t = t_s == i
        e = t_e[t]
        score[t] = _normal_logpdf(t_v[t], mu_in[e], var_in[e]) - _normal_logpdf(t_v[t], mu_out[e], var_out[e])
        n_in[t] = np.bincount(obs_e[sel_in], minlength=m)[e]
        n_out[t] = np.bincount(obs_e[sel_out], minlength=m)[e]
    pred = score > 0
    tpr = pred[t_l == 1].mean() if (t_l == 1).any() else math.nan
    tnr = (~pred[t_l == 0]).mean() if (t_l == 0).any() else math.nan
    both = (t_l == 1).any() and (t_l == 0).any()
    auc = roc_auc_score(t_l, score) if both else math.nan
    tpr_low = math.nan
    if both:
        f, tp, _ = roc_curve(t_l, score)
        tpr_low = float(tp[f <= fpr].max())
    examples = pd.DataFrame({"shadow": t_s.astype(np.int32), "example": audited[t_e].astype(np.int64),
                             "label": t_l.astype(np.int8), "phi": t_v.astype(np.float32),
                             "score": score.astype(np.float32), "n_in": n_in.astype(np.int32),
                             "n_out": n_out.astype(np.int32)})
    return AttackResult(100.0 * 0.5 * (tpr + tnr), 100.0 * auc, 100.0 * tpr_low, examples)


def pool_signals(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """[len(models), len(x)] logit-scaled confidences."""
    return np.stack([logit_confidence(predict_logits(m, x), y).numpy() for m in models])


def unlearned_shadow_signals(ctx: EvalContext, bank: ShadowBank) -> tuple[np.ndarray, float]:
    """Run the method under test on every shadow (cached per method config and bank); signals on the pool."""
    spec = ctx.method
    data = ctx.data
    if spec.name == ORACLE_METHOD:  # the reference's "unlearned" shadows are the retrained counterparts
        return bank_signals(ctx, bank, "retrained"), 0.0
    key = cache_key(bank=bank.key, method=spec.name, config=config_hash(spec.name, ctx.hparams))

    def compute() -> dict:
        start = time.perf_counter()
        models = []
        for s in bank.shadows:
            models.append(ctx.unlearn(s.original.model, torch.as_tensor(s.forget), torch.as_tensor(s.retain),
                                      stable_seed("shadow-unlearn", s.index) % (2**31),
                                      original_key=s.original.key))
        phi = pool_signals(models, data.train_x, data.train_y)
        return {"phi": torch.from_numpy(phi), "seconds": time.perf_counter() - start}

    payload = ctx.cache.get_or_compute("ulira-unlearned", key, compute,
                                       parts={"method": spec.name, "scenario": bank.scenario.name})
    return payload["phi"].numpy(), float(payload["seconds"])


def bank_signals(ctx: EvalContext, bank: ShadowBank, role: str) -> np.ndarray:
    memo_key = ("ulira-bank-phi", bank.key, role)
    if memo_key not in ctx.memo:
        logits = bank.logits(role, ctx.data.train_x, "train")
        ctx.memo[memo_key] = np.stack([logit_confidence(z, ctx.data.train_y).numpy() for z in logits])
    return ctx.memo[memo_key]


def write_examples(ctx: EvalContext, name: str, frame: pd.DataFrame) -> None:
    """Per-example scores as a second Parquet table, beside the run rows (not read as runs)."""
    if ctx.results_root is None:
        return
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    atomic_write_bytes(ctx.results_root / ctx.suite.name / "examples" / f"{name}.parquet", buffer.getvalue())


def settings(ctx: EvalContext) -> dict:
    return {k: ctx.suite.evaluator_setting("ulira", k, v) for k, v in DEFAULTS.items()}


@register_evaluator("ulira", per_method=True, metrics=[
    MetricInfo("ulira_acc", "U-LiRA balanced attack accuracy over the method's unlearned shadows (50 = retrain)",
               reconstructed=True),
    MetricInfo("ulira_auc", "U-LiRA ROC AUC (unlearned vs never-trained)", reconstructed=True),
    MetricInfo("ulira_tpr_1fpr", "U-LiRA true-positive rate at 1% false-positive rate", reconstructed=True),
    MetricInfo("ulira_n_shadows", "number of shadow models behind the U-LiRA values", direction="info",
               unit="count"),
])
def evaluate_ulira(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    """Scores ``ctx.method`` through its runs on the shadow bank; ``model`` (one seed's output) is not used."""
    del model
    if ctx.method is None:
        return {}
    opts = settings(ctx)
    bank = shadow_bank(ctx.suite, ctx.data, ctx.cache, ctx.split.scenario, ctx.device, memo=ctx.memo)
    chash = config_hash(ctx.method.name, ctx.hparams)
    memo_key = ("ulira", bank.key, ctx.method.name, chash, tuple(sorted(opts.items())))
    if memo_key not in ctx.memo:
        phi_u, _ = unlearned_shadow_signals(ctx, bank)
        phi_r = bank_signals(ctx, bank, "retrained")
        result = ulira_attack(phi_u, phi_r, bank.in_forget, bank.in_half, opts["out"], opts["variance"],
                              int(opts["min_count"]), float(opts["fpr"]))
        write_examples(ctx, f"ulira-{ctx.split.scenario.name}-{ctx.method.name}-{chash}", result.examples)
        ctx.memo[memo_key] = {"ulira_acc": result.accuracy, "ulira_auc": result.auc,
                              "ulira_tpr_1fpr": result.tpr_at_fpr, "ulira_n_shadows": float(len(bank))}
    return dict(ctx.memo[memo_key])
