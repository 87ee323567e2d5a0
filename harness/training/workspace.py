"""The workspace: a suite with its data loaded, the artifact cache and the device, as one object.

Everything that trains or loads one of a suite's models (an original, an oracle, a shadow) needs exactly these
four, and so do the contexts of a run and of an evaluator; they travel together as a :class:`Workspace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.protocol.suite import Suite, SuiteData
from harness.training.cache import ArtifactCache


@dataclass(frozen=True)
class Workspace:
    """Where a suite's models are trained and kept in this process."""

    suite: Suite
    data: SuiteData  # the suite's train pool and test set, loaded
    cache: ArtifactCache
    device: torch.device


class InWorkspace:
    """For a context that holds a ``workspace``: its suite, data, cache and device, read through it."""

    workspace: Workspace

    @property
    def suite(self) -> Suite:
        return self.workspace.suite

    @property
    def data(self) -> SuiteData:
        return self.workspace.data

    @property
    def cache(self) -> ArtifactCache:
        return self.workspace.cache

    @property
    def device(self) -> torch.device:
        return self.workspace.device
