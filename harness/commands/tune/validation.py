"""The validation suite a suite is tuned on: nothing the leaderboard scores is ever read.

Derived from the suite (same dataset, model, recipe, K oracles, evaluators' options and fixed settings) with
three substitutions:

* **seeds**: validation seeds, disjoint from the suite's (default 1000, 1001, ...), so originals, oracles and
  random forget sets differ from the scored ones;
* **class scenarios**: each forget class becomes the next ``classes`` classes the suite does not forget
  (class-0 -> class-1 and class-2 on fmnist-quick), because a class split does not depend on the seed; more
  than one, so that a setting is not chosen for one class's geometry (one validation class picked settings
  for gradient ascent that collapsed on the scored class); **sub-class scenarios** likewise, with the next
  fine classes (cyclically) that share a coarse group with others and that the suite does not forget;
  difficulty scenarios (``memorised-P-T``, ``entangled-P-T``) stay as they are: their forget sets are seeded
  draws from a tier, and the tiers come from the validation suite's own shadow originals;
* **the test set**: class-balanced *train* images outside the suite's train subset, as many as the suite's
  test subset. A suite that trains on the whole train split has no such images: its validation test set is
  carved out of its train pool (and that pool shrinks accordingly). The test split itself is never read.

Only the evaluators that feed the headlines (``avg_gap``, ``avg_gap_rmia``; harness/protocol/scoring.py) run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from harness.evaluate import get_evaluator
from harness.protocol.datasets import load_dataset, stratified_subset
from harness.protocol.scoring import HEADLINES, SCENARIO_KINDS
from harness.protocol.splits import Scenario, hash_indices, parse_scenario
from harness.protocol.suite import Suite, SuiteData, coarse_map, normalized

DEFAULT_FIRST_SEED = 1000
DEFAULT_CLASSES = 2  # validation forget classes per scored class scenario
HOLDOUT_SEED = 12345  # picks the held-out images; fixed so every method is tuned on the same validation data


@dataclass(frozen=True)
class ValidationSuite(Suite):
    """A suite whose ``load_data`` returns the validation pool and the held-out "test" images."""

    source: str = ""  # the tuned suite's name
    holdout: int = 0  # size of the validation test set
    carved: bool = False  # True: the validation test set was carved out of the train pool
    _memo: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def load_data(self, root: str | None = None) -> SuiteData:
        key = root or self.data_root
        if key not in self._memo:
            self._memo[key] = validation_data(self, root or self.data_root)
        return self._memo[key]

    def describe(self) -> str:
        where = ("carved out of the train pool (the suite trains on the whole train split)" if self.carved
                 else "train images outside the suite's train subset")
        return (f"{self.source} validation: {', '.join(self.scenarios)} x seeds "
                f"{','.join(map(str, self.seeds))}; 'test' = {self.holdout} class-balanced {where}")


def holdout_size(suite: Suite, test_count: int) -> int:
    """The validation test set's size: the suite's test subset (or its whole test split's size)."""
    return int(suite.test_subset or test_count)


def validation_data(suite: ValidationSuite, root: str | None) -> SuiteData:
    """The validation train pool and held-out test images; reads only the train split's contents."""
    arrays = load_dataset(suite.dataset, root)
    labels = arrays.train_y
    used = stratified_subset(labels, suite.train_subset, suite.subset_seed)
    unused = torch.ones(len(labels), dtype=torch.bool)
    unused[used] = False
    outside = torch.nonzero(unused).squeeze(1)
    if not suite.carved:
        picked = outside[stratified_subset(labels[outside], suite.holdout, HOLDOUT_SEED)]
        pool = used
    else:  # carve the held-out images out of the train pool itself
        chosen = stratified_subset(labels[used], suite.holdout, HOLDOUT_SEED)
        keep = torch.ones(len(used), dtype=torch.bool)
        keep[chosen] = False
        picked, pool = used[chosen], used[keep]
    fingerprint = f"{arrays.fingerprint}-validation-{hash_indices(pool, picked)}"
    if not suite.groups:
        return normalized(SuiteData(arrays.train_x[pool], labels[pool], arrays.train_x[picked], labels[picked],
                                    arrays.num_classes, fingerprint), suite.normalize)
    coarse = coarse_map(suite.groups, arrays.num_classes, suite.source)
    return normalized(SuiteData(arrays.train_x[pool], coarse[labels[pool]], arrays.train_x[picked],
                                coarse[labels[picked]], len(suite.groups),
                                f"{fingerprint}-groups{hash_indices(coarse)}", labels[pool], labels[picked]),
                      suite.normalize)


def validation_seeds(suite: Suite, count: int, first: int = DEFAULT_FIRST_SEED) -> list[int]:
    """``count`` seeds from ``first`` on that the suite does not use."""
    taken = set(suite.seeds)
    seeds, candidate = [], first
    while len(seeds) < count:
        if candidate not in taken:
            seeds.append(candidate)
        candidate += 1
    return seeds


def validation_scenarios(scenario: Scenario, taken: set[int], num_classes: int, classes: int,
                         eligible: set[int] | None = None) -> list[Scenario]:
    """The scenarios tuned in place of ``scenario``: a random or difficulty one as it is; a class (sub-class)
    scenario replaced by the next ``classes`` (fine) classes (cyclically) not in ``taken`` (which the caller
    extends) and, where given, in ``eligible``."""
    if not scenario.forgets_class:
        return [scenario]
    picked: list[Scenario] = []
    for step in range(1, num_classes):
        candidate = (int(scenario.value) + step) % num_classes
        if candidate not in taken and (eligible is None or candidate in eligible):
            taken.add(candidate)
            picked.append(Scenario(scenario.kind, float(candidate)))
            if len(picked) == classes:
                return picked
    if picked:
        return picked  # fewer classes are left than asked for: validate on those
    raise ValueError(f"no class is left to validate {scenario.name} on: the suite forgets every class")


def headline_evaluators(suite: Suite) -> list[str]:
    """The suite's evaluators that compute a term of a headline in some scenario kind (the rest are skipped)."""
    terms = {t for by_kind in HEADLINES.values() for kind_terms in by_kind.values() for t in kind_terms}
    keep = []
    for name in suite.evaluators:
        evaluator = get_evaluator(name)
        if any(m.name in terms for kind in SCENARIO_KINDS for m in evaluator.metrics_for(kind)):
            keep.append(name)
    return keep


def make_validation_suite(suite: Suite, seeds: list[int], num_classes: int, test_count: int,
                          train_count: int, classes: int = DEFAULT_CLASSES) -> ValidationSuite:
    """The validation suite of ``suite`` (see the module docstring); ``*_count`` are the dataset's sizes."""
    clash = sorted(set(seeds) & set(suite.seeds))
    if clash:
        raise ValueError(f"validation seeds {clash} are seeds of suite {suite.name}: tuning must not see them")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"validation seeds must be distinct, got {seeds}")
    if classes < 1:
        raise ValueError(f"at least one validation class per class scenario is needed, got {classes}")
    parsed = [parse_scenario(s, num_classes) for s in suite.scenarios]
    taken = {int(s.value) for s in parsed if s.kind == "class"}
    taken_fine = {int(s.value) for s in parsed if s.kind == "subclass"}
    # a fine class can be forgotten as a sub-class only inside a group with others
    shared = {c for g in suite.groups if len(g) > 1 for c in g}
    scenarios = tuple(v.name for s in parsed for v in (
        validation_scenarios(s, taken_fine, num_classes, classes, shared) if s.kind == "subclass"
        else validation_scenarios(s, taken, len(suite.groups) or num_classes, classes)))
    size = holdout_size(suite, test_count)
    pool = suite.train_subset or train_count
    carved = suite.train_subset is None or train_count - pool < size
    if carved:
        size = min(size, pool // 2)  # a held-out set larger than half the pool would starve training
    evaluate = {**suite.evaluate, "evaluators": headline_evaluators(suite)}
    fields = {f.name: getattr(suite, f.name) for f in dataclasses.fields(Suite)}
    fields.update(name=f"{suite.name}-validation", seeds=tuple(seeds), scenarios=scenarios, evaluate=evaluate,
                  path="", methods=())
    return ValidationSuite(**fields, source=suite.name, holdout=size, carved=carved)
