"""An evaluator plugin: a loss-threshold membership attack, registered as the built-in evaluators are.

Load it with ``unlearn-bench run --suite S --evaluator-plugin examples/my_attack.py`` (or list it in the suite:
``plugins = ["my_attack.py"]``) and name it in ``[evaluate] evaluators``. It runs in the harness process, not in
the method sandbox: it is your own code, not a submission. Its metric declares a direction, the scenario kinds
where it can vary and ``axis = "privacy"``, so the leaderboard judges it against the retrain floor like any
built-in attack (docs/write_a_method.md, "Write an evaluator").
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from harness.api.training import predict_logits
from harness.evaluate import EvalContext, MetricInfo, register_evaluator


def per_example_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    logits = predict_logits(model, x).double()
    return torch.nn.functional.cross_entropy(logits, y.cpu(), reduction="none").numpy()


@register_evaluator("loss_mia", options={"max_examples": 500}, metrics=[
    MetricInfo("loss_mia_auc", "AUC (%) of telling forget examples from unseen test examples by a low loss",
               direction="match-oracle", scenarios=("random", "class"), privacy=True, axis="privacy"),
])
def evaluate_loss_mia(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    n = int(ctx.options("loss_mia")["max_examples"])
    data, split = ctx.data, ctx.split
    forget = split.forget[:n]
    test = (split.test_forget if split.scenario.forgets_class else split.test_retain)[:n]
    members = -per_example_loss(model, data.train_x[forget], data.train_y[forget])  # higher: more member-like
    unseen = -per_example_loss(model, data.test_x[test], data.test_y[test])
    labels = np.r_[np.ones(len(members)), np.zeros(len(unseen))]
    return {"loss_mia_auc": float(100.0 * roc_auc_score(labels, np.r_[members, unseen]))}
