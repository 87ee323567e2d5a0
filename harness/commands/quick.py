"""``unlearn-bench try``: a method author's quick look, in seconds, at one seed of a suite -- never a leaderboard row.

One seed, the suite's first scenario of each kind the method handles, and only the cheap evaluators (accuracy,
and RMIA's forget-vs-test AUC, which reuses the cached shadow originals as references: the cheapest privacy
check the suite has). The rows go to a scratch folder (a temporary one unless ``--keep DIR``), never to the
results folder, and carry ``grade = "quick"``; the leaderboard refuses such rows. Originals, oracles and shadow
models come from the cache, so on a warm cache only the method's own runs are new. The plugin is imported and run
in this process by default -- it is the author's own code, and a breakpoint in it works; ``--isolate`` imports and
runs it sandboxed, as ``unlearn-bench run`` does.

The printed table puts the method's numbers next to the stored rows of the same (scenario, seed) in the real
results folder: the retrain floor, the untouched original and the baseline with the smallest utility gap.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.pipeline.options import Options, RunOptions
from harness.protocol.scoring import ORACLE_METHOD, SEQUENTIAL
from harness.protocol.splits import parse_scenario
from harness.protocol.suite import Suite

QUICK_GRADE = "quick"
QUICK_EVALUATORS = ("accuracy", "rmia")
COLUMNS = ("utility_gap", "forget_acc", "retain_acc", "test_acc", "rmia_ft_auc", "time_ratio")
NOT_A_RESULT = ("quick look (one seed, cheap evaluators, no audit runs): NOT a leaderboard result; run "
                "`unlearn-bench run --suite {suite} --plugin FILE` for one")


@dataclass(frozen=True, kw_only=True)
class QuickRequest(Options):
    """A quick look: the plugin files, one seed of one suite; methods run in this process unless ``isolate``."""

    suite: Suite
    methods: tuple[str, ...] = ()  # empty: every method the plugins register
    seed: int
    results: Path  # the real results folder the comparison rows are read from
    keep: Path | None = None


def quick_suite(suite: Suite, kinds: set[str]) -> Suite:
    """The suite reduced to its first scenario of each kind whose family (``kinds``: random, class) the method
    handles, and the cheap evaluators (same name: the same cached models). Sequential kinds are left out: a
    request sequence is S runs, each with oracles of its own, not a quick look."""
    scenarios, seen = [], set()
    for name in suite.scenarios:
        scenario = parse_scenario(name)
        if scenario.kind not in seen and scenario.family in kinds and scenario.kind != SEQUENTIAL:
            seen.add(scenario.kind)
            scenarios.append(name)
    evaluate = {**suite.evaluate, "evaluators": [e for e in QUICK_EVALUATORS if e in suite.evaluators or e == "accuracy"]}
    return dataclasses.replace(suite, scenarios=tuple(scenarios), evaluate=evaluate, grade=QUICK_GRADE)


def stored_rows(results: Path, suite: Suite) -> pd.DataFrame:
    from harness.core.results import read_results

    try:
        return read_results(results, suite.name, verify=False)  # shown for comparison only, never re-stored
    except FileNotFoundError:
        return pd.DataFrame()


def comparison_rows(frame: pd.DataFrame, suite: Suite, scenario: str, seed: int) -> pd.DataFrame:
    """The stored floor, original and best baseline (smallest utility gap) of one (scenario, seed)."""
    if frame.empty or "scenario" not in frame:
        return frame
    same = frame[(frame["scenario"] == scenario) & (frame["seed"] == seed) & (frame["status"] == "ok")
                 & (frame.get("suite_version", suite.version) == suite.version)]
    order = {ORACLE_METHOD: 0, "original": 1}  # the floor first, then doing nothing, in every scenario
    refs = same[same["method"].isin(order)].sort_values("method", key=lambda m: m.map(order))
    baselines = same[same["method_kind"] == "baseline"]
    if "utility_gap" in baselines and baselines["utility_gap"].notna().any():
        refs = pd.concat([refs, baselines.nsmallest(1, "utility_gap")])
    return refs


def _cell(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) and math.isfinite(value) else "–"


def table(rows: pd.DataFrame, label: dict[str, str]) -> str:
    """A plain-text table of the columns that exist."""
    cols = [c for c in COLUMNS if c in rows]
    lines = [f"  {'':32s}" + "".join(f"{c:>14s}" for c in cols)]
    for _, row in rows.iterrows():
        lines.append(f"  {label.get(row['method'], row['method'])[:32]:32s}"
                     + "".join(f"{_cell(row.get(c)):>14s}" for c in cols))
    return "\n".join(lines)


MODEL_KINDS = ("original", "oracle", "shadow-original", "shadow-retrained")


def trained_models(cache_dir: Path | None) -> set[str]:
    """The trained reference models in the cache (what a quick look must not have to train)."""
    from harness.training.cache import ArtifactCache

    root = ArtifactCache(cache_dir).root
    return {f"{kind}/{p.name}" for kind in MODEL_KINDS for p in (root / kind).glob("*.pt")}


def _warm_up() -> None:
    """Build one optimizer before any method runs: torch imports ``torch._dynamo`` (about a second) the first time,
    which would otherwise be charged to the first method's time (the sandbox's fork server preloads it too)."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def run_quick(request: QuickRequest) -> str:
    """Run the quick look and return the report (the caller prints it)."""
    from harness.core.results import read_results
    from harness.isolation.plugin_import import import_plugin_file
    from harness.isolation.plugins import load_plugins
    from harness.pipeline.driver import run_suite
    from harness.protocol.methods import all_methods

    if request.isolate:  # described in the plugin's sandbox and run there, as `unlearn-bench run` does
        names, failures = load_plugins(list(request.plugins), entry_points=False)
        if failures:
            raise ValueError("; ".join(f.error for f in failures))
    else:  # the author's own file, imported here: a breakpoint in it works (no sandbox start-up either)
        names = [n for path in request.plugins for n in import_plugin_file(path)]
    methods = list(request.methods or names)
    if not methods:
        raise ValueError("the plugin registers no method")
    registry = all_methods()
    kinds = {k for m in methods for k in registry[m].scenarios} if all(m in registry for m in methods) else set()
    suite = quick_suite(request.suite, kinds or {"random", "class"})
    _warm_up()
    models_before = trained_models(request.cache_dir)
    with tempfile.TemporaryDirectory() as scratch:
        out = request.keep or Path(scratch)
        # the plugins are registered already (above): the runner gets their names, not the files again
        options = RunOptions(**{**request.shared(), "plugins": ()}, methods=methods, seeds=[request.seed],
                             results_root=out, progress=False, force=True)
        summary = run_suite(suite, options)
        mine = read_results(out, suite.name)
    stored = stored_rows(request.results, request.suite)
    lines = [NOT_A_RESULT.format(suite=request.suite.name),
             f"{suite.name} v{suite.version}, seed {request.seed}: {summary.written} runs, "
             f"{len(trained_models(request.cache_dir) - models_before)} models trained "
             f"({'sandboxed' if request.isolate else 'in this process'})"]
    for scenario in suite.scenarios:
        here = mine[mine["scenario"] == scenario]
        errors = here[here["status"] != "ok"]
        refs = comparison_rows(stored, request.suite, scenario, request.seed)
        label = {ORACLE_METHOD: "retrain (floor)", "original": "original"}
        if "method_kind" in refs:
            label.update({m: f"best baseline: {m}" for m in refs.loc[refs["method_kind"] == "baseline", "method"]})
        lines += ["", f"{scenario}:", table(pd.concat([refs, here[here["status"] == "ok"]]), label)]
        if refs.empty:
            lines.append(f"  (no stored rows of {scenario} seed {request.seed} in {request.results} to compare with)")
        for _, row in errors.iterrows():
            lines.append(f"  {row['method']}: {row['status']}: {str(row['error']).splitlines()[-1][:200]}")
    return "\n".join(lines)
