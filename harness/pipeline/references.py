"""Reference rows: the untouched original and the retrained oracle, scored like any method."""

from __future__ import annotations

from torch import nn

from harness.api.task import UnlearningTask
from harness.protocol.methods import register_method
from harness.protocol.scoring import ORACLE_METHOD


@register_method("original", kind="reference", needs_retain=False,
                 source="reference: the model before unlearning (upper bound on leakage)")
def original(task: UnlearningTask) -> nn.Module:
    """The original model, unchanged."""
    return task.model


@register_method(ORACLE_METHOD, kind="reference", needs_retain=True,
                 source="reference: retrained from scratch on the retain set with the suite's recipe (the oracle)")
def retrain(task: UnlearningTask) -> nn.Module:
    """The oracle. The runner serves it from the cache; it is never trained inside a method run."""
    raise RuntimeError("the 'retrain' reference is served by the runner from the oracle cache")
