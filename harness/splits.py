"""Scenarios and deterministic forget/retain splits.

A split is a pure function of (suite name, scenario, seed) and the suite's train labels, so every
machine produces the same index sets; its hash is stored with every result.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import torch

_SCENARIO = re.compile(r"^(random)-(\d+(?:\.\d+)?)$|^(class)-(\d+)$")


@dataclass(frozen=True)
class Scenario:
    """What is forgotten: ``random-P`` (P percent of train) or ``class-K`` (every train sample of class K)."""

    kind: str  # "random" | "class"
    value: float  # percent for random, class index for class

    @property
    def name(self) -> str:
        if self.kind == "random":
            return f"random-{self.value:g}"
        return f"class-{int(self.value)}"

    @property
    def forget_class(self) -> int | None:
        return int(self.value) if self.kind == "class" else None


def parse_scenario(text: str, num_classes: int | None = None) -> Scenario:
    """Parse ``random-10`` or ``class-3``; errors name the allowed forms."""
    match = _SCENARIO.match(text.strip())
    if not match:
        raise ValueError(f"unknown scenario {text!r}: expected 'random-P' (0<P<100) or 'class-K'")
    if match.group(1):
        percent = float(match.group(2))
        if not 0 < percent < 100:
            raise ValueError(f"scenario {text!r}: percent must be in (0, 100)")
        return Scenario("random", percent)
    cls = int(match.group(4))
    if num_classes is not None and cls >= num_classes:
        raise ValueError(f"scenario {text!r}: class must be in 0..{num_classes - 1}")
    return Scenario("class", float(cls))


def stable_seed(*parts: object) -> int:
    """A 63-bit integer seed derived from the given parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def hash_indices(*arrays: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.asarray(array, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Positions into the suite's train pool and test set for one (scenario, seed)."""

    scenario: Scenario
    seed: int
    forget: torch.Tensor
    retain: torch.Tensor
    test_retain: torch.Tensor  # test positions of the remaining classes (all test data for random)
    test_forget: torch.Tensor  # test positions of the forget class (empty for random)

    @property
    def hash(self) -> str:
        return hash_indices(self.forget, self.retain, self.test_retain, self.test_forget)


def make_split(suite: str, scenario: Scenario, seed: int, train_y: torch.Tensor, test_y: torch.Tensor) -> Split:
    """Deterministic, disjoint forget/retain split of the train pool."""
    n = len(train_y)
    if scenario.kind == "random":
        rng = np.random.default_rng(stable_seed(suite, scenario.name, seed))
        n_forget = max(1, int(round(n * scenario.value / 100.0)))
        forget = np.sort(rng.permutation(n)[:n_forget])
        test_retain, test_forget = np.arange(len(test_y)), np.arange(0)
    else:
        cls = scenario.forget_class
        forget = np.flatnonzero(train_y.numpy() == cls)
        if len(forget) == 0:
            raise ValueError(f"scenario {scenario.name}: the train pool has no sample of class {cls}")
        test_forget = np.flatnonzero(test_y.numpy() == cls)
        test_retain = np.flatnonzero(test_y.numpy() != cls)
    mask = np.ones(n, dtype=bool)
    mask[forget] = False
    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64))
    return Split(scenario, seed, as_t(forget), as_t(np.flatnonzero(mask)), as_t(test_retain), as_t(test_forget))


def sample_forget_within(pool: np.ndarray, scenario: Scenario, train_y: torch.Tensor, rng: np.random.Generator,
                         reference_size: int) -> np.ndarray:
    """A forget set inside a subset ``pool`` of the train pool, following the scenario's rule.

    Random scenarios keep the same forget *fraction* of the pool; class scenarios take the class's samples
    in the pool. Used by shadow models, which train on random halves.
    """
    if scenario.kind == "class":
        return np.sort(pool[train_y.numpy()[pool] == scenario.forget_class])
    n_forget = max(1, int(round(len(pool) * scenario.value / 100.0)))
    del reference_size
    return np.sort(rng.choice(pool, size=n_forget, replace=False))
