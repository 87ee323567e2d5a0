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
