"""Two methods whose verdicts are known in advance, for the leaderboard statistics tests.

``stats-noop`` returns the original untouched (a no-op); ``stats-retrain`` retrains a freshly initialised
model on the retain set with the suite's recipe: an independent retrain, so its gap is the noise floor's.
"""

from __future__ import annotations

import torch
from torch import nn

from harness import UnlearningTask, register_method
from harness.training.loop import Recipe, train_model


@register_method("stats-noop", scenarios=("random", "class"), needs_retain=False,
                 source="tests/suites/stats_methods.py: returns the original (tests)")
def stats_noop(task: UnlearningTask) -> nn.Module:
    """Does nothing."""
    return task.model


@register_method("stats-retrain", scenarios=("random", "class"), needs_retain=True,
                 source="tests/suites/stats_methods.py: an independent retrain (tests)")
def stats_retrain(task: UnlearningTask, *, epochs: int = 8, lr: float = 0.05, batch_size: int = 64) -> nn.Module:
    """Retrain from a fresh initialisation (a seed no oracle uses) with the stats-digits recipe."""
    seed = 1000 + int(torch.randint(0, 1000, (1,), generator=task.generator))
    model = task.fresh_model(seed)
    recipe = Recipe(epochs=epochs, lr=lr, batch_size=batch_size, schedule="cosine")
    return train_model(model, task.retain.x, task.retain.y, recipe, seed, task.device)
