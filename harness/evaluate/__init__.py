"""Evaluators: one module per metric family, registered by name.

An evaluator maps (unlearned model, :class:`EvalContext`) to named metric values. Each metric declares
its direction and the scenario kinds where it can vary; the headlines (AMUN's ``avg_gap``) are defined in
:mod:`harness.protocol.scoring`. The runner computes gaps as |value - mean of the K oracles' values|, the oracles
being scored by the same evaluators.
"""

from harness.evaluate import (  # noqa: F401  (privacy evaluators; kodge_mia, unlearned_vs_retrained: paper-comparable)
    accuracy,
    consistency,
    distribution,
    klom,
    kodge_mia,
    mia_nn,
    relearn,
    representation,
    rmia,
    salun_mia,
    ulira,
    unlearned_vs_retrained,
)
from harness.evaluate.base import (
    EVALUATORS,
    EvalContext,
    Evaluator,
    MetricInfo,
    get_evaluator,
    metric_info,
    register_evaluator,
)

__all__ = ["EVALUATORS", "EvalContext", "Evaluator", "MetricInfo", "get_evaluator", "metric_info",
           "register_evaluator"]
