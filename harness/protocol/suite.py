"""Suites: versioned benchmark definitions read from TOML files in ``harness/suites/``.

A suite fixes the dataset (and subset), the model, the training recipe, the scenarios, the seeds, the
evaluators and their settings, and per-method hyper-parameter overrides (``<suite>.hparams.toml``).
Every field is validated before any training starts; errors name the file, the field and what is allowed.

Why one module: a suite is one TOML format, read in one pass -- the dataclass, every key's validation and the
``extends`` chain -- so a new key is added, checked and documented in one place (the loaders, models and
evaluators it names live in their own modules).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from harness.core.registry import ExtensionError, did_you_mean, load_extension_file
from harness.protocol.architectures import MODELS, model_spec
from harness.protocol.datasets import DATASETS, load_dataset, stratified_subset
from harness.protocol.recipe import PRECISIONS, SCHEDULES, Recipe
from harness.protocol.splits import (
    POOLS,
    Scenario,
    Split,
    hash_indices,
    make_split,
    original_pool,
    parse_scenario,
)

SUITES_DIR = Path(__file__).parent.parent / "suites"
HPARAMS_MARKER = "# ---- hparams file ----"
_TOP_KEYS = {"name", "version", "description", "plugins", "data", "model", "train", "run", "evaluate"}
_DATA_KEYS = {"dataset", "train_subset", "test_subset", "subset_seed", "root", "pool", "groups", "normalize"}
NORMALIZE = ("none", "per-channel")  # [data] normalize: per-channel = standardised by the train pool's statistics
_RUN_KEYS = {"scenarios", "seeds", "methods", "timeout", "memory_mb", "unlearn_augment", "oracles",
             "max_time_ratio"}
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
    # With [data] groups: the dataset's own (fine) labels; train_y / test_y are then the groups' indices
    train_fine: torch.Tensor | None = None
    test_fine: torch.Tensor | None = None
    # [data] normalize = "per-channel": the train pool's per-channel mean and std the images were standardised by
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def strata(self) -> torch.Tensor:
        """The labels pools and shadow halves are stratified by: the fine labels where the suite groups them
        (so every half holds the same count of each fine class), else the labels."""
        return self.train_y if self.train_fine is None else self.train_fine

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    dataset: str
    model: str  # the model spec: the [model] name, with its arguments if any (harness/protocol/architectures.py)
    recipe: Recipe
    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    train_subset: int | None = None
    test_subset: int | None = None
    subset_seed: int = 0
    data_root: str | None = None
    methods: tuple[str, ...] = ()  # empty: every registered method
    timeout: float = 600.0  # wall-clock seconds per isolated method run
    memory_mb: int | None = 16384  # memory limit of an isolated method worker (harness/isolation/limits.py: capped at its share)
    unlearn_augment: str = "none"
    oracles: int = 2  # K independently retrained oracles per (scenario, seed): the target and the noise floor
    pool: str = "all"  # what an original trains on: the whole train set, or a stratified half (harness/protocol/splits.py)
    # [data] groups: fine classes grouped into the coarse labels every model of the suite predicts (sub-class
    # forgetting, docs/scenarios.md); empty: the dataset's labels
    groups: tuple[tuple[int, ...], ...] = ()
    # The compute budget: a method's CPU time over an oracle's training CPU time; None: no budget
    max_time_ratio: float | None = None
    normalize: str = "none"  # [data] normalize (NORMALIZE)
    # driver-side plugin files (evaluators, datasets, models) the suite loads, as absolute paths
    plugins: tuple[str, ...] = ()
    # "leaderboard", or "quick" for `unlearn-bench try`'s reduced runs (harness/commands/quick.py), which are never ranked
    grade: str = "leaderboard"
    evaluate: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""
    definition: str = ""  # the suite file's text (and its hparams file's, after HPARAMS_MARKER): stored in rows

    @property
    def definition_hash(self) -> str:
        return hashlib.sha256(self.definition.encode()).hexdigest()[:16]

    def scenario(self, name: str) -> Scenario:
        return parse_scenario(name)

    def load_data(self, root: str | None = None) -> SuiteData:
        arrays = load_dataset(self.dataset, root or self.data_root)
        tr = stratified_subset(arrays.train_y, self.train_subset, self.subset_seed)
        te = stratified_subset(arrays.test_y, self.test_subset, self.subset_seed + 1)
        fp = f"{arrays.fingerprint}-{hash_indices(tr, te)}"
        if not self.groups:
            return normalized(SuiteData(arrays.train_x[tr], arrays.train_y[tr], arrays.test_x[te], arrays.test_y[te],
                                        arrays.num_classes, fp), self.normalize)
        coarse = coarse_map(self.groups, arrays.num_classes, self.path or self.name)
        groups_id = hashlib.sha256(repr(self.groups).encode()).hexdigest()[:8]
        return normalized(SuiteData(arrays.train_x[tr], coarse[arrays.train_y[tr]], arrays.test_x[te],
                                    coarse[arrays.test_y[te]], len(self.groups), f"{fp}-groups{groups_id}",
                                    arrays.train_y[tr], arrays.test_y[te]), self.normalize)

    def original_positions(self, data: SuiteData, seed: int) -> torch.Tensor:
        """The train positions the original of ``seed`` trains on (its pool)."""
        return original_pool(self.name, self.pool, seed, data.strata)

    def split(self, data: SuiteData, scenario: Scenario | str, seed: int, scores: np.ndarray | None = None,
              step: int | None = None) -> Split:
        """The forget/retain split of (scenario, seed) inside that seed's pool; a difficulty scenario needs its
        ``scores`` (:func:`harness.training.difficulty.scenario_split` passes them), a sequential one its ``step``."""
        scenario = parse_scenario(scenario, data.num_classes) if isinstance(scenario, str) else scenario
        pool = None if self.pool == "all" else self.original_positions(data, seed)
        fine = None if data.train_fine is None else (data.train_fine, data.test_fine)
        return make_split(self.name, scenario, seed, data.train_y, data.test_y, pool, scores, fine, step)

    @property
    def evaluators(self) -> tuple[str, ...]:
        return tuple(self.evaluate.get("evaluators", ("accuracy",)))


def normalized(data: SuiteData, mode: str) -> SuiteData:
    """``[data] normalize``: ``per-channel`` standardises train and test images by the train pool's per-channel
    mean and std (never the test images'), the same for every dataset; ``none`` returns ``data`` as it is."""
    if mode == "none":
        return data
    if mode != "per-channel":
        raise SuiteError(f"[data] normalize must be one of {', '.join(NORMALIZE)}, got {mode!r}")
    mean = data.train_x.double().mean(dim=(0, 2, 3))
    std = data.train_x.double().std(dim=(0, 2, 3)).clamp_min(1e-6)
    scale = lambda x: ((x - mean.view(1, -1, 1, 1).float()) / std.view(1, -1, 1, 1).float()).contiguous()
    # the statistics are a function of the data: the suffix says they were applied
    return dataclasses.replace(data, train_x=scale(data.train_x), test_x=scale(data.test_x),
                               fingerprint=f"{data.fingerprint}-norm", mean=tuple(mean.tolist()),
                               std=tuple(std.tolist()))


def coarse_map(groups: tuple[tuple[int, ...], ...], num_classes: int, where: str) -> torch.Tensor:
    """[num_classes] the group index of every fine class; the groups must cover every class exactly once."""
    members = sorted(c for g in groups for c in g)
    if members != list(range(num_classes)):
        raise SuiteError(f"{where} [data]: groups must cover the dataset's classes 0..{num_classes - 1} exactly "
                         f"once, got {[list(g) for g in groups]}")
    out = torch.empty(num_classes, dtype=torch.int64)
    for index, group in enumerate(groups):
        out[list(group)] = index
    return out


def _groups(data: dict, where: str) -> tuple[tuple[int, ...], ...]:
    """``[data] groups``: a list of non-empty lists of distinct class indices (checked against the dataset's
    class count when the data loads)."""
    raw = data.get("groups", [])
    ok = isinstance(raw, list) and all(isinstance(g, list) and g and all(_is_int(c) and c >= 0 for c in g)
                                       for g in raw)
    flat = [c for g in raw for c in g] if ok else []
    if not ok or len(flat) != len(set(flat)) or (raw and len(raw) < 2):
        raise SuiteError(f"{where} [data]: groups must be a list of at least two disjoint, non-empty lists of "
                         f"class indices, got {raw!r}")
    return tuple(tuple(int(c) for c in g) for g in raw)


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


def _plugins(doc: dict, path: str, base_dir: Path | None) -> tuple[str, ...]:
    """``plugins = ["my_attack.py", ...]``: driver-side plugin files (relative to the suite file's folder), imported
    now so that the names they register validate below; their absolute paths."""
    raw = doc.get("plugins", [])
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise SuiteError(f"{path}: plugins must be a list of Python file paths, got {raw!r}")
    resolved = []
    for entry in raw:
        file = Path(entry).expanduser()
        if not file.is_absolute():
            file = (base_dir or Path.cwd()) / file
        try:
            load_extension_file(file)
        except ExtensionError as exc:
            raise SuiteError(f"{path}: {exc}") from exc
        resolved.append(str(file.resolve()))
    return tuple(resolved)


def _model(doc: dict, path: str) -> str:
    """``[model]``: the name (a registered model, ``timm:<name>`` or ``torchvision:<name>``) and, as further keys,
    keyword arguments for its builder; the model spec."""
    table = _require(doc, "model", dict, path)
    name = _require(table, "name", str, f"{path} [model]")
    try:
        MODELS[name]
    except KeyError as exc:
        raise SuiteError(f"{path} [model]: {exc.args[0]}") from None
    arguments = {k: v for k, v in table.items() if k != "name"}
    params = inspect.signature(MODELS[name]).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        takes = list(params)[2:]  # after (input_shape, num_classes)
        for key in arguments:
            if key not in takes:
                known = did_you_mean(key, ["name", *takes])
                raise SuiteError(f"{path} [model]: unknown field {key!r}{known} (model {name!r} takes "
                                 f"{', '.join(takes) or 'no arguments'})")
    try:
        return model_spec(name, arguments)
    except TypeError as exc:
        raise SuiteError(f"{path} [model]: arguments must be numbers, strings, booleans, lists or tables ({exc})") \
            from None


def parse_suite(text: str, path: str = "<string>", hparams_text: str | None = None,
                base_dir: Path | None = None) -> Suite:
    """Parse and validate a suite definition; ``base_dir`` (the suite file's folder, else the current one) is what
    relative ``plugins`` and ``[data] root`` paths are relative to."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML ({exc})") from exc
    _check_keys(doc, _TOP_KEYS, path)
    name = _require(doc, "name", str, path)
    version = str(_require(doc, "version", (str, int), path))
    plugins = _plugins(doc, path, base_dir)
    data = _require(doc, "data", dict, path)
    _check_keys(data, _DATA_KEYS, f"{path} [data]")
    dataset = _require(data, "dataset", str, f"{path} [data]")
    if dataset not in DATASETS:
        raise SuiteError(f"{path} [data]: unknown dataset {dataset!r}{did_you_mean(dataset, DATASETS)}")
    normalize = data.get("normalize", "none")
    if normalize not in NORMALIZE:
        raise SuiteError(f"{path} [data]: normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}"
                         f"{did_you_mean(str(normalize), NORMALIZE)}")
    root = data.get("root")
    if root is not None and not isinstance(root, str):
        raise SuiteError(f"{path} [data]: root must be a path, got {root!r}")
    if root and base_dir is not None and not Path(root).expanduser().is_absolute():
        root = str((base_dir / Path(root).expanduser()).resolve())
    model = _model(doc, path)
    train = doc.get("train", {})
    recipe_fields = {f.name for f in fields(Recipe)}
    _check_keys(train, recipe_fields, f"{path} [train]")
    try:
        recipe = Recipe(**train)
    except TypeError as exc:
        raise SuiteError(f"{path} [train]: {exc}") from exc
    if recipe.schedule not in SCHEDULES:
        raise SuiteError(f"{path} [train]: schedule must be one of {', '.join(SCHEDULES)}, got {recipe.schedule!r}")
    if recipe.precision not in PRECISIONS:
        raise SuiteError(f"{path} [train]: precision must be one of {', '.join(PRECISIONS)}, got {recipe.precision!r}")
    if recipe.augment not in ("none", "crop", "crop-flip"):
        raise SuiteError(f"{path} [train]: augment must be none, crop or crop-flip, got {recipe.augment!r}")
    if recipe.epochs < 1 or recipe.batch_size < 1 or not recipe.lr > 0:
        raise SuiteError(f"{path} [train]: epochs, batch_size and lr must be positive")
    run = _require(doc, "run", dict, path)
    _check_keys(run, _RUN_KEYS, f"{path} [run]")
    scenarios = tuple(_require(run, "scenarios", list, f"{path} [run]"))
    groups = _groups(data, path)
    for s in scenarios:
        try:
            parsed = parse_scenario(str(s))
        except ValueError as exc:
            raise SuiteError(f"{path} [run] scenarios: {exc}") from exc
        if parsed.kind == "subclass":
            group = next((g for g in groups if parsed.forget_fine_class in g), None)
            if group is None:
                raise SuiteError(f"{path} [run] scenarios: {s} needs [data] groups that contain fine class "
                                 f"{parsed.forget_fine_class}")
            if len(group) < 2:
                raise SuiteError(f"{path} [run] scenarios: {s}: fine class {parsed.forget_fine_class} is a group "
                                 "of its own, so forgetting it is class forgetting (use class-K)")
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
    oracles = run.get("oracles", 2)
    if not (_is_int(oracles) and oracles >= 1):
        raise SuiteError(f"{path} [run]: oracles must be a positive integer (K retrained oracles per scenario and "
                         f"seed; K >= 2 measures the noise floor), got {oracles!r}")
    augment = run.get("unlearn_augment", recipe.augment)
    if augment not in _AUGMENTS:
        raise SuiteError(f"{path} [run]: unlearn_augment must be one of {', '.join(_AUGMENTS)}, got {augment!r}")
    pool = data.get("pool", "all")
    if pool not in POOLS:
        raise SuiteError(f"{path} [data]: pool must be one of {', '.join(POOLS)}, got {pool!r}{did_you_mean(str(pool), POOLS)}")
    budget = run.get("max_time_ratio")
    if budget is not None and not (isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0):
        raise SuiteError(f"{path} [run]: max_time_ratio must be a positive number (a method's CPU time over an "
                         f"oracle's training CPU time), got {budget!r}")
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
        subset_seed=int(data.get("subset_seed", 0)), data_root=root, normalize=str(normalize), plugins=plugins,
        methods=tuple(methods), timeout=float(timeout), memory_mb=int(memory_mb), unlearn_augment=str(augment),
        oracles=int(oracles), pool=str(pool), groups=groups, max_time_ratio=None if budget is None else float(budget),
        evaluate=dict(doc.get("evaluate", {})), hparams=hparams, path=path,
        definition=text + (f"\n{HPARAMS_MARKER}\n{hparams_text}" if hparams_text else ""),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is not a seed


def suite_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.toml")) if not p.stem.endswith(".hparams")}


def suite_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    """The suite's TOML file: a ``.toml`` path (tried next to ``relative_to`` first) or a built-in name;
    unknown names raise with "did you mean"."""
    path = Path(name_or_path)
    if relative_to is not None and not path.is_absolute():
        near = relative_to / path
        if near.suffix == ".toml" and near.is_file():
            return near
    if path.suffix == ".toml" and path.is_file():
        return path
    files = suite_files()
    if name_or_path not in files:
        raise SuiteError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, files)}")
    return files[name_or_path]


def _merge(base: dict, child: dict) -> dict:
    """``child`` over ``base``: tables merge key by key, any other value replaces the base's."""
    out = dict(base)
    for key, value in child.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolved_document(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, Path]:
    """The suite file's TOML with its ``extends`` chain applied; also the file whose hparams apply."""
    if path.resolve() in seen:
        chain = " -> ".join(p.name for p in (*seen, path.resolve()))
        raise SuiteError(f"{path.name}: 'extends' forms a cycle ({chain})")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path.name}: not valid TOML ({exc})") from exc
    if "extends" not in doc:
        return doc, path
    parent = doc.pop("extends")
    if not isinstance(parent, str):
        raise SuiteError(f"{path.name}: extends must be a suite name or a .toml path, got {parent!r}")
    try:
        base, base_file = _resolved_document(suite_path(parent, path.parent), (*seen, path.resolve()))
    except SuiteError as exc:
        raise SuiteError(f"{path.name}: extends {parent!r}: {exc}") from exc
    own_hparams = path.with_name(path.stem + ".hparams.toml").is_file()
    return _merge(base, doc), (path if own_hparams else base_file)


def load_suite(name_or_path: str) -> Suite:
    """Load a built-in suite by name, or a suite file by path.

    A suite may start from another with ``extends = "<name or path>"``: its tables are merged over the base's
    key by key, and it uses its own ``<suite>.hparams.toml`` if it has one, else the base's.
    """
    path = suite_path(name_or_path)
    text = path.read_text()
    doc, hparams_owner = _resolved_document(path)
    if "extends" in tomllib.loads(text):  # rows store the resolved definition, so it must stand alone
        text = f"# {path.name} with its 'extends' chain resolved\n" + tomli_w.dumps(doc)
    hp_path = hparams_owner.with_name(hparams_owner.stem + ".hparams.toml")
    return parse_suite(text, str(path.name), hp_path.read_text() if hp_path.is_file() else None,
                       base_dir=path.parent.resolve())


def split_definition(definition: str) -> tuple[str, str]:
    """A stored definition's two parts: the suite file's text and its hparams file's ("" when none)."""
    text, _, hparams_text = definition.partition(f"\n{HPARAMS_MARKER}\n")
    return text, hparams_text


def parse_definition(definition: str, path: str = "<stored definition>") -> Suite:
    """A suite from the ``definition`` text stored in result rows (suite file, then its hparams file)."""
    text, hparams_text = split_definition(definition)
    return parse_suite(text, path, hparams_text or None)
