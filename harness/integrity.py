"""Cheat checks on a method's output: is the returned model the oracle (verbatim or almost)?

A method never receives the oracle, but a hostile plugin runs as the same user as the harness and could
read the cache from disk. Returning the oracle's weights would score a perfect gap, so the runner compares
every returned model with the oracle of its (scenario, seed) and marks copies ``invalid``.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

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
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
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
