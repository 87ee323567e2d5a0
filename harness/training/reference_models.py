"""Cached training artifacts: originals (their seed's pool, harness/protocol/splits.py) and oracles (retain set only).

Both use the suite's recipe and the same initialisation seed, so an oracle differs from its original
only in the data it never saw. Cache keys hash everything that determines the weights.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from torch import nn

from harness.protocol.architectures import build_model
from harness.protocol.splits import Split, hash_indices, stable_seed
from harness.protocol.suite import Suite, SuiteData
from harness.training.batched import train_models
from harness.training.cache import cache_key
from harness.training.loop import TRAINER_VERSION, train_model, warm_up
from harness.training.workspace import Workspace


@dataclass
class TrainedModel:
    model: nn.Module
    key: str
    train_seconds: float  # wall
    # CPU seconds of the training process (the compute budget's denominator: load-independent, unlike wall);
    # artifacts stored before it was recorded fall back to their wall seconds
    train_cpu_seconds: float = float("nan")

    @property
    def cost_seconds(self) -> float:
        return self.train_cpu_seconds if self.train_cpu_seconds == self.train_cpu_seconds else self.train_seconds


def model_key(suite: Suite, data: SuiteData, role: str, train_positions: torch.Tensor, seed: int) -> str:
    return cache_key(role=role, dataset=data.fingerprint, model=suite.model, recipe=suite.recipe.as_dict(),
                     train=hash_indices(train_positions), seed=seed, trainer=TRAINER_VERSION)


def _payload(model: nn.Module, seconds: float, cpu_seconds: float) -> dict:
    """What the cache stores for a trained model: its weights on the CPU and the (wall, CPU) seconds it took."""
    return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "train_seconds": seconds,
            "train_cpu_seconds": cpu_seconds}


def _trained(model: nn.Module, key: str, payload: dict) -> TrainedModel:
    return TrainedModel(model, key, float(payload["train_seconds"]),
                        float(payload.get("train_cpu_seconds", float("nan"))))


def train_cached(ws: Workspace, role: str, train_positions: torch.Tensor, seed: int) -> TrainedModel:
    """Train (or load) a model on ``train_positions`` of the suite's train pool."""
    suite, data, cache, device = ws.suite, ws.data, ws.cache, ws.device
    key = model_key(suite, data, role, train_positions, seed)

    def compute() -> dict:
        model = build_model(suite.model, data.input_shape, data.num_classes, seed=seed)
        warm_up()
        start, cpu = time.perf_counter(), time.process_time()
        train_model(model, data.train_x[train_positions], data.train_y[train_positions], suite.recipe, seed, device)
        return _payload(model, time.perf_counter() - start, time.process_time() - cpu)

    payload = cache.get_or_compute(role, key, compute, parts={"suite": suite.name, "role": role, "seed": seed})
    model = build_model(suite.model, data.input_shape, data.num_classes)
    model.load_state_dict(payload["state"])
    return _trained(model.to(device).eval(), key, payload)


def train_cached_many(ws: Workspace, role: str, positions: list[torch.Tensor], seeds: list[int],
                      mode: str = "auto") -> list[TrainedModel]:
    """Several models of one role, as :func:`train_cached` gives them one by one; the ones not yet cached and
    with equal-sized training sets train together (:func:`harness.training.batched.train_models`, batched where its
    measured rule says it pays: on a GPU). Batched weights equal sequential ones to rounding, not bit for bit.
    """
    suite, data, cache, device = ws.suite, ws.data, ws.cache, ws.device
    keys = [model_key(suite, data, role, p, s) for p, s in zip(positions, seeds)]
    missing = [i for i, key in enumerate(keys) if not cache.exists(role, key)]
    by_size: dict[int, list[int]] = {}
    for i in missing:
        by_size.setdefault(len(positions[i]), []).append(i)
    trained: dict[int, TrainedModel] = {}
    for group in (g for g in by_size.values() if len(g) > 1):
        with contextlib.ExitStack() as locks:
            for i in sorted(group, key=lambda i: keys[i]):  # one lock order: no deadlock with other workers
                locks.enter_context(cache.lock(role, keys[i]))
            group = [i for i in group if not cache.exists(role, keys[i])]  # another worker may have finished
            if len(group) < 2:
                continue
            models = [build_model(suite.model, data.input_shape, data.num_classes, seed=seeds[i]) for i in group]
            warm_up()
            start, cpu = time.perf_counter(), time.process_time()
            train_models(models, [(data.train_x[positions[i]], data.train_y[positions[i]]) for i in group],
                         suite.recipe, [seeds[i] for i in group], device, mode)
            seconds = (time.perf_counter() - start) / len(group)
            cpu_seconds = (time.process_time() - cpu) / len(group)
            for i, model in zip(group, models):
                payload = _payload(model, seconds, cpu_seconds)
                cache.save(role, keys[i], payload,
                           parts={"suite": suite.name, "role": role, "seed": seeds[i], "batched": True})
                cache.misses += 1  # trained here, as get_or_compute counts it
                trained[i] = _trained(model.to(device).eval(), keys[i], payload)
    return [trained[i] if i in trained else train_cached(ws, role, p, s)
            for i, (p, s) in enumerate(zip(positions, seeds))]


def get_original(ws: Workspace, seed: int) -> TrainedModel:
    return train_cached(ws, "original", ws.suite.original_positions(ws.data, seed), seed)


def oracle_seed(split: Split, index: int) -> int:
    """Initialisation seed of oracle ``index``: oracle 0 shares the original's seed (it differs from the original
    only in the data it never saw); the others are independent retrains of the same retain set."""
    return split.seed if index == 0 else stable_seed("oracle", index, split.seed) % (2**31)


def get_oracle(ws: Workspace, split: Split, index: int = 0) -> TrainedModel:
    return train_cached(ws, "oracle", split.retain, oracle_seed(split, index))


def oracle_key(suite: Suite, data: SuiteData, split: Split, index: int = 0) -> str:
    return model_key(suite, data, "oracle", split.retain, oracle_seed(split, index))
