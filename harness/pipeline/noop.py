"""No-op detection: did the method change the original's predictions at all?

A method that returns the original (or nearly) is not unlearning, whatever its gaps happen to be (on a
scenario where the original is already close to the oracles it can even rank well). The shift is measured in
output space, relative to how far retraining moves: the mean total-variation distance between the returned
model's and the original's softmax outputs on the forget and test examples, divided by the same distance of
the oracles. A run whose ratio is below ``noop_fraction`` (suite ``[evaluate]``, default 0.05: it moved less
than 5% as far as retraining does) is marked ``noop``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.training.loop import mean_tv, softmax_outputs

DEFAULT_NOOP_FRACTION = 0.05


def output_shift(model: nn.Module, original: nn.Module, oracles: list[nn.Module], x: torch.Tensor
                 ) -> dict[str, float]:
    """``noop_tv`` (model vs original), ``noop_ref_tv`` (oracles vs original, mean) and their ratio."""
    if len(x) == 0:
        return {"noop_tv": math.nan, "noop_ref_tv": math.nan, "noop_ratio": math.nan}
    base = softmax_outputs(original, x)
    moved = mean_tv(softmax_outputs(model, x), base)
    reference = (float(sum(mean_tv(softmax_outputs(o, x), base) for o in oracles) / len(oracles)) if oracles
                 else math.nan)
    ratio = moved / reference if reference and math.isfinite(reference) and reference > 0 else math.nan
    return {"noop_tv": moved, "noop_ref_tv": reference, "noop_ratio": ratio}


def is_noop(shift: dict[str, float], fraction: float = DEFAULT_NOOP_FRACTION) -> bool:
    ratio = shift["noop_ratio"]
    if math.isfinite(ratio):
        return ratio < fraction
    return shift["noop_tv"] == 0.0  # no oracle distance to compare with: only an exact copy counts
