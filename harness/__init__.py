"""unlearn-bench: a benchmark leaderboard harness for machine unlearning in image classification.

The names a method plugin needs (``register_method``, ``UnlearningTask``, the search-space types) are loaded on
first use, so ``import harness`` itself stays light (reading results must not import torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.version import HARNESS_VERSION

__version__ = HARNESS_VERSION
_LAZY = {
    "MethodSpec": "harness.registry", "register_method": "harness.registry",
    "TensorData": "harness.task", "UnlearningTask": "harness.task",
    "Choice": "harness.tune.space", "IntRange": "harness.tune.space", "LogUniform": "harness.tune.space",
    "Uniform": "harness.tune.space",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
