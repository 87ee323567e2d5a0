"""The KLoM bank: N originals, N held-out retrains and M reference oracles sharing ONE forget set per scenario.

KLoM (:mod:`harness.evaluate.klom`) compares, per example, the distribution of margins of N unlearned models
with that of M oracles retrained without the *same* forget set, so every model of the bank must share it.

Bank seeds ``v_0 .. v_{N-1}`` are the suite's seeds first, then fixed extra seeds when N exceeds them:

* originals: the suite's original for seed ``v_i`` (full pool, init seed ``v_i``). Originals do not depend on
  the scenario, so for ``v_i`` among the suite's seeds they are the models the suite already trained;
* the forget set: class scenarios forget the class, which does not depend on the seed (``harness.splits``),
  so it is the suite's own split; random scenarios draw one fixed split under a name outside the suite's seeds
  (``<suite>/klom``): the suite's per-seed splits differ, and the shadow bank trains on halves with a
  forget set per shadow, so neither gives N models that forgot the same examples;
* held-out retrains: one per bank seed, trained on the retain set with init seed ``v_i`` (as the suite's
  oracle 0: it differs from original ``v_i`` only in the data it never saw). They are the retrain reference's
  "unlearned" side, which gives its measured floor; they are never among the references;
* references: M oracles on the retain set; reference ``j`` uses bank seed ``v_{j mod N}`` and oracle index
  ``k = 1 + j // N`` (init seed :func:`harness.artifacts.oracle_seed`), independent of every original.

In a class scenario with N <= S seeds and M <= N (K - 1) every model is one the suite trains anyway (same
cache keys: the bank costs nothing); a random scenario costs N + M retrains on its fixed split. A method
costs N runs per scenario (one per original), cached by configuration like U-LiRA's shadow runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from harness.artifacts import TrainedModel, model_key, oracle_key, oracle_seed, train_cached_many
from harness.cache import ArtifactCache, cache_key
from harness.splits import Scenario, Split, make_split, stable_seed
from harness.suite import Suite, SuiteData

# Defaults of the [evaluate.klom] options that shape the bank (the evaluator holds the others).
DEFAULT_MODELS = 5
DEFAULT_REFERENCES = 10


@dataclass(frozen=True)
class BankSettings:
    models: int  # N: originals, unlearned runs per method, held-out retrains
    references: int  # M: reference oracles

    def __post_init__(self) -> None:
        if self.models < 2:
            raise ValueError(f"models must be >= 2 (a distribution of unlearned margins), got "
                             f"{self.models}")
        if self.references < 2:
            raise ValueError(f"references must be >= 2 (a distribution of oracle margins), got "
                             f"{self.references}")


def bank_settings(options: dict) -> BankSettings:
    """N and M from the evaluator's options; errors name the option."""
    values = {}
    for name in ("models", "references"):
        value = options.get(name)
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004 - a suite-file error
        values[name] = value
    return BankSettings(values["models"], values["references"])


def bank_seeds(suite: Suite, n: int) -> list[int]:
    """The suite's seeds first (their originals exist already), then fixed extra seeds."""
    seeds = list(suite.seeds[:n])
    i = 0
    while len(seeds) < n:
        extra = stable_seed("klom-original", i) % (2**31)
        if extra not in seeds:
            seeds.append(extra)
        i += 1
    return seeds


def bank_split(suite: Suite, data: SuiteData, scenario: Scenario) -> Split:
    """The forget set every model of the bank shares (see the module docstring)."""
    if scenario.kind == "class":
        return make_split(suite.name, scenario, 0, data.train_y, data.test_y)
    return make_split(f"{suite.name}/klom", scenario, 0, data.train_y, data.test_y)


def _reference_plan(seeds: list[int], m: int) -> list[tuple[int, int]]:
    """(bank seed, oracle index >= 1) of each reference oracle."""
    return [(seeds[j % len(seeds)], 1 + j // len(seeds)) for j in range(m)]


@dataclass
class KlomBank:
    """The bank of one (suite, scenario): models load (or train) on first use, through the artifact cache."""

    suite: Suite
    data: SuiteData
    cache: ArtifactCache
    device: torch.device
    split: Split
    seeds: list[int]
    references_plan: list[tuple[int, int]]

    @property
    def scenario(self) -> Scenario:
        return self.split.scenario

    def _at_seed(self, seed: int) -> Split:
        # oracle_seed() reads the split's seed: index 0 -> the bank seed itself, k >= 1 -> independent retrains.
        return dataclasses.replace(self.split, seed=seed)

    @property
    def original_keys(self) -> list[str]:
        return [model_key(self.suite, self.data, "original", torch.arange(len(self.data.train_y)), s)
                for s in self.seeds]

    @property
    def held_out_keys(self) -> list[str]:
        return [oracle_key(self.suite, self.data, self._at_seed(s), 0) for s in self.seeds]

    @property
    def reference_keys(self) -> list[str]:
        return [oracle_key(self.suite, self.data, self._at_seed(s), k) for s, k in self.references_plan]

    @property
    def key(self) -> str:
        """Hash of every model of the bank and the shared forget set."""
        return cache_key(kind="klom-bank", split=self.split.hash, originals=self.original_keys,
                         held_out=self.held_out_keys, references=self.reference_keys)

    def originals(self) -> list[TrainedModel]:
        pool = torch.arange(len(self.data.train_y))
        return train_cached_many(self.suite, self.data, self.cache, "original", [pool] * len(self.seeds),
                                 self.seeds, self.device)

    def held_out(self) -> list[TrainedModel]:
        return self._oracles([(s, 0) for s in self.seeds])

    def references(self) -> list[TrainedModel]:
        return self._oracles(self.references_plan)

    def _oracles(self, plan: list[tuple[int, int]]) -> list[TrainedModel]:
        # the suite's oracles by key (get_oracle's role, retain set and seeds); missing ones train together
        seeds = [oracle_seed(self._at_seed(s), k) for s, k in plan]
        return train_cached_many(self.suite, self.data, self.cache, "oracle", [self.split.retain] * len(plan), seeds,
                                 self.device)


def klom_bank(suite: Suite, data: SuiteData, cache: ArtifactCache, scenario: Scenario, device: torch.device,
              settings: BankSettings, memo: dict | None = None) -> KlomBank:
    """The bank of ``scenario`` (memoised per process in ``memo``); nothing trains until a model is used."""
    memo_key = ("klom-bank", suite.name, data.fingerprint, scenario.name, settings, suite.definition_hash)
    if memo is not None and memo_key in memo:
        return memo[memo_key]
    seeds = bank_seeds(suite, settings.models)
    bank = KlomBank(suite, data, cache, device, bank_split(suite, data, scenario), seeds,
                    _reference_plan(seeds, settings.references))
    if memo is not None:
        memo[memo_key] = bank
    return bank
