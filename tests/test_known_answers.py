"""Every evaluator on constructed models whose outputs are known, so direction, orientation and magnitude
of each metric are checked against answers computed by hand (a sign or direction bug fails here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from harness.evaluate import EvalContext, get_evaluator
from harness.evaluate.mia_nn import member_rate, neighbour_classes
from harness.evaluate.rmia import rmia_aucs
from harness.protocol.splits import Scenario, Split
from harness.protocol.suite import SuiteData, load_suite
from harness.training.workspace import Workspace

CPU = torch.device("cpu")


class TableModel(nn.Module):
    """Logits looked up by the example id that the constructed inputs carry in their only pixel."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(logits.float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.flatten(1)[:, 0].long()]


def logits_from_probs(probs: np.ndarray) -> torch.Tensor:
    return torch.log(torch.as_tensor(probs, dtype=torch.float64))


def world(train_y: list[int], test_y: list[int], forget: list[int], kind: str = "random",
          forget_class: int | None = None) -> tuple[SuiteData, Split]:
    """Train examples have ids 0..n-1, test examples n..n+m-1 (an id is the input's single pixel)."""
    n, m = len(train_y), len(test_y)
    data = SuiteData(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.tensor(train_y),
                     torch.arange(n, n + m, dtype=torch.float32).view(m, 1, 1, 1), torch.tensor(test_y),
                     max(train_y + test_y) + 1, "constructed")
    retain = [i for i in range(n) if i not in forget]
    if kind == "class":
        test_forget = [i for i, y in enumerate(test_y) if y == forget_class]
        test_retain = [i for i, y in enumerate(test_y) if y != forget_class]
        scenario = Scenario("class", float(forget_class))
    else:
        test_forget, test_retain, scenario = [], list(range(m)), Scenario("random", 10.0)
    as_t = lambda v: torch.as_tensor(v, dtype=torch.long)
    return data, Split(scenario, 0, as_t(forget), as_t(retain), as_t(test_retain), as_t(test_forget))


def context(data: SuiteData, split: Split, oracles: list[nn.Module] = ()) -> EvalContext:
    suite = load_suite("digits-smoke")  # only its (default) evaluator settings are read
    return EvalContext(Workspace(suite, data, None, CPU), split, 0, None, list(oracles))


def evaluate(name: str, model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    return get_evaluator(name).fn(model, ctx)


# ---------------------------------------------------------------------------------------------- accuracy
def test_accuracy_counts_each_set_separately():
    # 8 train examples (forget = 0..3), 4 test examples; labels all 0, two classes
    data, split = world([0] * 8, [0] * 4, forget=[0, 1, 2, 3])
    right, wrong = [4.0, 0.0], [0.0, 4.0]
    table = [right, right, right, wrong,  # forget: 3 of 4 right
             right, right, right, right,  # retain: all right
             right, wrong, wrong, wrong]  # test: 1 of 4 right
    metrics = evaluate("accuracy", TableModel(torch.tensor(table)), context(data, split))
    assert metrics == {"forget_acc": 75.0, "retain_acc": 100.0, "test_acc": 25.0}


def test_accuracy_class_scenario_splits_test_by_class():
    data, split = world([0, 0, 1, 1], [0, 1, 1, 0], forget=[0, 1], kind="class", forget_class=0)
    says_one = [0.0, 3.0]
    metrics = evaluate("accuracy", TableModel(torch.tensor([says_one] * 8)), context(data, split))
    assert metrics["forget_acc"] == 0.0 and metrics["retain_acc"] == 100.0
    assert metrics["test_acc"] == 100.0 and metrics["test_forget_acc"] == 0.0


# ------------------------------------------------------------------------------------------ KL and TV
def test_kl_is_oracle_first_and_tv_is_half_l1():
    data, split = world([0, 0, 0, 0], [0], forget=[0, 1])
    oracle = TableModel(logits_from_probs(np.tile([0.9, 0.1], (5, 1))))
    model = TableModel(logits_from_probs(np.tile([0.5, 0.5], (5, 1))))
    metrics = evaluate("distribution", model, context(data, split, [oracle]))
    kl_oracle_first = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # 0.368; the other way: 0.511
    assert metrics["kl_forget"] == pytest.approx(kl_oracle_first, abs=1e-6)
    assert metrics["tv_forget"] == pytest.approx(0.4, abs=1e-6)


def test_distances_average_over_the_oracles():
    data, split = world([0, 0, 0, 0], [0], forget=[0, 1])
    model = TableModel(logits_from_probs(np.tile([0.5, 0.5], (5, 1))))
    oracles = [TableModel(logits_from_probs(np.tile(p, (5, 1)))) for p in ([0.9, 0.1], [0.7, 0.3])]
    metrics = evaluate("distribution", model, context(data, split, oracles))
    assert metrics["tv_forget"] == pytest.approx((0.4 + 0.2) / 2, abs=1e-6)


# ----------------------------------------------------------------------------------------- SalUn MIA
def _salun_world(forget_conf: list[float]) -> tuple[TableModel, EvalContext]:
    """Retain examples are confident (members), test examples are not (non-members)."""
    n_retain, n_test = 40, 40
    forget = list(range(len(forget_conf)))
    n = len(forget) + n_retain
    data, split = world([0] * n, [0] * n_test, forget=forget)
    conf = np.r_[forget_conf, np.linspace(0.95, 0.999, n_retain), np.linspace(0.2, 0.45, n_test)]
    return TableModel(logits_from_probs(np.c_[conf, 1 - conf])), context(data, split)


def test_salun_mia_is_the_share_of_the_forget_set_called_non_member():
    assert evaluate("salun_mia", *_salun_world([0.99, 0.98, 0.97, 0.99]))["salun_mia"] == 0.0
    assert evaluate("salun_mia", *_salun_world([0.3, 0.25, 0.4, 0.35]))["salun_mia"] == 100.0
    assert evaluate("salun_mia", *_salun_world([0.99, 0.98, 0.97, 0.3]))["salun_mia"] == 25.0


# ---------------------------------------------------------------------------------------------- RMIA
def test_rmia_aucs_label_forget_as_positive():
    data, split = world([0] * 10, [0] * 4, forget=[0, 1, 2, 3])
    scores = np.r_[[0.9, 0.8, 0.95, 0.85], [0.5] * 6, [0.1, 0.2, 0.15, 0.05]]  # forget > retain > test
    aucs = rmia_aucs(scores, split, n_train=10)
    assert aucs == {"rmia_ft_auc": 100.0, "rmia_fr_auc": 0.0, "rmia_rt_auc": 100.0}


def test_rmia_class_scenario_compares_the_forget_class_with_its_test_images():
    data, split = world([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], forget=[0, 1, 2], kind="class", forget_class=0)
    # forget-class test images score above its train images; other classes' test images score lowest
    scores = np.r_[[0.4, 0.5, 0.45], [0.9] * 3, [0.7, 0.8, 0.75], [0.0] * 3]
    aucs = rmia_aucs(scores, split, n_train=6)
    assert aucs == {"rmia_ft_auc": 0.0}  # no retain comparisons in class scenarios


# -------------------------------------------------------------------------------------------- MIA-NN
def test_neighbour_class_is_the_most_probable_other_class():
    probs = np.zeros((2, 3, 4))
    probs[..., 2] = 0.6  # forget class 0 images: retrained models prefer class 2, then 3
    probs[..., 3] = 0.3
    probs[..., 1] = 0.1
    assert neighbour_classes(logits_from_probs(probs + 1e-9), forget_class=0, m=2) == [2, 3]


def test_member_rate_calls_train_like_outputs_members():
    rng = np.random.default_rng(0)
    train_f, test_f = rng.normal(1, 0.05, (50, 2)), rng.normal(-1, 0.05, (50, 2))
    like_train, like_test = rng.normal(1, 0.05, (10, 2)), rng.normal(-1, 0.05, (10, 2))
    assert member_rate(train_f, test_f, [like_train, like_test], 3.0, "auto") == [100.0, 0.0]


# --------------------------------------------------------------------- the shadow-pair bootstrap
def test_cluster_bootstrap_equals_recomputing_on_the_resampled_data():
    """Re-weighting clusters must give exactly what rebuilding each resample and scoring it gives."""
    from sklearn.metrics import roc_auc_score

    from harness.core.attack_stats import shadow_bootstrap

    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 4, 600)
    labels = rng.random(600) < 0.5
    scores = rng.normal(0, 1, 600) + 0.8 * labels + 0.3 * clusters
    scores[:40] = np.round(scores[:40])  # some ties
    draws = shadow_bootstrap(scores, labels, clusters, n_boot=25, seed=3)
    resamples = np.random.default_rng(3).integers(0, 4, size=(25, 4))
    for b, chosen in enumerate(resamples):
        rows = np.concatenate([np.flatnonzero(clusters == c) for c in chosen])
        y, s = labels[rows], scores[rows]
        pred = s > 0
        assert draws["accuracy"][b] == pytest.approx(50 * (pred[y].mean() + (~pred[~y]).mean()))
        assert draws["auc"][b] == pytest.approx(100 * roc_auc_score(y, s))
