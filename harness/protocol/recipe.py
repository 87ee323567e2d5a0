"""Training recipes: how a suite trains every model from scratch (originals, oracles, shadow models).

A recipe is part of every cache key (:meth:`Recipe.as_dict`); :mod:`harness.training.loop` carries it out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Recipe:
    """How a model is trained from scratch (originals, oracles, shadow models)."""

    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    schedule: str = "cosine"  # cosine | step | constant | onecycle
    step_size: int = 40  # epochs between x gamma decays (schedule = step)
    gamma: float = 0.1
    augment: str = "none"  # none | crop-flip | crop
    clip: float | None = None  # FastClip spectral-norm target (None: no clipping)
    clip_every: int = 100  # steps between FastClip clipping steps
    extra: dict = field(default_factory=dict)
    precision: str = "fp32"  # fp32 | bf16 (autocast for the forward pass; weights stay fp32)
    channels_last: bool = False  # channels-last memory format for conv nets (GPU speed; tiny float changes)
    compile: bool = False  # torch.compile the model for training on CUDA (ignored on a CPU: compiling costs more)

    def as_dict(self) -> dict:
        # Fields added later enter the dict (and so every cache key) only when set, so caches stay valid.
        return {k: v for k, v in asdict(self).items() if k not in _LATE_DEFAULTS or v != _LATE_DEFAULTS[k]}


_LATE_DEFAULTS = {"precision": "fp32", "channels_last": False, "compile": False}
SCHEDULES = ("cosine", "step", "constant", "onecycle")
PRECISIONS = ("fp32", "bf16")
