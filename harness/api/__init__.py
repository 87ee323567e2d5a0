"""The public API: what a method (a baseline, a seed method, a plugin) imports. docs/write_a_method.md.

* :mod:`harness` itself: ``register_method``, ``register_variant``, ``MethodSpec``, ``PluginError``,
  ``UnlearningTask``, ``TensorData`` and the search-space types (``LogUniform``, ``Uniform``, ``IntRange``,
  ``Choice``), loaded on first use so ``import harness`` stays torch-free; this package re-exports them too;
* :mod:`harness.api.training`: batches, optimisers, the training loop (``fit``, ``optimize``), predictions;
* :mod:`harness.api.blocks`: building blocks of unlearning methods (saliency masks, relabelling, distillation,
  batch pairing);
* :mod:`harness.api.task`: the task a method receives.

Everything else under ``harness/`` is the harness's own implementation and may change without notice;
tests/test_architecture.py keeps the built-in methods on this API.
"""

from __future__ import annotations

from harness.api.task import TensorData, UnlearningTask
from harness.protocol.methods import MethodSpec, PluginError, register_method, register_variant
from harness.protocol.search_space import Choice, IntRange, LogUniform, Uniform

__all__ = ["Choice", "IntRange", "LogUniform", "MethodSpec", "PluginError", "TensorData", "Uniform",
           "UnlearningTask", "register_method", "register_variant"]
