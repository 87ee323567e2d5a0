"""Accuracy on the retain, forget and test sets (class scenarios: test split by remaining/forget class)."""

from __future__ import annotations

from torch import nn

from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.training.loop import accuracy


@register_evaluator("accuracy", metrics=[
    MetricInfo("forget_acc", "accuracy on the forget set (AMUN's 'Unlearn Acc')"),
    MetricInfo("retain_acc", "accuracy on the retain set"),
    MetricInfo("test_acc", "accuracy on the test set (class scenarios: remaining classes only)"),
    MetricInfo("test_forget_acc", "class scenarios: accuracy on test images of the forget class",
               scenarios=("class",)),
])
def evaluate_accuracy(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    data, split = ctx.data, ctx.split
    out = {
        "forget_acc": accuracy(model, data.train_x[split.forget], data.train_y[split.forget]),
        "retain_acc": accuracy(model, data.train_x[split.retain], data.train_y[split.retain]),
        "test_acc": accuracy(model, data.test_x[split.test_retain], data.test_y[split.test_retain]),
    }
    if split.scenario.kind == "class":
        out["test_forget_acc"] = accuracy(model, data.test_x[split.test_forget], data.test_y[split.test_forget])
    return out
