"""Cheat checks on a method's output: is the returned model an oracle (verbatim, nearly, or in behaviour)?

A method never receives an oracle, and the sandbox keeps the cache out of its reach, but a sandbox can be
missing (``sandbox = none``) or escaped, and returning an oracle would score a perfect gap. So the runner
compares every returned model with each oracle of its (scenario, seed) and marks copies ``invalid``:

* by weights (:func:`oracle_copy_reason`): an identical state, or one within 0.1% of the original-to-oracle
  distance;
* by function (:func:`functional_copy_check`): its predictions on held-out examples (the test split, which
  no method sees) are far closer to an oracle's than two independent retrains ever are to each other. This
  catches a perturbed copy whose weights moved (noise, rescaled layers, permuted hidden units) but whose
  behaviour did not. It needs K >= 2 oracles to measure that floor; with one oracle only the weight check
  runs, and the row says so.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.training.loop import mean_tv, softmax_outputs

# A returned model this close to the oracle, relative to how far the original is from it, is treated as a
# (lightly perturbed) copy. Honest methods start at the original and move a small part of the way; no
# method we know lands within 0.1% of the oracle. Configurable because it is our threshold, not a standard.
NEAR_COPY_RATIO = 1e-3


def state_hash(model: nn.Module | dict[str, torch.Tensor]) -> str:
    """sha256 over parameter and buffer names, dtypes, shapes and bytes (device independent)."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # reshape(-1): a 0-dim buffer (BatchNorm's num_batches_tracked) cannot be viewed as bytes; same bytes otherwise
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _flat_float(model: nn.Module) -> torch.Tensor:
    parts = [t.detach().to("cpu", torch.float64).flatten() for t in model.state_dict().values()
             if t.is_floating_point()]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def oracle_copy_reason(returned: nn.Module, oracle: nn.Module, original: nn.Module,
                       near_ratio: float = NEAR_COPY_RATIO) -> str | None:
    """Why ``returned`` counts as a copy of ``oracle`` (None when it does not)."""
    if state_hash(returned) == state_hash(oracle):
        return "integrity: the returned weights are identical to the oracle's (sha256 of the state)"
    if set(returned.state_dict()) != set(oracle.state_dict()):
        return None
    got, target, start = _flat_float(returned), _flat_float(oracle), _flat_float(original)
    if got.shape != target.shape or target.shape != start.shape:
        return None
    scale = float(torch.linalg.vector_norm(start - target))
    distance = float(torch.linalg.vector_norm(got - target))
    if scale > 0 and distance < near_ratio * scale:
        return (f"integrity: the returned weights are a near copy of the oracle's (distance {distance:.3g} is "
                f"{distance / scale:.2g} of the original's distance {scale:.3g}; threshold {near_ratio:g})")
    return None


# A returned model whose mean total-variation distance to an oracle's softmax outputs on held-out examples is
# below this fraction of the smallest distance between two independent oracles is a functional copy.
# Measured on fmnist-quick (bench/copy_tv.py, K = 3, 2 scenarios x 3 seeds; docs/reliability.md): every
# built-in method stays at >= 1.03 of that floor, an independent retrain at >= 0.79, while oracle 0 with
# 0.1% multiplicative weight noise lands at <= 0.018 and with 1% noise at <= 0.18. 0.25 sits between with a
# 3x margin to the closest honest model. (With 5% noise a copy is as far from its oracle as another retrain
# is, 0.6-0.9: its predictions carry nothing a retrain would not.) Suites may set [evaluate] copy_tv_fraction.
COPY_TV_FRACTION = 0.25


@dataclass(frozen=True)
class CopyEvidence:
    """What the copy check measured; ``reason`` is set (``integrity: ...``) when the model is a copy."""

    copy_tv: float  # smallest mean TV distance between the returned model and an oracle (held-out inputs)
    oracle_pair_tv: float  # smallest mean TV distance between two oracles (NaN with one oracle)
    check: str  # "weights+function" or "weights only (1 oracle)"
    reason: str | None = None

    def columns(self) -> dict[str, float | str]:
        """The row's evidence columns."""
        return {"copy_tv": self.copy_tv, "oracle_pair_tv": self.oracle_pair_tv, "copy_check": self.check}


def functional_copy_check(returned: nn.Module, oracles: list[nn.Module], original: nn.Module,
                          inputs: torch.Tensor, fraction: float = COPY_TV_FRACTION,
                          near_ratio: float = NEAR_COPY_RATIO) -> CopyEvidence:
    """Is ``returned`` a copy of one of ``oracles``, by weights or by its outputs on held-out ``inputs``?

    ``inputs`` must be examples no method saw (the suite's test split). The noise floor is the smallest mean
    TV distance between two oracles; a model closer than ``fraction`` of it to some oracle is flagged.
    """
    if not oracles:
        raise ValueError("functional_copy_check needs at least one oracle")
    if len(inputs) == 0:
        raise ValueError("functional_copy_check needs held-out inputs (the test split is empty)")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    got = softmax_outputs(returned, inputs)
    outputs = [softmax_outputs(oracle, inputs) for oracle in oracles]
    distances = [mean_tv(got, out) for out in outputs]
    copy_tv = min(distances)
    pairs = [mean_tv(outputs[i], outputs[j]) for i in range(len(outputs)) for j in range(i + 1, len(outputs))]
    floor = min(pairs) if pairs else math.nan
    check = "weights+function" if pairs else "weights only (1 oracle)"
    for index, oracle in enumerate(oracles):
        reason = oracle_copy_reason(returned, oracle, original, near_ratio)
        if reason:
            return CopyEvidence(copy_tv, floor, check, f"{reason} (oracle {index})")
    if pairs and floor > 0 and copy_tv < fraction * floor:
        index = distances.index(copy_tv)
        return CopyEvidence(copy_tv, floor, check,
                            f"integrity: the returned model's predictions on held-out examples copy oracle {index}'s "
                            f"(mean TV distance {copy_tv:.3g}, below {fraction:g} x the {floor:.3g} between two "
                            f"independently retrained oracles)")
    return CopyEvidence(copy_tv, floor, check)
