"""U-LiRA: a per-example unlearning membership-inference attack (Hayes et al.), RECONSTRUCTED.

The numeric settings of Hayes et al. could not be verified, so this is *our instantiation*; every constant is
a suite option (``[evaluate.ulira]``) and the metrics carry ``reconstructed=True``.

The attack scores a *method*, not one model: the method under test is run (with its hyper-parameters) on
each of the N shadow originals of the shadow bank (:mod:`harness.training.shadow_bank`), giving unlearned shadows ``U_i``.
The signal is the logit-scaled confidence ``phi = log p_y - log sum_{k != y} p_k``. The question it asks is
the one of Hayes et al.: *under the same unlearned model*, does an example look forgotten or never seen?

* IN  ("forgotten"): ``phi(U_j, x)`` for the shadows j whose forget set F_j holds x;
* OUT ("never seen"): ``phi(U_j, x)`` for the shadows j whose training half H_j excludes x.

Random scenarios audit the examples of the bank's audit set; class scenarios audit the forget class: IN are
its examples inside a shadow's half, OUT its examples outside. Gaussians are fitted per example (means per
example; variance pooled over examples by default, because each example has few observations at small N, or
per example with ``variance = "per-example"``). Each shadow i is attacked with statistics from the shadows
outside its complementary pair only (see :func:`ulira_attack` for why not just i): positives
``(U_i, x in F_i)``, negatives ``(U_i, x outside H_i)``. Reported: balanced accuracy at likelihood ratio 1,
ROC AUC and TPR at 1% FPR, in percent, accuracy and AUC with a 95% cluster-bootstrap interval over shadow
pairs (:mod:`harness.core.attack_stats`), and the label-shuffle control (``ulira_shuffle_acc``: membership labels of the
fitting observations permuted within each example; it must sit at chance).

Nothing is hard-coded for the ``retrain`` reference: its "unlearned" shadows are the bank's retrained
counterparts (each shadow retrained from scratch on its half minus its forget set), attacked the same way.
Its value is the attack's floor at this N, which is not exactly 50 (estimation noise); a method's gap is
measured against it.

The value depends on the method and scenario only, so it is computed once per (method config, scenario)
and shared by every seed (``ctx.memo`` and the artifact cache); per-example scores go to
``<results>/<suite>/_examples/``. An earlier default, OUT = retrained counterparts, asked "was this model
unlearned or retrained?": any global difference between the two models decided it (every method scored
99.75-100 on fmnist-quick class-0), so it was removed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from harness.core.attack_stats import (
    fit_example_gaussians,
    normal_logpdf,
    percentile_interval,
    shadow_bootstrap,
    summarize_attack,
)
from harness.core.results import examples_path
from harness.core.results import write_examples as write_side_table
from harness.evaluate.base import EVALUATION_VERSION, EvalContext, MetricInfo, register_evaluator
from harness.protocol.hparams import config_hash
from harness.protocol.scoring import ORACLE_METHOD
from harness.protocol.splits import stable_seed
from harness.training.cache import cache_key
from harness.training.loop import predict_logits
from harness.training.shadow_bank import ShadowBank, shadow_bank

DEFAULTS = {"variance": "global", "min_count": 3, "fpr": 0.01, "bootstrap": 1000}


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


def _labelled(pos_mask: np.ndarray, neg_mask: np.ndarray, values: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(shadow, example, signal, is-positive) for the True cells of two [N, m] masks, positives first."""
    pos_s, pos_e = np.nonzero(pos_mask)
    neg_s, neg_e = np.nonzero(neg_mask)
    shadows, examples = np.concatenate([pos_s, neg_s]), np.concatenate([pos_e, neg_e])
    labels = np.concatenate([np.ones(len(pos_s), bool), np.zeros(len(neg_s), bool)])
    return shadows, examples, values[shadows, examples].astype(float), labels


def _has_partner(pairs: np.ndarray) -> np.ndarray:
    return np.bincount(pairs)[pairs] > 1


def _shuffle_within_examples(labels: np.ndarray, examples: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grouped = np.lexsort((np.arange(len(examples)), examples))
    shuffled = np.lexsort((rng.random(len(examples)), examples))
    out = np.empty_like(labels)
    out[grouped] = labels[shuffled]
    return out


def ulira_attack(phi: np.ndarray, in_forget: np.ndarray, in_half: np.ndarray, variance: str = "global",
                 min_count: int = 3, fpr: float = 0.01, shuffle_seed: int | None = None,
                 pairs: np.ndarray | None = None) -> AttackResult:
    """The held-out-pair per-example attack on an [N, pool] matrix of unlearned-shadow signals.

    Targets come in matched pairs: for a complementary pair of shadows (i, i') and an example x that i forgot,
    the positive is (i, x) and the negative is (i', x) -- the same example under the partner shadow, which
    never saw it. Both are scored with Gaussians fitted on the shadows outside that pair only (``pairs[i]``,
    default ``i // 2`` as :func:`harness.training.shadow_bank.shadow_halves` builds them), so under no leakage a positive
    and its negative face the same fit with identically distributed signals, and the balanced accuracy is 50
    in expectation. Leaving out only shadow i would bias it: x is in exactly one half of every pair, so
    dropping i alone removes an IN observation of x for a positive and an OUT one for a negative, and the side
    fitted from more observations wins (measured: a retrained reference scored 6-30% on digits). Unmatched
    negatives (x outside H_i but kept, not forgotten, by i's partner) are left out for the same reason: their
    fit has one IN observation more. ``shuffle_seed`` permutes the IN/OUT labels of the fitting observations
    within each example: a control that must drive the attack to chance.
    """
    n = phi.shape[0]
    pairs = np.arange(n) // 2 if pairs is None else np.asarray(pairs)
    audited = np.flatnonzero(in_forget.any(0))  # examples some shadow forgets: the attack's targets
    values = phi[:, audited]
    forget, outside = in_forget[:, audited], ~in_half[:, audited]
    partner_forgot = np.zeros_like(forget)
    for i in range(n):
        partners = np.flatnonzero((pairs == pairs[i]) & (np.arange(n) != i))
        if len(partners):
            partner_forgot[i] = forget[partners].any(0)
    matched_pos = forget & _has_partner(pairs)[:, None]
    o_s, o_e, o_v, o_l = _labelled(forget, outside, values)  # every observation, for the fits
    fit_labels = o_l if shuffle_seed is None else _shuffle_within_examples(o_l, o_e, shuffle_seed)
    t_s, t_e, t_v, t_l = _labelled(matched_pos, outside & partner_forgot, values)
    score = np.zeros(len(t_v))
    n_in = np.zeros(len(t_v), int)
    n_out = np.zeros(len(t_v), int)
    m = len(audited)
    for i in range(n):
        keep = pairs[o_s] != pairs[i]
        sel_in, sel_out = keep & fit_labels, keep & ~fit_labels
        mu_in, var_in, c_in = fit_example_gaussians(o_v[sel_in], o_e[sel_in], m, variance, min_count)
        mu_out, var_out, c_out = fit_example_gaussians(o_v[sel_out], o_e[sel_out], m, variance, min_count)
        target = t_s == i
        e = t_e[target]
        score[target] = (normal_logpdf(t_v[target], mu_in[e], var_in[e])
                         - normal_logpdf(t_v[target], mu_out[e], var_out[e]))
        n_in[target], n_out[target] = c_in[e], c_out[e]
    summary = summarize_attack(score, t_l, fpr)
    examples = pd.DataFrame({"shadow": t_s.astype(np.int32), "pair": pairs[t_s].astype(np.int32),
                             "example": audited[t_e].astype(np.int64),
                             "label": t_l.astype(np.int8), "phi": t_v.astype(np.float32),
                             "score": score.astype(np.float32), "n_in": n_in.astype(np.int32),
                             "n_out": n_out.astype(np.int32)})
    return AttackResult(summary.accuracy, summary.auc, summary.tpr_at_fpr, examples)


def pool_signals(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """[len(models), len(x)] logit-scaled confidences."""
    return np.stack([logit_confidence(predict_logits(m, x), y).numpy() for m in models])


@dataclass(frozen=True)
class BankRuns:
    """The method under test run on every shadow original of a bank (its *audit runs*), as signals and costs.

    One set of runs serves every per-method evaluator (U-LiRA, KLoM, the consistency check, ...): each costs no
    method run of its own.
    """

    phi: np.ndarray  # [N, train] logit-scaled confidences of the unlearned shadows on the suite's train set
    phi_test: np.ndarray  # [N, test] the same on the test set
    cpu_seconds: np.ndarray  # [N] CPU time of each run (NaN for references, which run no method)
    wall_seconds: np.ndarray  # [N]


# Audit runs per job: a method's N runs on a bank are split into jobs of this many shadows, so a pool spreads them
# over every core (a slot that starts late still finds work) and a job stays short. Each part is cached on its
# own; the assembled bank of runs is identical however the parts were split (each run has its own seed).
AUDIT_RUNS_PER_JOB = 8


def audit_parts(n: int, size: int = AUDIT_RUNS_PER_JOB) -> list[tuple[int, int]]:
    """The [start, stop) ranges of shadow indices, one per audit job."""
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def run_audit_part(ctx: EvalContext, bank: ShadowBank, lo: int, hi: int) -> dict:
    """The method's runs on shadows ``lo..hi-1`` (cached): their signals and costs."""
    data = ctx.data
    key = cache_key(runs=ctx.method_runs_key(bank.key), shadows=[lo, hi])

    def compute() -> dict:
        done = [ctx.unlearn(s.original.model, torch.as_tensor(s.forget), torch.as_tensor(s.retain),
                            stable_seed("shadow-unlearn", s.index) % (2**31), original_key=s.original.key)
                for s in bank.shadows[lo:hi]]
        models = [d.model for d in done]
        return {"phi": torch.from_numpy(pool_signals(models, data.train_x, data.train_y)),
                "phi_test": torch.from_numpy(pool_signals(models, data.test_x, data.test_y)),
                "cpu_seconds": torch.tensor([d.cpu_seconds for d in done], dtype=torch.float64),
                "wall_seconds": torch.tensor([d.wall_seconds for d in done], dtype=torch.float64)}

    return ctx.cache.get_or_compute("ulira-unlearned-part", key, compute,
                                    parts={"method": ctx.method.name, "scenario": bank.scenario.name,
                                           "shadows": f"{lo}-{hi}"})


def prepare_audit_part(ctx: EvalContext, lo: int, hi: int) -> None:
    """One audit job: the method under test on shadows ``lo..hi-1`` of the scenario's bank."""
    if ctx.method is None or ctx.method.name == ORACLE_METHOD:
        return
    bank = shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo)
    if not ctx.cache.exists("ulira-unlearned", ctx.method_runs_key(bank.key)):  # assembled already: nothing to run
        run_audit_part(ctx, bank, lo, hi)


def method_bank_runs(ctx: EvalContext, bank: ShadowBank) -> BankRuns:
    """Run the method under test on every shadow (cached per method configuration and bank)."""
    spec = ctx.method
    if spec.name == ORACLE_METHOD:  # the reference's "unlearned" shadows are the retrained counterparts
        nan = np.full(len(bank), math.nan)
        return BankRuns(bank_signals(ctx, bank, "retrained"), bank_signals(ctx, bank, "retrained", "test"), nan, nan)
    key = ctx.method_runs_key(bank.key)

    def compute() -> dict:
        parts = [run_audit_part(ctx, bank, lo, hi) for lo, hi in audit_parts(len(bank))]
        return {name: torch.cat([p[name] for p in parts]) for name in ("phi", "phi_test", "cpu_seconds",
                                                                         "wall_seconds")}

    payload = ctx.cache.get_or_compute("ulira-unlearned", key, compute, tally=False,  # the parts count the runs
                                       parts={"method": spec.name, "scenario": bank.scenario.name})
    return BankRuns(payload["phi"].numpy(), payload["phi_test"].numpy(), payload["cpu_seconds"].numpy(),
                    payload["wall_seconds"].numpy())


def unlearned_shadow_signals(ctx: EvalContext, bank: ShadowBank) -> tuple[np.ndarray, float]:
    """The audit runs' signals on the train set and their total wall seconds (see :func:`method_bank_runs`)."""
    runs = method_bank_runs(ctx, bank)
    return runs.phi, float(np.nansum(runs.wall_seconds))


def bank_signals(ctx: EvalContext, bank: ShadowBank, role: str, part: str = "train") -> np.ndarray:
    """[N, n] signals of the bank's 'original' or 'retrained' models on the train or test set (memoised)."""
    memo_key = ("ulira-bank-phi", bank.key, role, part)
    if memo_key not in ctx.memo:
        x, y = (ctx.data.train_x, ctx.data.train_y) if part == "train" else (ctx.data.test_x, ctx.data.test_y)

        def compute() -> torch.Tensor:
            logits = bank.logits(role, x, part)
            return torch.from_numpy(np.stack([logit_confidence(z, y).numpy() for z in logits]))

        # In the artifact cache too: every method's prepare job reads the same bank signals, and the first process
        # to need them predicts 2N models on the pool (~1 s of CPU per scenario on fmnist-quick).
        key = cache_key(bank=bank.key, role=role, part=part, version=EVALUATION_VERSION)
        ctx.memo[memo_key] = ctx.cache.get_or_compute("bank-signals", key, compute, tally=False,
                                                      parts={"scenario": bank.scenario.name, "role": role}).numpy()
    return ctx.memo[memo_key]


def write_examples(ctx: EvalContext, name: str, frame: pd.DataFrame) -> None:
    """Per-example scores as a side table beside the run rows (not read as runs)."""
    if ctx.results_root is not None:
        write_side_table(ctx.results_root, ctx.suite.name, name, frame)


def per_method_result(ctx: EvalContext, evaluator: str, bank: ShadowBank, options: dict,
                      compute: Callable[[], dict]) -> dict:
    """A per-method evaluator's result, computed once per (method configuration, bank, options) in the cache.

    ``compute`` returns ``{"metrics": {...}, "tables": {name: DataFrame}}``. The prepare job computes it next to
    the audit runs; every seed's row (in any worker) then only loads it. Side tables are written beside the rows
    of the results folder being filled whenever they are missing there, so a warm cache still fills a new folder.
    """
    key = cache_key(runs=ctx.method_runs_key(bank.key), evaluator=evaluator, options=options,
                    version=EVALUATION_VERSION)
    memo_key = ("per-method-result", key)
    if memo_key not in ctx.memo:
        ctx.memo[memo_key] = ctx.cache.get_or_compute(f"{evaluator}-result", key, compute,
                                                      parts={"method": ctx.method.name,
                                                             "scenario": bank.scenario.name}, tally=False)
    result = ctx.memo[memo_key]
    if ctx.results_root is not None:
        for name, table in result.get("tables", {}).items():
            if not examples_path(ctx.results_root, ctx.suite.name, name).is_file():
                write_side_table(ctx.results_root, ctx.suite.name, name, table)
    return dict(result["metrics"])


def _boot_metric(name: str, description: str) -> list[MetricInfo]:
    return [MetricInfo(f"{name}_boot_{end}", f"{description}: {end} end of the 95% bootstrap interval over shadow pairs",
                       direction="info") for end in ("lo", "hi")]


def prepare_bank_runs(ctx: EvalContext) -> None:
    """Run the method on every shadow now (cached), so the runs of every seed only read the result; every
    per-method evaluator that reads the audit runs shares this step."""
    if ctx.method is not None:
        method_bank_runs(ctx, shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo))


def prepare_ulira(ctx: EvalContext) -> None:
    """The audit runs, then the attack on them (cached): a seed's row only loads the result."""
    if ctx.method is not None:
        evaluate_ulira(None, ctx)


@register_evaluator("ulira", per_method=True, needs=("shadow-bank",), options=DEFAULTS, prepare=prepare_ulira,
                    metrics=[
    MetricInfo("ulira_acc", "U-LiRA balanced accuracy, forgotten vs never-seen examples under the same unlearned "
               "shadows (the retrain reference's value is the floor)", reconstructed=True, privacy=True, axis="privacy"),
    MetricInfo("ulira_auc", "U-LiRA ROC AUC (forgotten vs never seen)", reconstructed=True, privacy=True),
    MetricInfo("ulira_tpr_1fpr", "U-LiRA true-positive rate at 1% false-positive rate", reconstructed=True, privacy=True),
    *_boot_metric("ulira_acc", "U-LiRA accuracy"),
    *_boot_metric("ulira_auc", "U-LiRA AUC"),
    MetricInfo("ulira_shuffle_acc", "U-LiRA accuracy with membership labels shuffled within examples (a control: "
               "must be near 50)", direction="info"),
    MetricInfo("ulira_n_shadows", "number of shadow models behind the U-LiRA values", direction="info",
               unit="count"),
])
def evaluate_ulira(model: nn.Module | None, ctx: EvalContext) -> dict[str, float]:
    """Scores ``ctx.method`` through its runs on the shadow bank; ``model`` (one seed's output) is not used."""
    del model
    if ctx.method is None:
        return {}
    opts = ctx.options("ulira")
    bank = shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo)
    chash = config_hash(ctx.method.name, ctx.hparams)

    def compute() -> dict:
        phi, _ = unlearned_shadow_signals(ctx, bank)
        attack = lambda shuffle=None: ulira_attack(phi, bank.in_forget, bank.in_half, opts["variance"],
                                                   int(opts["min_count"]), float(opts["fpr"]), shuffle)
        result = attack()
        table = result.examples
        draws = shadow_bootstrap(table["score"].to_numpy(), table["label"].to_numpy(), table["pair"].to_numpy(),
                                 int(opts["bootstrap"]))
        acc_lo, acc_hi = percentile_interval(draws["accuracy"])
        auc_lo, auc_hi = percentile_interval(draws["auc"])
        metrics = {"ulira_acc": result.accuracy, "ulira_auc": result.auc, "ulira_tpr_1fpr": result.tpr_at_fpr,
                   "ulira_acc_boot_lo": acc_lo, "ulira_acc_boot_hi": acc_hi, "ulira_auc_boot_lo": auc_lo,
                   "ulira_auc_boot_hi": auc_hi,
                   "ulira_shuffle_acc": attack(stable_seed("ulira-shuffle") % 2**31).accuracy,
                   "ulira_n_shadows": float(len(bank))}
        return {"metrics": metrics, "tables": {f"ulira-{ctx.split.scenario.name}-{ctx.method.name}-{chash}": table}}

    return per_method_result(ctx, "ulira", bank, opts, compute)
