"""Evaluators: one module per metric family, registered by name.

An evaluator maps (unlearned model, :class:`EvalContext`) to named metric values. Each metric declares
its direction and whether it enters AMUN's ``avg_gap`` (§4.4 of the seed spec). Gaps are computed by the
runner as |value - oracle's value|, where the oracle's value comes from the same evaluator.
"""

from harness.evaluate import (  # noqa: F401  (privacy evaluators)
    accuracy,
    distribution,
    mia_nn,
    rmia,
    salun_mia,
    ulira,
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
