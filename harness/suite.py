"""Suites: versioned benchmark definitions read from TOML files in ``harness/suites/``.

A suite fixes the dataset (and subset), the model, the training recipe, the scenarios, the seeds, the
evaluators and their settings, and per-method hyper-parameter overrides (``<suite>.hparams.toml``).
Every field is validated before any training starts; errors name the file, the field and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import tomllib
import torch

from harness.data import DATASET_LOADERS, load_dataset, stratified_subset
from harness.models import MODELS
from harness.registry import did_you_mean
from harness.splits import Scenario, hash_indices, parse_scenario
from harness.train import Recipe

SUITES_DIR = Path(__file__).parent / "suites"
_TOP_KEYS = {"name", "version", "description", "data", "model", "train", "run", "evaluate"}
_DATA_KEYS = {"dataset", "train_subset", "test_subset", "subset_seed", "root"}
_RUN_KEYS = {"scenarios", "seeds", "methods", "timeout", "memory_mb", "unlearn_augment"}
_AUGMENTS = ("none", "crop", "crop-flip")


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class SuiteData:
    """The suite's train pool and test set (after sub-setting), as tensors."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    fingerprint: str  # dataset fingerprint + subset indices

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    dataset: str
    model: str
    recipe: Recipe
    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    train_subset: int | None = None
    test_subset: int | None = None
    subset_seed: int = 0
    data_root: str | None = None
    methods: tuple[str, ...] = ()  # empty: every registered method
    timeout: float = 600.0  # wall-clock seconds per isolated method run
    memory_mb: int | None = 16384  # address-space budget of an isolated method worker (CPU runs)
    unlearn_augment: str = "none"
    evaluate: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""

    def scenario(self, name: str) -> Scenario:
        return parse_scenario(name)

    @cached_property
    def data(self) -> SuiteData:
        return self.load_data()

    def load_data(self, root: str | None = None) -> SuiteData:
        arrays = load_dataset(self.dataset, root or self.data_root)
        tr = stratified_subset(arrays.train_y, self.train_subset, self.subset_seed)
        te = stratified_subset(arrays.test_y, self.test_subset, self.subset_seed + 1)
        fp = f"{arrays.fingerprint}-{hash_indices(tr, te)}"
        return SuiteData(arrays.train_x[tr], arrays.train_y[tr], arrays.test_x[te], arrays.test_y[te],
                         arrays.num_classes, fp)

    def evaluator_setting(self, evaluator: str, key: str, default: Any) -> Any:
        return self.evaluate.get(evaluator, {}).get(key, default) if isinstance(self.evaluate.get(evaluator), dict) \
            else default

    @property
    def evaluators(self) -> tuple[str, ...]:
        return tuple(self.evaluate.get("evaluators", ("accuracy",)))


def _require(table: dict, key: str, kind: type | tuple, where: str) -> Any:
    if key not in table:
        raise SuiteError(f"{where}: missing required field {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SuiteError(f"{where}: field {key!r} must be {names}, got {value!r}")
    return value


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SuiteError(f"{where}: unknown field {key!r}{did_you_mean(key, allowed)}")


def parse_suite(text: str, path: str = "<string>", hparams_text: str | None = None) -> Suite:
    """Parse and validate a suite definition."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML ({exc})") from exc
    _check_keys(doc, _TOP_KEYS, path)
    name = _require(doc, "name", str, path)
    version = str(_require(doc, "version", (str, int), path))
    data = _require(doc, "data", dict, path)
    _check_keys(data, _DATA_KEYS, f"{path} [data]")
    dataset = _require(data, "dataset", str, f"{path} [data]")
    if dataset not in DATASET_LOADERS:
        raise SuiteError(f"{path} [data]: unknown dataset {dataset!r}{did_you_mean(dataset, DATASET_LOADERS)}")
    model_table = _require(doc, "model", dict, path)
    model = _require(model_table, "name", str, f"{path} [model]")
    if model not in MODELS:
        raise SuiteError(f"{path} [model]: unknown model {model!r}{did_you_mean(model, MODELS)}")
    train = doc.get("train", {})
    recipe_fields = {f.name for f in fields(Recipe)}
    _check_keys(train, recipe_fields, f"{path} [train]")
    try:
        recipe = Recipe(**train)
    except TypeError as exc:
        raise SuiteError(f"{path} [train]: {exc}") from exc
    if recipe.schedule not in ("cosine", "step", "constant"):
        raise SuiteError(f"{path} [train]: schedule must be cosine, step or constant, got {recipe.schedule!r}")
    if recipe.augment not in ("none", "crop", "crop-flip"):
        raise SuiteError(f"{path} [train]: augment must be none, crop or crop-flip, got {recipe.augment!r}")
    if recipe.epochs < 1 or recipe.batch_size < 1 or not recipe.lr > 0:
        raise SuiteError(f"{path} [train]: epochs, batch_size and lr must be positive")
    run = _require(doc, "run", dict, path)
    _check_keys(run, _RUN_KEYS, f"{path} [run]")
    scenarios = tuple(_require(run, "scenarios", list, f"{path} [run]"))
    for s in scenarios:
        try:
            parse_scenario(str(s))
        except ValueError as exc:
            raise SuiteError(f"{path} [run] scenarios: {exc}") from exc
    seeds = tuple(_require(run, "seeds", list, f"{path} [run]"))
    if not seeds or not all(_is_int(s) and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise SuiteError(f"{path} [run]: seeds must be a non-empty list of distinct non-negative integers, "
                         f"got {list(seeds)}")
    methods = run.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) and m for m in methods):
        raise SuiteError(f"{path} [run]: methods must be a list of method names, got {methods!r}")
    timeout = run.get("timeout", 600.0)
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
        raise SuiteError(f"{path} [run]: timeout must be a positive number of seconds, got {timeout!r}")
    memory_mb = run.get("memory_mb", 16384)
    if not (_is_int(memory_mb) and memory_mb > 0):
        raise SuiteError(f"{path} [run]: memory_mb must be a positive integer (MiB), got {memory_mb!r}")
    augment = run.get("unlearn_augment", recipe.augment)
    if augment not in _AUGMENTS:
        raise SuiteError(f"{path} [run]: unlearn_augment must be one of {', '.join(_AUGMENTS)}, got {augment!r}")
    for key in ("train_subset", "test_subset"):
        if key in data and not (_is_int(data[key]) and data[key] > 0):
            raise SuiteError(f"{path} [data]: {key} must be a positive integer, got {data[key]!r}")
    hparams: dict[str, dict[str, Any]] = {}
    if hparams_text:
        try:
            hparams = tomllib.loads(hparams_text)
        except tomllib.TOMLDecodeError as exc:
            raise SuiteError(f"{path} (hparams file): not valid TOML ({exc})") from exc
        for method, table in hparams.items():
            if not isinstance(table, dict):
                raise SuiteError(f"{path} (hparams file): [{method}] must be a table of name = value")
    return Suite(
        name=name, version=version, description=str(doc.get("description", "")), dataset=dataset, model=model,
        recipe=recipe, scenarios=tuple(str(s) for s in scenarios), seeds=seeds,
        train_subset=data.get("train_subset"), test_subset=data.get("test_subset"),
        subset_seed=int(data.get("subset_seed", 0)), data_root=data.get("root"),
        methods=tuple(methods), timeout=float(timeout), memory_mb=int(memory_mb), unlearn_augment=str(augment),
        evaluate=dict(doc.get("evaluate", {})), hparams=hparams, path=path,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is not a seed


def suite_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.toml")) if not p.stem.endswith(".hparams")}


def load_suite(name_or_path: str) -> Suite:
    """Load a built-in suite by name, or a suite file by path."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.is_file()):
        files = suite_files()
        if name_or_path not in files:
            raise SuiteError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, files)}")
        path = files[name_or_path]
    hp_path = path.with_name(path.stem + ".hparams.toml")
    return parse_suite(path.read_text(), str(path.name), hp_path.read_text() if hp_path.is_file() else None)
