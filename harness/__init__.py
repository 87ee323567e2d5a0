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
    "MethodSpec": "harness.protocol.methods", "PluginError": "harness.protocol.methods",
    "register_method": "harness.protocol.methods", "register_variant": "harness.protocol.methods",
    "TensorData": "harness.api.task", "UnlearningTask": "harness.api.task",
    "Choice": "harness.protocol.search_space", "IntRange": "harness.protocol.search_space",
    "LogUniform": "harness.protocol.search_space", "Uniform": "harness.protocol.search_space",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
