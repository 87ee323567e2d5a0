"""Running one method on one (original, forget, retain): build the task, call, validate the output."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch
from torch import nn

from harness.api.task import TensorData, UnlearningTask
from harness.protocol.architectures import build_model
from harness.protocol.methods import MethodSpec
from harness.protocol.splits import hash_indices
from harness.training.loop import seeded_generator


class InvalidOutput(ValueError):
    """A method returned something that is not a usable model (wrong type, shape, NaN weights)."""


@dataclass(frozen=True)
class MethodRun:
    """Everything one run of a method needs, as one object: what it is given (the original, its data) and how
    it runs (hyper-parameters, seed, device). The runner, the isolated worker and the shadow runs all pass this.

    ``retain`` is ``None`` unless the method declares ``needs_retain``; ``original_key`` and ``forget_hash``
    (the original's cache key, the forget set's hash) scope what ``task.cached`` stores.
    """

    spec: MethodSpec
    hparams: dict[str, Any]
    original: nn.Module
    model_name: str
    forget: TensorData
    retain: TensorData | None
    num_classes: int
    scenario_kind: str
    forget_class: int | None
    device: torch.device
    seed: int
    augment: str = "none"
    original_key: str | None = None
    forget_hash: str | None = None

    @classmethod
    def select(cls, spec: MethodSpec, hparams: dict[str, Any], original: nn.Module, model_name: str,
               train_x: torch.Tensor, train_y: torch.Tensor, forget: torch.Tensor, retain: torch.Tensor,
               **fields: Any) -> Self:
        """A run on ``forget``/``retain`` positions of a train pool (the retain data only if the method needs it)."""
        retain_data = TensorData(train_x[retain], train_y[retain]) if spec.needs_retain else None
        return cls(spec, hparams, original, model_name, TensorData(train_x[forget], train_y[forget]), retain_data,
                   forget_hash=hash_indices(forget), **fields)


def build_task(run: MethodRun, memoize: Callable[[str, dict, Callable[[], object]], object] | None = None,
               progress: Callable[[int, int], None] | None = None, copy_model: bool = True) -> UnlearningTask:
    """The task a method sees: a private copy of the original (``copy_model=False``: the original itself, for a
    worker that received its own) and only the data it is entitled to, on the run's device."""
    model = (copy.deepcopy(run.original) if copy_model else run.original).to(run.device)
    forget = TensorData(run.forget.x.to(run.device), run.forget.y.to(run.device))
    retain = (TensorData(run.retain.x.to(run.device), run.retain.y.to(run.device))
              if run.retain is not None and run.spec.needs_retain else None)
    input_shape = tuple(forget.x.shape[1:])
    fresh = lambda s: build_model(run.model_name, input_shape, run.num_classes, seed=s)
    kwargs: dict[str, Any] = {"progress": progress} if progress is not None else {}
    return UnlearningTask(model=model, forget=forget, retain=retain, num_classes=run.num_classes,
                          scenario_kind=run.scenario_kind, device=run.device, generator=seeded_generator(run.seed),
                          forget_class=run.forget_class, augment=run.augment, _fresh_model=fresh,
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
    from harness.protocol.methods import METHODS

    spec = METHODS.get(method)
    return method_label(spec) if spec is not None else method


# Set by harness.isolation.plugin_proxy on a proxied plugin's function: the family the harness assigned it, and where
# the plugin comes from.
FAMILY_ATTR = "__unlearn_bench_family__"
ORIGIN_ATTR = "__unlearn_bench_origin__"


@dataclass(frozen=True)
class PluginOrigin:
    """Where a proxied plugin comes from, as the harness recorded it when it loaded the plugin."""

    module: str  # the module name a worker imports (file plugins: the name the harness gives the file)
    path: str  # the plugin file ("" for an entry point, imported by module name)
    family: str  # its task.cached scope, and the fork server it runs in
    label: str  # for messages: the file name or the entry point


def plugin_origin(spec: MethodSpec) -> PluginOrigin | None:
    """The origin of a proxied plugin method; None for methods defined in this process."""
    origin = getattr(spec.fn, ORIGIN_ATTR, None)
    return origin if isinstance(origin, PluginOrigin) else None


def method_family(spec: MethodSpec) -> str:
    """Who may read and write a method's ``task.cached`` artifacts: runs of the same family only.

    The family is the method's module as the harness's registry knows it (``module:methods.amun`` for the
    four AMUN variants), or, for a plugin, the scope :mod:`harness.isolation.plugin_proxy` gave it from the plugin's
    file (name and content hash) or entry point. It never comes from the method's own process.
    """
    family = getattr(spec.fn, FAMILY_ATTR, None)
    return family if isinstance(family, str) and family else f"module:{spec.module}"


def task_memoizer(cache, original_key: str, forget_hash: str,
                  family: str) -> Callable[[str, dict, Callable[[], object]], object]:
    """A ``task.cached`` backend: artifacts keyed by (family, original, forget set hash, name, params)."""

    def memoize(name: str, params: dict, compute: Callable[[], object]) -> object:
        key = derived_key(name, params, original_key, forget_hash, family)
        return cache.get_or_compute(f"derived-{name}", key, compute,
                                    parts={"name": name, "params": params, "family": family})

    return memoize


def derived_key(name: str, params: dict, original_key: str, forget_hash: str, family: str) -> str:
    """Cache key of a ``task.cached`` artifact: (name, params) of one method family, original and forget set."""
    from harness.training.cache import cache_key

    return cache_key(name=name, params=params, original=original_key, forget=forget_hash, family=family)
