"""The training helpers a method uses: batches, optimisers, the training loop, predictions, frozen copies.

The public face of :mod:`harness.training.loop` (the loop the harness trains every model with), so a method
fine-tunes the way originals and oracles are trained. Import from here; the implementation module is internal.
"""

from __future__ import annotations

from harness.training.loop import (
    Batch,
    StepHook,
    accuracy,
    augment_batch,
    batches,
    clone_model,
    cross_entropy_loss,
    fit,
    frozen_copy,
    make_scheduler,
    mean_tv,
    optimize,
    predict_logits,
    seeded_generator,
    sgd,
    softmax_outputs,
)

__all__ = ["Batch", "StepHook", "accuracy", "augment_batch", "batches", "clone_model", "cross_entropy_loss", "fit",
           "frozen_copy", "make_scheduler", "mean_tv", "optimize", "predict_logits", "seeded_generator", "sgd",
           "softmax_outputs"]
