"""Scenarios, training pools and deterministic forget/retain splits.

A split is a pure function of (suite name, scenario, seed) and the suite's train labels, so every
machine produces the same index sets; its hash is stored with every result.

**Pools.** A suite's original of seed ``s`` trains on its *pool*: the whole train set (``pool = "all"``, the
papers' protocol) or a class-stratified random half of it (``pool = "half"``). Halves are what the shadow bank
trains on (:mod:`harness.training.shadow_bank`), so with ``half`` every task a method receives -- scored or audit -- has exactly
the same retain and forget sizes and class counts (:func:`stratified_halves`), and nothing the method can observe
tells the two apart (docs/reliability.md). The examples outside a pool are members of no model of that seed.

**Scenario kinds** (docs/scenarios.md): ``random-P`` and ``class-K``; ``memorised-P-T`` and ``entangled-P-T``
(P percent of the pool drawn from tier T = low / medium / high of a per-example difficulty score, which the
caller passes in: :mod:`harness.training.difficulty` computes it from the shadow bank's originals); and
``subclass-K`` (every example of fine class K, in a suite whose model predicts coarse groups of fine classes);
and ``sequential-SxP`` (S disjoint requests of P percent of the pool each, forgotten one after another: a split
per step s, whose ``forget`` is the union of requests 1..s, ``request`` request s and ``first`` request 1).
A kind's *family* is what a method is told and declares support for: ``class`` for class forgetting, ``random``
for every other kind (a set of examples is forgotten and no label disappears).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.core.registry import did_you_mean
from harness.protocol.scoring import SCENARIO_KINDS, SEQUENTIAL, kind_family

_PERCENT = r"(\d+(?:\.\d+)?)"
_SCENARIO = re.compile(rf"^(random)-{_PERCENT}$|^(class|subclass)-(\d+)$|^(memorised|entangled)-{_PERCENT}-(\w+)$"
                       rf"|^(sequential)-(\d+)x{_PERCENT}$")
SCENARIO_FORMS = ("'random-P' (0<P<100) or 'class-K', or one of 'subclass-K', 'memorised-P-T', 'entangled-P-T' "
                  "(T: low, medium, high), 'sequential-SxP' (S requests of P percent each)")
DIFFICULTY_KINDS = ("memorised", "entangled")  # forget sets chosen by a per-example score (harness/training/difficulty.py)
TIERS = ("low", "medium", "high")  # terciles of the pool's scores
KINDS = SCENARIO_KINDS  # every scenario kind, in the order documents list them


@dataclass(frozen=True)
class Scenario:
    """What is forgotten: ``random-P`` (P percent of the pool), ``class-K`` (every sample of class K),
    ``memorised-P-T`` / ``entangled-P-T`` (P percent drawn from difficulty tier T) or ``subclass-K`` (every
    sample of fine class K while the model predicts its coarse group)."""

    kind: str  # one of KINDS
    value: float  # percent for random, difficulty and sequential kinds (per request), class index for class,
    # fine class for subclass
    tier: str = ""  # difficulty kinds: one of TIERS
    steps: int = 0  # sequential: the number of requests S

    @property
    def name(self) -> str:
        if self.kind == SEQUENTIAL:
            return f"{SEQUENTIAL}-{self.steps}x{self.value:g}"
        if self.kind == "random":
            return f"random-{self.value:g}"
        if self.kind in DIFFICULTY_KINDS:
            return f"{self.kind}-{self.value:g}-{self.tier}"
        return f"{self.kind}-{int(self.value)}"

    @property
    def family(self) -> str:
        """What a method is told and declares support for: 'class' (a label disappears) or 'random'."""
        return kind_family(self.kind)

    @property
    def forgets_class(self) -> bool:
        """A whole (fine) class is forgotten, and its test images are the forget set's test counterpart."""
        return self.kind in ("class", "subclass")

    @property
    def forget_class(self) -> int | None:
        return int(self.value) if self.kind == "class" else None

    @property
    def forget_fine_class(self) -> int | None:
        return int(self.value) if self.kind == "subclass" else None


def parse_scenario(text: str, num_classes: int | None = None) -> Scenario:
    """Parse a scenario name (:data:`SCENARIO_FORMS`); errors name the allowed forms."""
    match = _SCENARIO.match(text.strip())
    if not match:
        raise ValueError(f"unknown scenario {text!r}: expected {SCENARIO_FORMS}")
    if match.group(8):
        steps, percent = int(match.group(9)), float(match.group(10))
        if steps < 1 or not 0 < percent < 100 or steps * percent >= 100:
            raise ValueError(f"scenario {text!r}: needs S >= 1 requests of P percent with 0 < S * P < 100")
        return Scenario(SEQUENTIAL, percent, steps=steps)
    if match.group(1) or match.group(5):
        percent = float(match.group(2) or match.group(6))
        if not 0 < percent < 100:
            raise ValueError(f"scenario {text!r}: percent must be in (0, 100)")
        if match.group(1):
            return Scenario("random", percent)
        tier = match.group(7)
        if tier not in TIERS:
            raise ValueError(f"scenario {text!r}: unknown tier {tier!r}{did_you_mean(tier, TIERS)}")
        if percent > 100 / len(TIERS):
            raise ValueError(f"scenario {text!r}: a tier is a third of the pool, so P must be at most 33.3")
        return Scenario(match.group(5), percent, tier)
    cls = int(match.group(4))
    if match.group(3) == "class" and num_classes is not None and cls >= num_classes:
        raise ValueError(f"scenario {text!r}: class must be in 0..{num_classes - 1}")
    return Scenario(match.group(3), float(cls))


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
    """Positions into the suite's train set and test set for one (scenario, seed)."""

    scenario: Scenario
    seed: int
    forget: torch.Tensor
    retain: torch.Tensor
    test_retain: torch.Tensor  # test positions of the remaining classes (all test data for random)
    test_forget: torch.Tensor  # test positions of the forget class (empty for random)
    # Train positions in no model of this seed (outside the original's pool); empty when the pool is everything.
    outside: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    # Sequential scenarios: the step s (1-based; None for every other kind), request s (what the method is given
    # to forget at this step: ``forget`` is the union of requests 1..s) and request 1 (the reversal measure's set)
    step: int | None = None
    request: torch.Tensor | None = None
    first: torch.Tensor | None = None

    @property
    def hash(self) -> str:
        # ``outside`` is the complement of forget and retain: hashing those already covers it
        if self.step is None:  # the other kinds' hashes stay as they were
            return hash_indices(self.forget, self.retain, self.test_retain, self.test_forget)
        return hash_indices(self.forget, self.retain, self.test_retain, self.test_forget, self.request,
                            torch.tensor([self.step]))

    @property
    def given(self) -> torch.Tensor:
        """The forget set a method receives: request s at a sequential step, else the whole forget set."""
        return self.forget if self.request is None else self.request

    @property
    def pool(self) -> torch.Tensor:
        """What the original trained on: forget and retain together, sorted."""
        return torch.sort(torch.cat([self.forget, self.retain])).values


POOLS = ("all", "half")


def stratified_halves(train_y: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint class-stratified random halves of the train set, each with exactly ``count // 2`` examples
    of every class: every half drawn this way has the same size and class counts (a class with an odd count
    leaves one random example out of both)."""
    y = np.asarray(train_y)
    first, second = [], []
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        half = len(members) // 2
        first.append(members[:half])
        second.append(members[half:2 * half])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def original_pool(suite: str, pool: str, seed: int, train_y: torch.Tensor) -> torch.Tensor:
    """The train positions the original of ``seed`` trains on (see the module docstring)."""
    if pool == "all":
        return torch.arange(len(train_y))
    if pool != "half":
        raise ValueError(f"unknown pool {pool!r}: expected one of {', '.join(POOLS)}")
    first, _ = stratified_halves(train_y, np.random.default_rng(stable_seed(suite, "pool-half", seed)))
    return torch.as_tensor(first, dtype=torch.int64)


def difficulty_tier(members: np.ndarray, scores: np.ndarray, tier: str) -> np.ndarray:
    """The members in tier ``tier`` of their scores: the low, medium or high third (ties broken by position,
    so the tiers are a pure function of the scores)."""
    order = members[np.lexsort((members, scores[members]))]  # ascending score, then position
    thirds = np.array_split(order, len(TIERS))
    return np.sort(thirds[TIERS.index(tier)])


def sequential_requests(suite: str, scenario: Scenario, seed: int, members: np.ndarray) -> list[np.ndarray]:
    """The S disjoint requests of a sequential scenario, each P percent of the pool (sorted positions): one seeded
    draw of S * n positions without replacement, cut into S consecutive parts (request s is the s-th part)."""
    n_request = max(1, round(len(members) * scenario.value / 100.0))
    rng = np.random.default_rng(stable_seed(suite, scenario.name, seed))
    drawn = rng.choice(members, n_request * scenario.steps, replace=False)
    return [np.sort(drawn[i * n_request:(i + 1) * n_request]) for i in range(scenario.steps)]


def make_split(suite: str, scenario: Scenario, seed: int, train_y: torch.Tensor, test_y: torch.Tensor,
               pool: torch.Tensor | None = None, scores: np.ndarray | None = None,
               fine: tuple[torch.Tensor, torch.Tensor] | None = None, step: int | None = None) -> Split:
    """Deterministic, disjoint forget/retain split of the original's ``pool`` (default: the whole train set).

    Difficulty kinds need ``scores`` (one per train position, higher = harder); ``subclass`` needs the fine
    labels of the train and test sets (``fine``); ``sequential`` needs the ``step`` (1..S): its forget set is
    the union of the first ``step`` requests, its retain set the pool without them."""
    n = len(train_y)
    members = np.arange(n) if pool is None else np.sort(np.asarray(pool, dtype=np.int64))
    test_retain, test_forget = np.arange(len(test_y)), np.arange(0)
    requests: list[np.ndarray] = []
    if (scenario.kind == SEQUENTIAL) != (step is not None):
        raise ValueError(f"scenario {scenario.name}: a step is given for sequential scenarios, and only for them")
    if scenario.kind == SEQUENTIAL:
        if not 1 <= step <= scenario.steps:
            raise ValueError(f"scenario {scenario.name}: step must be in 1..{scenario.steps}, got {step}")
        requests = sequential_requests(suite, scenario, seed, members)
        forget = np.sort(np.concatenate(requests[:step]))
    elif scenario.kind == "random":
        rng = np.random.default_rng(stable_seed(suite, scenario.name, seed))
        n_forget = max(1, int(round(len(members) * scenario.value / 100.0)))
        # the whole-set draw is kept as it was, so splits (and caches) of pool = "all" suites stay the same
        forget = np.sort(rng.permutation(n)[:n_forget] if pool is None else rng.choice(members, n_forget,
                                                                                        replace=False))
    elif scenario.kind in DIFFICULTY_KINDS:
        if scores is None or len(scores) != n:
            raise ValueError(f"scenario {scenario.name}: needs a {scenario.kind} score for every train example")
        tier = difficulty_tier(members, np.asarray(scores, dtype=np.float64), scenario.tier)
        n_forget = max(1, round(len(members) * scenario.value / 100.0))
        rng = np.random.default_rng(stable_seed(suite, scenario.name, seed))
        forget = np.sort(rng.choice(tier, min(n_forget, len(tier)), replace=False))
    elif scenario.kind == "subclass":
        if fine is None:
            raise ValueError(f"scenario {scenario.name}: the suite declares no [data] groups (sub-class "
                             "forgetting needs fine classes inside coarse labels)")
        cls = scenario.forget_fine_class
        train_fine, test_fine = (np.asarray(f) for f in fine)
        forget = members[train_fine[members] == cls]
        if len(forget) == 0:
            raise ValueError(f"scenario {scenario.name}: the train pool has no sample of fine class {cls}")
        test_forget = np.flatnonzero(test_fine == cls)
        test_retain = np.flatnonzero(test_fine != cls)
    else:
        cls = scenario.forget_class
        forget = members[train_y.numpy()[members] == cls]
        if len(forget) == 0:
            raise ValueError(f"scenario {scenario.name}: the train pool has no sample of class {cls}")
        test_forget = np.flatnonzero(test_y.numpy() == cls)
        test_retain = np.flatnonzero(test_y.numpy() != cls)
    mask = np.zeros(n, dtype=bool)
    mask[members] = True
    mask[forget] = False
    outside = np.ones(n, dtype=bool)
    outside[members] = False
    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64))
    sequential = {} if not requests else {"step": step, "request": as_t(requests[step - 1]),
                                          "first": as_t(requests[0])}
    return Split(scenario, seed, as_t(forget), as_t(np.flatnonzero(mask)), as_t(test_retain), as_t(test_forget),
                 as_t(np.flatnonzero(outside)), **sequential)


def sample_forget_within(pool: np.ndarray, scenario: Scenario, train_y: torch.Tensor, rng: np.random.Generator,
                         reference_size: int) -> np.ndarray:
    """A forget set inside a subset ``pool`` of the train pool, following the scenario's rule.

    Random scenarios keep the same forget *fraction* of the pool; class scenarios take the class's samples
    in the pool. Used by shadow models, which train on random halves.
    """
    if scenario.kind not in ("random", "class"):
        raise ValueError(f"scenario {scenario.name}: shadow forget sets are defined for random and class "
                         "scenarios only (the shadow-bank evaluators are hidden in the other kinds)")
    if scenario.kind == "class":
        return np.sort(pool[train_y.numpy()[pool] == scenario.forget_class])
    n_forget = max(1, int(round(len(pool) * scenario.value / 100.0)))
    del reference_size
    return np.sort(rng.choice(pool, size=n_forget, replace=False))
