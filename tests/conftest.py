"""Shared fixtures: a tiny digits world with a trained original and oracle, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness.api.task import UnlearningTask
from harness.isolation.method_call import MethodRun, build_task
from harness.protocol.methods import MethodSpec
from harness.protocol.splits import Split
from harness.protocol.suite import Suite, SuiteData, load_suite
from harness.training.cache import ArtifactCache
from harness.training.reference_models import get_oracle, get_original
from harness.training.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class World:
    """A trained digits original/oracle for one scenario, and a way to build tasks on it."""

    suite: Suite
    data: SuiteData
    split: Split
    original: torch.nn.Module
    oracle: torch.nn.Module
    cache: ArtifactCache

    def run(self, spec: MethodSpec, hparams: dict | None = None, seed: int = 0,
            original_key: str | None = None) -> MethodRun:
        """A run of ``spec`` on this world's original, forget and retain sets (CPU)."""
        scenario = self.split.scenario
        return MethodRun.select(spec, {**spec.hparams, **(hparams or {})}, self.original, self.suite.model,
                                self.data.train_x, self.data.train_y, self.split.forget, self.split.retain,
                                num_classes=self.data.num_classes, scenario_kind=scenario.kind,
                                forget_class=scenario.forget_class, device=torch.device("cpu"), seed=seed,
                                augment=self.suite.unlearn_augment, original_key=original_key)

    def task(self, spec: MethodSpec, seed: int = 0) -> UnlearningTask:
        return build_task(self.run(spec, seed=seed))

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.suite, self.data, self.cache, torch.device("cpu"))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def digits_suite() -> Suite:
    return load_suite("digits-smoke")


def _world(suite: Suite, cache: ArtifactCache, scenario: str, seed: int = 0) -> World:
    data = suite.load_data()
    split = suite.split(data, scenario, seed)
    ws = Workspace(suite, data, cache, torch.device("cpu"))
    original = get_original(ws, seed).model
    oracle = get_oracle(ws, split).model
    return World(suite, data, split, original, oracle, cache)


@pytest.fixture(scope="session")
def digits_random(digits_suite, session_cache) -> World:
    """digits-smoke, scenario random-10, seed 0."""
    return _world(digits_suite, session_cache, "random-10")


@pytest.fixture(scope="session")
def digits_class(digits_suite, session_cache) -> World:
    """digits-smoke, scenario class-3, seed 0."""
    return _world(digits_suite, session_cache, "class-3")


@pytest.fixture(scope="session")
def fmnist_random(session_cache) -> World:
    """tests/suites/fmnist-tiny.toml, random-10, seed 0: the original gets ~89% of the forget set right (digits:
    100%), so a method that raises forget accuracy is caught."""
    from harness.protocol.datasets import DatasetNotFound

    try:
        return _world(load_suite(str(ROOT / "tests" / "suites" / "fmnist-tiny.toml")), session_cache, "random-10")
    except DatasetNotFound as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")


@pytest.fixture
def run_dirs(tmp_path) -> tuple[Path, Path]:
    """(results folder, cache folder) private to one test."""
    return tmp_path / "results", tmp_path / "cache"
