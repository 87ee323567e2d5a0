"""The shadow bank: extra models the per-example attacks (U-LiRA, MIA-NN, RMIA) need, trained once per suite.

Shadow ``i`` trains on a random half ``H_i`` of the suite's train set. Halves come in complementary pairs
(shadow 2k and 2k+1 split the set between them, stratified by class), so every example is a member of
half of the shadows, as in LiRA (a class with an odd count leaves one example out of both halves of a pair). The halves and the initialisation seeds do not depend on the
scenario, so the shadow *originals* are shared by every scenario (and are RMIA's reference models).

Per scenario, shadow ``i`` also gets a forget set ``F_i`` inside its half (random: the same forget fraction
of the half; class: the class's samples in the half) and a retrained counterpart trained on ``H_i \\ F_i``.
Every model goes through :func:`harness.training.reference_models.train_cached`, so the bank costs its training once per
cache and evaluating a new method costs only the N runs of that method on the shadows.

Random scenarios draw the shadow forget sets from a fixed *audit set* ``A`` (``audit_factor`` times the
forget size of a half), so each audited example is forgotten by several shadows: per-example statistics
need repeated observations, which uniformly drawn 5% forget sets would almost never give at N = 8..64.
Marginally each ``F_i`` is still a uniform random subset of ``H_i`` of the right size. ``audit_factor = 0``
draws forget sets from the whole half (:func:`harness.protocol.splits.sample_forget_within`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from harness.protocol.architectures import build_model
from harness.protocol.splits import (
    Scenario,
    hash_indices,
    sample_forget_within,
    stable_seed,
    stratified_halves,
)
from harness.protocol.suite import Suite, SuiteData
from harness.training.batched import choose_mode
from harness.training.cache import cache_key
from harness.training.loop import predict_logits
from harness.training.reference_models import TrainedModel, train_cached, train_cached_many
from harness.training.workspace import Workspace

DEFAULT_SHADOWS = 8
DEFAULT_AUDIT_FACTOR = 2.5


def shadow_count(suite: Suite) -> int:
    """N from the suite's ``[evaluate]`` table (``shadow_models``); at least 2 (halves come in pairs)."""
    n = int(suite.evaluate.get("shadow_models", DEFAULT_SHADOWS))
    if n < 2:
        raise ValueError(f"suite {suite.name}: [evaluate] shadow_models must be >= 2, got {n}")
    return n


def shadow_halves(train_y: torch.Tensor, n: int) -> list[np.ndarray]:
    """N training halves: complementary pairs, each split stratified by class; scenario-independent.

    Every half has exactly ``count // 2`` examples of each class (:func:`harness.protocol.splits.stratified_halves`), the
    same as a scored original's pool when the suite's ``pool = "half"``: audit tasks then have the scored tasks'
    sizes and class counts. Equal-sized training sets can also train batched (:mod:`harness.training.batched`).
    """
    halves: list[np.ndarray] = []
    for pair in range((n + 1) // 2):
        halves += list(stratified_halves(train_y, np.random.default_rng(stable_seed("shadow-half", pair))))
    return halves[:n]


def shadow_seed(index: int) -> int:
    return stable_seed("shadow-init", index) % (2**31)


def audit_set(scenario: Scenario, train_y: torch.Tensor, n_pool: int, factor: float) -> np.ndarray | None:
    """The examples random-scenario shadow forget sets are drawn from (None: the whole half)."""
    if scenario.kind != "random" or factor <= 0:
        return None
    n_forget_half = max(1, round(n_pool / 2 * scenario.value / 100.0))
    size = min(n_pool, round(factor * n_forget_half))
    rng = np.random.default_rng(stable_seed("shadow-audit", scenario.name))
    return np.sort(rng.permutation(n_pool)[:size])


def forget_within(half: np.ndarray, scenario: Scenario, train_y: torch.Tensor, index: int,
                  audit: np.ndarray | None) -> np.ndarray:
    """Shadow ``index``'s forget set inside its half (see the module docstring for the audit set)."""
    rng = np.random.default_rng(stable_seed("shadow-forget", scenario.name, index))
    if audit is None:
        return sample_forget_within(half, scenario, train_y, rng, len(half))
    n_forget = max(1, round(len(half) * scenario.value / 100.0))
    candidates = np.intersect1d(half, audit)
    if len(candidates) >= n_forget:
        return np.sort(rng.choice(candidates, size=n_forget, replace=False))
    # Rare: the half holds too few audited examples; top up from the rest of the half.
    rest = rng.choice(np.setdiff1d(half, candidates), size=n_forget - len(candidates), replace=False)
    return np.sort(np.concatenate([candidates, rest]))


@dataclass
class Shadow:
    """One shadow: its half, its forget set (per scenario), its original and retrained counterpart.

    The retrained counterpart is trained (or loaded) on first use: running a method on the shadows needs only
    the originals, so those jobs do not wait for the retrained models.
    """

    index: int
    half: np.ndarray
    forget: np.ndarray
    original: TrainedModel
    _train_retrained: Callable[[], TrainedModel] = field(repr=False)
    _retrained: TrainedModel | None = field(default=None, repr=False)

    @property
    def retain(self) -> np.ndarray:
        return np.setdiff1d(self.half, self.forget, assume_unique=True)

    @property
    def retrained(self) -> TrainedModel:
        if self._retrained is None:
            self._retrained = self._train_retrained()
        return self._retrained


@dataclass
class ShadowBank:
    """N shadows for one (suite, scenario), with membership matrices over the train pool."""

    scenario: Scenario
    shadows: list[Shadow]
    n_pool: int
    audit: np.ndarray | None
    key: str
    _logits: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.shadows)

    def _membership(self, positions: str) -> np.ndarray:
        """[N, pool] True where the example is in shadow i's ``positions`` ('half' or 'forget')."""
        out = np.zeros((len(self), self.n_pool), dtype=bool)
        for i, s in enumerate(self.shadows):
            out[i, getattr(s, positions)] = True
        return out

    @cached_property
    def in_half(self) -> np.ndarray:
        """[N, pool] True where the example is in shadow i's half (the original trained on it)."""
        return self._membership("half")

    @cached_property
    def in_forget(self) -> np.ndarray:
        """[N, pool] True where the example is in shadow i's forget set."""
        return self._membership("forget")

    @property
    def seen_by_retrained(self) -> np.ndarray:
        """[N, pool] True where shadow i's retrained counterpart trained on the example."""
        return self.in_half & ~self.in_forget

    def logits(self, role: str, x: torch.Tensor, tag: str) -> torch.Tensor:
        """[N, len(x), C] logits of every shadow's ``role`` model ('original' | 'retrained') on ``x``."""
        key = (role, tag)
        if key not in self._logits:
            self._logits[key] = torch.stack([predict_logits(getattr(s, role).model, x) for s in self.shadows])
        return self._logits[key]


def shadow_original(ws: Workspace, index: int) -> TrainedModel:
    """Shadow ``index``'s original (trained on its half)."""
    half = shadow_halves(ws.data.strata, shadow_count(ws.suite))[index]
    return train_cached(ws, "shadow-original", torch.as_tensor(half, dtype=torch.long), shadow_seed(index))


def shadow_retrained(ws: Workspace, half: np.ndarray, forget: np.ndarray, index: int) -> TrainedModel:
    """Shadow ``index``'s retrained counterpart: trained from scratch on its half minus its forget set."""
    retain = torch.as_tensor(np.setdiff1d(half, forget, assume_unique=True), dtype=torch.long)
    return train_cached(ws, "shadow-retrained", retain, shadow_seed(index))


def train_shadow_retrained(ws: Workspace, scenario: Scenario, index: int) -> TrainedModel:
    """Shadow ``index``'s retrained counterpart for ``scenario``, without building the rest of the bank."""
    suite, data = ws.suite, ws.data
    n = shadow_count(suite)
    factor = audit_factor_of(suite)
    half = shadow_halves(data.strata, n)[index]
    forget = forget_within(half, scenario, data.train_y, index, audit_set(scenario, data.train_y, len(data.train_y),
                                                                           factor))
    return shadow_retrained(ws, half, forget, index)


def train_shadow_batch(ws: Workspace, scenario: Scenario | None, indices: list[int]) -> None:
    """Train (or load) several shadows at once: their originals (``scenario`` None) or their retrained
    counterparts for ``scenario``, batched where :func:`shadow_batching` says so."""
    suite, data = ws.suite, ws.data
    n = shadow_count(suite)
    halves = shadow_halves(data.strata, n)
    if scenario is None:
        sets = [halves[i] for i in indices]
        role = "shadow-original"
    else:
        audit = audit_set(scenario, data.train_y, len(data.train_y), audit_factor_of(suite))
        sets = [np.setdiff1d(halves[i], forget_within(halves[i], scenario, data.train_y, i, audit),
                             assume_unique=True) for i in indices]
        role = "shadow-retrained"
    train_cached_many(ws, role, [torch.as_tensor(p, dtype=torch.long) for p in sets], [shadow_seed(i) for i in indices])


def shadow_batching(suite: Suite, data: SuiteData, device: torch.device) -> bool:
    """Whether the bank's models train batched on ``device`` (the measured rule of :mod:`harness.training.batched`)."""
    halves = shadow_halves(data.strata, 2)
    models = [build_model(suite.model, data.input_shape, data.num_classes, seed=shadow_seed(i)) for i in range(2)]
    datasets = [(data.train_x[h], data.train_y[h]) for h in halves]
    return choose_mode(models, datasets, suite.recipe, device) == "batched"


def audit_factor_of(suite: Suite) -> float:
    return float(suite.evaluate.get("shadow_audit_factor", DEFAULT_AUDIT_FACTOR))


def _bank_key(data: SuiteData, suite: Suite, scenario: Scenario, n: int, factor: float) -> str:
    return cache_key(kind="shadow-bank", dataset=data.fingerprint, model=suite.model, recipe=suite.recipe.as_dict(),
                     scenario=scenario.name, n=n, audit_factor=factor)


def shadow_originals(ws: Workspace, n: int, memo: dict | None = None) -> list[tuple[np.ndarray, TrainedModel]]:
    """The N shadow originals (scenario-independent; RMIA's reference models)."""
    suite, data = ws.suite, ws.data
    memo_key = ("shadow-originals", data.fingerprint, suite.model, repr(suite.recipe.as_dict()), n)
    if memo is not None and memo_key in memo:
        return memo[memo_key]
    out = []
    for i, half in enumerate(shadow_halves(data.strata, n)):
        positions = torch.as_tensor(half, dtype=torch.long)
        out.append((half, train_cached(ws, "shadow-original", positions, shadow_seed(i))))
    if memo is not None:
        memo[memo_key] = out
    return out


def shadow_bank(ws: Workspace, scenario: Scenario, n: int | None = None, memo: dict | None = None,
                audit_factor: float | None = None) -> ShadowBank:
    """Build (or load from the cache) the shadow bank of ``scenario``; memoised per process in ``memo``."""
    suite, data = ws.suite, ws.data
    n = n or shadow_count(suite)
    factor = audit_factor_of(suite) if audit_factor is None else audit_factor
    key = _bank_key(data, suite, scenario, n, factor)
    if memo is not None and ("shadow-bank", key) in memo:
        return memo[("shadow-bank", key)]
    audit = audit_set(scenario, data.train_y, len(data.train_y), factor)
    shadows = []
    for i, (half, original) in enumerate(shadow_originals(ws, n, memo)):
        forget = forget_within(half, scenario, data.train_y, i, audit)
        shadows.append(Shadow(i, half, forget, original,
                              lambda i=i, half=half, forget=forget: shadow_retrained(ws, half, forget, i)))
    key = cache_key(bank=key, members=[hash_indices(torch.as_tensor(s.forget)) for s in shadows])
    bank = ShadowBank(scenario, shadows, len(data.train_y), audit, key)
    if memo is not None:
        memo[("shadow-bank", _bank_key(data, suite, scenario, n, factor))] = bank
    return bank
