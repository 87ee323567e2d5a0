"""A probe plugin (tests only): it returns the original unchanged and appends what it could observe about its
task to the JSON-lines file named by ``OBSERVER_LOG`` (run in-process, so the file is reachable)."""

from __future__ import annotations

import json
import os

import torch

from harness import register_method


def observations(task) -> dict:
    """Everything about the task a method could use to tell an audit run from a scored run, except content."""
    retain = task.retain
    return {"kind": task.scenario_kind, "forget_class": task.forget_class, "num_classes": task.num_classes,
            "augment": task.augment, "device": str(task.device),
            "forget_n": len(task.forget.y), "retain_n": len(retain.y),
            "forget_dtype": str(task.forget.x.dtype), "forget_shape": list(task.forget.x.shape[1:]),
            # the original's pool (forget + retain) per class; how a random forget set falls on classes varies
            "pool_counts": torch.bincount(torch.cat([task.forget.y, retain.y]), minlength=task.num_classes).tolist(),
            "forget_counts": torch.bincount(task.forget.y, minlength=task.num_classes).tolist(),
            "forget_sorted_labels": bool((task.forget.y.diff() >= 0).all()) if task.scenario_kind == "class" else None,
            "seed_bits": task.generator.initial_seed().bit_length(),
            "parameters": [list(p.shape) for p in task.model.parameters()],
            "requires_grad": all(p.requires_grad for p in task.model.parameters()),
            "training_mode": task.model.training}


@register_method("observer", scenarios=("random", "class"), needs_retain=True)
def observer(task):
    with open(os.environ["OBSERVER_LOG"], "a") as handle:
        handle.write(json.dumps(observations(task)) + "\n")
    return task.model
