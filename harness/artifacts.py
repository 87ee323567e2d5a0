"""Cached training artifacts: originals (full train pool) and oracles (retain set only).

Both use the suite's recipe and the same initialisation seed, so an oracle differs from its original
only in the data it never saw. Cache keys hash everything that determines the weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from harness.cache import ArtifactCache, cache_key
from harness.models import build_model
from harness.splits import Split, hash_indices
from harness.suite import Suite, SuiteData
from harness.train import TRAINER_VERSION, train_model


@dataclass
class TrainedModel:
    model: nn.Module
    key: str
    train_seconds: float


def model_key(suite: Suite, data: SuiteData, role: str, train_positions: torch.Tensor, seed: int) -> str:
    return cache_key(role=role, dataset=data.fingerprint, model=suite.model, recipe=suite.recipe.as_dict(),
                     train=hash_indices(train_positions), seed=seed, trainer=TRAINER_VERSION)


def train_cached(suite: Suite, data: SuiteData, cache: ArtifactCache, role: str, train_positions: torch.Tensor,
                 seed: int, device: torch.device) -> TrainedModel:
    """Train (or load) a model on ``train_positions`` of the suite's train pool."""
    key = model_key(suite, data, role, train_positions, seed)

    def compute() -> dict:
        model = build_model(suite.model, data.input_shape, data.num_classes, seed=seed)
        start = time.perf_counter()
        train_model(model, data.train_x[train_positions], data.train_y[train_positions], suite.recipe, seed, device)
        seconds = time.perf_counter() - start
        return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "train_seconds": seconds}

    payload = cache.get_or_compute(role, key, compute, parts={"suite": suite.name, "role": role, "seed": seed})
    model = build_model(suite.model, data.input_shape, data.num_classes)
    model.load_state_dict(payload["state"])
    return TrainedModel(model.to(device).eval(), key, float(payload["train_seconds"]))


def get_original(suite: Suite, data: SuiteData, cache: ArtifactCache, seed: int, device: torch.device) -> TrainedModel:
    return train_cached(suite, data, cache, "original", torch.arange(len(data.train_y)), seed, device)


def get_oracle(suite: Suite, data: SuiteData, cache: ArtifactCache, split: Split, device: torch.device) -> TrainedModel:
    return train_cached(suite, data, cache, "oracle", split.retain, split.seed, device)
