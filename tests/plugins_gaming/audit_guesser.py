"""A cheating plugin (tests only): it works out which of its runs are scored and behaves differently there.

Everything it needs is inside the sandbox: scikit-learn ships the digits images, and the harness's source says
how a suite draws its pools. It recomputes the pools of the scored seeds and, when its task's retain images all
lie in one of them, does almost nothing (a short, leaky fine-tune); otherwise -- an audit run on a shadow model --
it retrains from scratch on the retain set, which the per-method attack cannot tell from retraining.
"""

from __future__ import annotations

import hashlib

import torch
from harness.data import load_digits
from harness.splits import original_pool
from harness.train import cross_entropy_loss, fit, sgd

from harness import register_method

_SCORED: list[set[bytes]] = []


def _digest(images: torch.Tensor) -> list[bytes]:
    return [hashlib.sha1(row.numpy().tobytes()).digest() for row in images.contiguous()]


def _scored_pools() -> list[set[bytes]]:
    if not _SCORED:
        data = load_digits()
        for suite in ("digits-smoke", "gaming-digits"):
            for seed in range(10):
                pool = original_pool(suite, "half", seed, data.train_y)
                _SCORED.append(set(_digest(data.train_x[pool])))
    return _SCORED


def looks_scored(retain: torch.Tensor) -> bool:
    mine = set(_digest(retain.cpu()))
    return any(mine <= pool for pool in _scored_pools())


@register_method("audit-guesser", scenarios=("random", "class"), needs_retain=True)
def audit_guesser(task, *, epochs: int = 15):
    """Leaky where it is scored, a fresh retrain where it is audited."""
    if looks_scored(task.retain.x):
        model = task.model
        return fit(model, sgd(model, 0.02), 1, lambda _: task.retain_loader(64), cross_entropy_loss)
    model = task.fresh_model(0)
    return fit(model, sgd(model, 0.05), epochs, lambda _: task.retain_loader(64), cross_entropy_loss)
