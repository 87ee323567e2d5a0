"""Running one method on one (original, forget, retain): build the task, call, validate the output."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.models import build_model
from harness.registry import MethodSpec
from harness.task import TensorData, UnlearningTask
from harness.train import seeded_generator


class InvalidOutput(ValueError):
    """A method returned something that is not a usable model (wrong type, shape, NaN weights)."""


def build_task(spec: MethodSpec, original: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
               forget: torch.Tensor, retain: torch.Tensor, num_classes: int, scenario_kind: str,
               forget_class: int | None, device: torch.device, seed: int, augment: str = "none",
               model_name: str | None = None, progress: Callable[[int, int], None] | None = None,
               memoize: Callable[[str, dict, Callable[[], object]], object] | None = None) -> UnlearningTask:
    """The task a method sees: a private copy of the original and only the data it is entitled to."""
    forget_data = TensorData(train_x[forget], train_y[forget])
    retain_data = TensorData(train_x[retain], train_y[retain]) if spec.needs_retain else None
    return task_from_data(spec, copy.deepcopy(original), forget_data, retain_data, num_classes, scenario_kind,
                          forget_class, device, seed, augment, model_name, progress, memoize)


def task_from_data(spec: MethodSpec, model: nn.Module, forget_data: TensorData, retain_data: TensorData | None,
                   num_classes: int, scenario_kind: str, forget_class: int | None, device: torch.device, seed: int,
                   augment: str = "none", model_name: str | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   memoize: Callable[[str, dict, Callable[[], object]], object] | None = None) -> UnlearningTask:
    """Like :func:`build_task` from already-selected data; ``model`` becomes the task's own (not copied)."""
    model = model.to(device)
    forget_data = TensorData(forget_data.x.to(device), forget_data.y.to(device))
    if retain_data is not None and spec.needs_retain:
        retain_data = TensorData(retain_data.x.to(device), retain_data.y.to(device))
    else:
        retain_data = None
    input_shape = tuple(forget_data.x.shape[1:])
    fresh = (lambda s: build_model(model_name, input_shape, num_classes, seed=s)) if model_name else None
    kwargs: dict[str, Any] = {}
    if progress is not None:
        kwargs["progress"] = progress
    return UnlearningTask(model=model, forget=forget_data, retain=retain_data, num_classes=num_classes,
                          scenario_kind=scenario_kind, device=device, generator=seeded_generator(seed),
                          forget_class=forget_class, augment=augment, _fresh_model=fresh,
                          _memoize=memoize, **kwargs)


def validate_output(result: Any, probe: torch.Tensor, num_classes: int, method: str) -> nn.Module:
    """Check the returned object is a model with finite weights and ``num_classes`` outputs."""
    method = _label(method)
    if not isinstance(result, nn.Module):
        raise InvalidOutput(f"method {method!r} returned {type(result).__name__}, expected a torch.nn.Module")
    for name, tensor in list(result.named_parameters()) + list(result.named_buffers()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise InvalidOutput(f"method {method!r} returned non-finite values in {name!r} (NaN or inf weights)")
    result.eval()
    try:
        with torch.no_grad():
            out = result(probe)
    except Exception as exc:
        raise InvalidOutput(f"method {method!r} returned a model whose forward pass fails: {exc}") from exc
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(probe), num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidOutput(f"method {method!r} returned a model with output {shape}, "
                            f"expected ({len(probe)}, {num_classes})")
    if not torch.isfinite(out).all():
        raise InvalidOutput(f"method {method!r} returned a model with non-finite outputs")
    return result


def call_method(spec: MethodSpec, task: UnlearningTask, hparams: dict[str, Any]) -> nn.Module:
    """Call the method and validate its output (in this process)."""
    probe = task.forget.x[: min(4, len(task.forget))]
    result = spec.fn(task, **hparams)
    return validate_output(result, probe, task.num_classes, spec.name)


def method_label(spec: MethodSpec) -> str:
    """The method's name; for plugins also the file that defines it, so error rows point at the plugin."""
    if spec.kind != "plugin":
        return spec.name
    try:
        where = Path(inspect.getfile(spec.fn)).name
    except TypeError:
        where = spec.module
    return f"{spec.name} (plugin {where})"


def _label(method: str) -> str:
    from harness.registry import METHODS

    spec = METHODS.get(method)
    return method_label(spec) if spec is not None else method


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def task_memoizer(cache, original_key: str, forget: torch.Tensor) -> Callable[[str, dict, Callable[[], object]], object]:
    """A ``task.cached`` backend: artifacts keyed by (original, forget set, name, params) in the cache."""
    from harness.splits import hash_indices

    forget_hash = hash_indices(forget)

    def memoize(name: str, params: dict, compute: Callable[[], object]) -> object:
        key = derived_key(name, params, original_key, forget_hash)
        return cache.get_or_compute(f"derived-{name}", key, compute, parts={"name": name, "params": params})

    return memoize


def derived_key(name: str, params: dict, original_key: str, forget_hash: str) -> str:
    """Cache key of a ``task.cached`` artifact: (name, params) of one original and one forget set."""
    from harness.cache import cache_key

    return cache_key(name=name, params=params, original=original_key, forget=forget_hash)
