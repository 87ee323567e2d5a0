"""A plugin (tests only) that ignores the original and retrains from scratch on the retain set: exact unlearning
at the price of retraining, which a compute budget must exclude."""

from __future__ import annotations

from harness.train import cross_entropy_loss, fit, sgd

from harness import register_method


@register_method("fresh-retrain", scenarios=("random", "class"), needs_retain=True)
def fresh_retrain(task, *, epochs: int = 15, lr: float = 0.05):
    """A new model trained on the retain set with the digits-smoke recipe."""
    model = task.fresh_model(1)
    return fit(model, sgd(model, lr), epochs, lambda _: task.retain_loader(64, shuffle=True), cross_entropy_loss)
