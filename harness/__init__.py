"""unlearn-bench: a benchmark leaderboard harness for machine unlearning in image classification.

The public API (:mod:`harness.api`, docs/write_a_method.md): the names a method needs (``register_method``,
``register_variant``, ``UnlearningTask``, the search-space types, ...) are loaded from here on first use, so
``import harness`` itself stays light (reading results must not import torch); :mod:`harness.api.training` and
:mod:`harness.api.blocks` hold the training helpers and building blocks. The layers beneath are internal
(docs/architecture.md).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from harness.core.version import HARNESS_VERSION

__version__ = HARNESS_VERSION
# The old flat layout's module paths (harness.train, harness.registry, ...) stay importable: harness/_compat/.
__path__.append(os.path.join(os.path.dirname(__file__), "_compat"))
_LAZY = {
    "MethodSpec": "harness.spec.methods", "PluginError": "harness.spec.methods",
    "register_method": "harness.spec.methods", "register_variant": "harness.spec.methods",
    "TensorData": "harness.api.task", "UnlearningTask": "harness.api.task",
    "Choice": "harness.spec.search_space", "IntRange": "harness.spec.search_space",
    "LogUniform": "harness.spec.search_space", "Uniform": "harness.spec.search_space",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
