"""Shared fixtures: a tiny digits world with a trained original and oracle, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness.artifacts import get_oracle, get_original
from harness.cache import ArtifactCache
from harness.execution import build_task
from harness.registry import MethodSpec
from harness.splits import Split, make_split, parse_scenario
from harness.suite import Suite, SuiteData, load_suite
from harness.task import UnlearningTask

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

    def task(self, spec: MethodSpec, seed: int = 0) -> UnlearningTask:
        return build_task(spec, self.original, self.data.train_x, self.data.train_y, self.split.forget,
                          self.split.retain, self.data.num_classes, self.split.scenario.kind,
                          self.split.scenario.forget_class, torch.device("cpu"), seed,
                          self.suite.unlearn_augment, self.suite.model)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def digits_suite() -> Suite:
    return load_suite("digits-smoke")


def _world(suite: Suite, cache: ArtifactCache, scenario: str, seed: int = 0) -> World:
    data = suite.load_data()
    split = make_split(suite.name, parse_scenario(scenario), seed, data.train_y, data.test_y)
    device = torch.device("cpu")
    original = get_original(suite, data, cache, seed, device).model
    oracle = get_oracle(suite, data, cache, split, device).model
    return World(suite, data, split, original, oracle, cache)


@pytest.fixture(scope="session")
def digits_random(digits_suite, session_cache) -> World:
    """digits-smoke, scenario random-10, seed 0."""
    return _world(digits_suite, session_cache, "random-10")


@pytest.fixture(scope="session")
def digits_class(digits_suite, session_cache) -> World:
    """digits-smoke, scenario class-3, seed 0."""
    return _world(digits_suite, session_cache, "class-3")


@pytest.fixture
def run_dirs(tmp_path) -> tuple[Path, Path]:
    """(results folder, cache folder) private to one test."""
    return tmp_path / "results", tmp_path / "cache"
