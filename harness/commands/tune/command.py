"""``unlearn-bench tune``: tune methods of a suite under one protocol and write their per-kind settings.

Without ``--write`` nothing shipped is touched: the hparams file (the suite's, merged with the new settings),
a copy of the suite file and the trial logs go to ``--out`` (default ``./tuning``), so
``unlearn-bench run --suite tuning/<suite>.toml`` runs with them. ``--write`` updates the hparams file beside
the suite file and puts the trial logs in ``<suite>.tuning/`` next to it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.commands.tune.output import write_outputs
from harness.commands.tune.search import Trial, TuneResult, default_options, tune
from harness.commands.tune.validation import (
    DEFAULT_CLASSES,
    DEFAULT_FIRST_SEED,
    ValidationSuite,
    make_validation_suite,
    validation_seeds,
)
from harness.isolation.plugins import load_plugins
from harness.pipeline.options import Options
from harness.pipeline.plan import select_methods
from harness.protocol.datasets import load_dataset
from harness.protocol.methods import MethodSpec, PluginError
from harness.protocol.scoring import SCENARIO_KINDS, SEQUENTIAL, hparams_kind, kind_family
from harness.protocol.splits import parse_scenario
from harness.protocol.suite import Suite, load_suite, split_definition, suite_path

DEFAULT_BUDGET = 16
# Three seeds: two did not reveal a learning rate next to a divergence cliff (amun on fmnist-quick, docs/tuning.md)
DEFAULT_VALIDATION_SEEDS = 3


@dataclass(frozen=True, kw_only=True)
class TuneRequest(Options):
    """What to tune, where to write it; empty ``methods``: every non-reference method (plugins included).
    Methods run isolated; ``cache_dir`` None: ``<out>/cache``."""

    suite: str
    methods: list[str] = field(default_factory=list)
    budget: int = DEFAULT_BUDGET
    seeds: list[int] = field(default_factory=list)  # validation seeds; empty: DEFAULT_VALIDATION_SEEDS from 1000
    kinds: list[str] = field(default_factory=list)  # empty: every kind the suite has
    classes: int = DEFAULT_CLASSES  # validation forget classes per scored class scenario
    out: Path = Path("tuning")
    write: bool = False
    isolate: bool = True
    sampler_seed: int = 0


def tunable_methods(suite: Suite, requested: list[str], plugin_names: list[str]) -> list[MethodSpec]:
    """The methods to tune (default: every non-reference method, plugins included); each must declare a
    search space."""
    if requested:
        specs = select_methods(suite, requested)
    else:
        specs = [s for s in select_methods(suite, [], plugin_names) if s.kind != "reference"]
    for spec in specs:
        if spec.kind == "reference":
            raise ValueError(f"{spec.name!r} is a reference (it has nothing to tune)")
        if not spec.search_space:
            raise PluginError(f"method {spec.name!r} declares no search space: add search_space={{'lr': "
                              "LogUniform(1e-5, 0.5), ...}} to its @register_method (docs/tuning.md)")
    return specs


def build_validation_suite(suite: Suite, request: TuneRequest) -> ValidationSuite:
    arrays = load_dataset(suite.dataset, request.data_root or suite.data_root)
    # only the test split's size is read here (it sizes the validation test set), never its contents
    seeds = request.seeds or validation_seeds(suite, DEFAULT_VALIDATION_SEEDS, DEFAULT_FIRST_SEED)
    return make_validation_suite(suite, seeds, arrays.num_classes, len(arrays.test_y), len(arrays.train_y),
                                 request.classes)


def run_tune(request: TuneRequest, report: Callable[[str], None] = print) -> list[TuneResult]:
    """Tune every selected (method, scenario kind) with the same budget and write the outputs."""
    suite = load_suite(request.suite)
    path = suite_path(request.suite)
    plugin_names, failures = load_plugins(request.plugins)
    if failures:
        raise PluginError("; ".join(f.error for f in failures))
    specs = tunable_methods(suite, request.methods, plugin_names)
    validation = build_validation_suite(suite, request)
    present = [k for k in SCENARIO_KINDS if any(parse_scenario(s).kind == k for s in suite.scenarios)]
    # sequential runs use the random kind's settings (harness.protocol.scoring.hparams_kind): not tuned on their own
    suite_kinds = [k for k in present if hparams_kind(k) == k]
    if SEQUENTIAL in request.kinds:
        raise ValueError("--kinds 'sequential': sequential scenarios use the random kind's hyper-parameters "
                         "(docs/scenarios.md); tune --kinds random on a suite with a random-P scenario")
    bad = [k for k in request.kinds if k not in suite_kinds]
    if bad:
        raise ValueError(f"--kinds {bad[0]!r}: suite {suite.name} has scenario kinds {', '.join(suite_kinds)}")
    kinds = request.kinds or suite_kinds
    if SEQUENTIAL in present:
        report(f"suite {suite.name}: sequential scenarios are not tuned; their runs use the random kind's "
               "hyper-parameters")
    options = default_options(request.out / "validation-results",
                              dataclasses.replace(request, cache_dir=request.cache_dir or request.out / "cache"))
    report(f"tuning {len(specs)} method(s) of {suite.name} with {request.budget} trials per (method, kind) on "
           f"{validation.describe()}")
    results: list[TuneResult] = []
    start = time.perf_counter()
    for spec in specs:
        for kind in [k for k in kinds if spec.supports(kind_family(k))]:
            results.append(tune(spec, validation, kind, request.budget, options, request.sampler_seed,
                                progress=lambda r, t: report(_trial_line(r, t))))
            report(_result_line(results[-1]))
    report(f"tuning took {time.perf_counter() - start:.0f} s")
    _write(suite, path, results, request)
    return results


def _write(suite: Suite, path: Path, results: list[TuneResult], request: TuneRequest) -> None:
    doc = copy.deepcopy(suite.hparams)  # the settings in force (a suite that extends another: the base's too)
    if request.write:
        target, logs = path.with_name(path.stem + ".hparams.toml"), path.with_name(path.stem + ".tuning")
    else:  # a private copy: the suite file (standalone), its merged hparams file, the logs
        request.out.mkdir(parents=True, exist_ok=True)
        (request.out / path.name).write_text(split_definition(suite.definition)[0])
        target, logs = request.out / (path.stem + ".hparams.toml"), request.out / (path.stem + ".tuning")
    write_outputs(doc, results, suite.name, target, logs, request.sampler_seed)
    print(f"wrote {target} and {len(results)} trial log(s) in {logs}")
    if not request.write:
        print(f"run with them: unlearn-bench run --suite {request.out / path.name} (or rerun tune with --write)")


def _params(params: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _trial_line(result: TuneResult, trial: Trial) -> str:
    return (f"  {result.method} {result.kind} trial {trial.number + 1}/{result.budget} ({trial.origin}) "
            f"{_params(trial.params)}: avg_gap {trial.objective:.2f} (best {result.best.objective:.2f}) "
            f"{trial.seconds:.0f}s" + (f" [{trial.failed} failed]" if trial.failed else ""))


def _result_line(result: TuneResult) -> str:
    flag = f" AT BOUND: {', '.join(result.at_bound)}" if result.at_bound else ""
    return (f"{result.method} {result.kind}: {_params(result.best.params)} -> validation avg_gap "
            f"{result.best.objective:.2f} (trial {result.best.number + 1} of {len(result.trials)}){flag}")


def request_from_args(args: argparse.Namespace) -> TuneRequest:
    return TuneRequest(suite=args.suite, methods=args.methods, plugins=args.plugins, budget=args.budget,
                       seeds=args.seeds, kinds=args.kinds, classes=args.classes or DEFAULT_CLASSES, out=args.out, write=args.write,
                       cache_dir=args.cache_dir,
                       data_root=args.data_root, device=args.device, isolate=not args.no_isolation,
                       timeout=args.timeout, sampler_seed=args.sampler_seed)

