"""What an unlearning method is allowed to see: :class:`UnlearningTask`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from harness.training.loop import Batch, batches, has_batchnorm


@dataclass(frozen=True)
class TensorData:
    """Images and labels of one set, on the task's device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def _no_progress(done: int, total: int) -> None:
    del done, total


@dataclass
class UnlearningTask:
    """The original model and the data an unlearning algorithm may use — nothing else.

    ``model`` is a private copy of the original, already on ``device``. ``retain`` is ``None`` when the
    method is registered with ``needs_retain=False``. ``forget_class`` is set for class scenarios. The
    oracle, the test split, the shadow bank and the cache location are never reachable from here.
    """

    model: nn.Module
    forget: TensorData
    retain: TensorData | None
    num_classes: int
    scenario_kind: str
    device: torch.device
    generator: torch.Generator
    forget_class: int | None = None
    augment: str = "none"  # the suite's train-time augmentation, for fine-tuning on real samples
    progress: Callable[[int, int], None] = field(default=_no_progress)
    _fresh_model: Callable[[int], nn.Module] | None = field(default=None, repr=False)
    _memoize: Callable[[str, dict, Callable[[], object]], object] | None = field(default=None, repr=False)

    def forget_loader(self, batch_size: int = 128, shuffle: bool = True, augment: bool = False) -> Iterator[Batch]:
        """Mini-batches of the forget set (a fresh iterator each call, shuffled with the task's generator)."""
        return batches(self.forget.x, self.forget.y, batch_size, self.generator, shuffle,
                       self.augment if augment else "none", fold_single=has_batchnorm(self.model))

    def retain_loader(self, batch_size: int = 128, shuffle: bool = True, augment: bool = False) -> Iterator[Batch]:
        if self.retain is None:
            raise PermissionError("this method was registered with needs_retain=False: it has no retain data")
        return batches(self.retain.x, self.retain.y, batch_size, self.generator, shuffle,
                       self.augment if augment else "none", fold_single=has_batchnorm(self.model))

    def fresh_model(self, seed: int = 0) -> nn.Module:
        """A randomly initialised model of the original's architecture (e.g. an incompetent teacher)."""
        if self._fresh_model is None:
            raise RuntimeError("this task cannot build fresh models")
        return self._fresh_model(seed).to(self.device)

    def cached(self, name: str, params: dict, compute: Callable[[], object]) -> object:
        """Compute-once storage for artifacts that depend only on (original, forget set, ``params``).

        The harness keys it by the original model and forget set, so e.g. AMUN's adversarial set is built
        once per original and reused. Without a cache (tests, isolated runs) this just computes.
        """
        if self._memoize is None:
            return compute()
        return self._memoize(name, params, compute)
