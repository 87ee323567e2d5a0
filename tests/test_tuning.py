"""``unlearn-bench tune``: search-space declarations, per-kind hyper-parameters, the leak-free validation
setting, and a tiny end-to-end tune on digits-smoke (docs/tuning.md)."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import torch

import harness.commands.tune.command
import harness.commands.tune.validation
import harness.pipeline.graph
import harness.pipeline.row
import harness.protocol.datasets
import harness.protocol.suite
from harness.commands.tune.command import TuneRequest, run_tune, tunable_methods
from harness.commands.tune.validation import make_validation_suite, validation_seeds
from harness.core.registry import Registry
from harness.pipeline.driver import run_suite
from harness.pipeline.plan import RunOptions, plan_runs, select_methods
from harness.protocol.hparams import suite_layer, tuning_record
from harness.protocol.methods import MethodSpec, PluginError, all_methods, register_method
from harness.protocol.search_space import (
    Choice,
    IntRange,
    LogUniform,
    Uniform,
    at_bound,
    check_space,
    knob_from_dict,
)
from harness.protocol.suite import load_suite, parse_suite

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "harness" / "suites"


# ------------------------------------------------------------------------------------ search spaces
def _tunable() -> dict[str, MethodSpec]:
    return {n: s for n, s in all_methods().items() if s.kind in ("baseline", "seed")}


def test_every_builtin_method_declares_a_comparable_search_space():
    specs = _tunable()
    assert len(specs) >= 21  # 16 baselines, 4 AMUN variants, TRW
    for name, spec in specs.items():
        assert 1 <= len(spec.search_space) <= 3, f"{name}: {len(spec.search_space)} knobs"
        for knob_name, knob in spec.search_space.items():
            assert knob_name in spec.hparams
            knob.check(f"{name}.{knob_name}")
        # SSD, Fisher forgetting and SVD take no gradient steps: their strength is alpha (SVD: the forget space's)
        step = spec.search_space.get("lr") or spec.search_space.get("alpha") or spec.search_space.get("alpha_f")
        assert isinstance(step, LogUniform), f"{name}: its step size is not searched on a log scale"
        assert math.log10(step.high / step.low) >= 4, f"{name}: {step} is not a wide range"
    # AMUN is searched the way its authors search it: lr and the StepLR step
    assert set(specs["amun"].search_space) == {"lr", "lr_step"}
    assert set(specs["amun"].search_space["lr_step"].values) == {1, 5, 10}
    assert set(specs["ssd"].search_space) >= {"alpha"}


def test_search_space_declarations_are_checked():
    registry = Registry("method")

    def method(task, *, lr: float = 0.01, epochs: int = 3, mode: str = "a"):
        return task.model

    with pytest.raises(PluginError, match="did you mean 'lr'"):
        register_method("bad1", search_space={"lrr": LogUniform(1e-4, 1.0)}, registry=registry)(method)
    with pytest.raises(PluginError, match="0 < low < high"):
        register_method("bad2", search_space={"lr": LogUniform(0.0, 1.0)}, registry=registry)(method)
    with pytest.raises(PluginError, match="needs a float default"):
        register_method("bad3", search_space={"epochs": Uniform(1.0, 5.0)}, registry=registry)(method)
    with pytest.raises(PluginError, match="int default"):
        register_method("bad4", search_space={"lr": IntRange(1, 5)}, registry=registry)(method)
    with pytest.raises(PluginError, match="do not match"):
        register_method("bad5", search_space={"mode": Choice(1, 2)}, registry=registry)(method)
    register_method("good", search_space={"lr": {"type": "log-uniform", "low": 1e-4, "high": 1.0},
                                          "mode": Choice("a", "b")}, registry=registry)(method)
    assert registry["good"].search_space["lr"] == LogUniform(1e-4, 1.0)


@pytest.mark.parametrize("knob", [LogUniform(1e-5, 0.5), Uniform(0.1, 0.9), IntRange(1, 20, log=True),
                                  Choice(1, 5, 10), Choice("a", "b"), Uniform(0.0, 1.0, hard=("low", "high"))])
def test_knobs_survive_the_plugin_description_round_trip(knob):
    assert knob_from_dict(knob.to_dict()) == knob


def test_bound_flags():
    space = check_space("m", {"lr": LogUniform(1e-5, 1.0), "w": Uniform(0.0, 1.0), "e": IntRange(1, 20),
                              "s": Choice(1, 5, 10)}, {"lr": 0.1, "w": 0.5, "e": 3, "s": 1})
    assert at_bound(space, {"lr": 0.9, "w": 0.5, "e": 7, "s": 10}) == ["lr"]  # a choice is never at a bound
    assert at_bound(space, {"lr": 1e-3, "w": 0.01, "e": 20, "s": 1}) == ["w", "e"]
    assert at_bound(space, {"lr": 1.1e-5, "w": 0.5, "e": 2, "s": 5}) == ["lr"]
    epochs = {"e": IntRange(1, 20, hard=("low",))}  # one epoch is the least there is: not a search bound
    assert at_bound(epochs, {"e": 1}) == [] and at_bound(epochs, {"e": 20}) == ["e"]
    ratio = {"r": Uniform(0.0, 1.0, hard=("low",)), "lr": LogUniform(1e-5, 1.0, hard=("high",))}
    assert at_bound(ratio, {"r": 0.0, "lr": 1.0}) == [] and at_bound(ratio, {"r": 1.0, "lr": 1e-5}) == ["r", "lr"]


def test_a_method_without_a_search_space_gets_a_clear_error(monkeypatch):
    def plain(task, *, lr: float = 0.01):
        return task.model

    spec = MethodSpec("no-space", plain, ("random", "class"), True, {"lr": 0.01}, "plugin")
    monkeypatch.setitem(harness.protocol.methods.METHODS, "no-space", spec)
    with pytest.raises(PluginError, match="declares no search space"):
        tunable_methods(load_suite("digits-smoke"), ["no-space"], [])
    with pytest.raises(KeyError, match="did you mean 'finetune'"):
        tunable_methods(load_suite("digits-smoke"), ["finetun"], [])
    with pytest.raises(ValueError, match="reference"):
        tunable_methods(load_suite("digits-smoke"), ["retrain"], [])


# ------------------------------------------------------------------------- per-kind hyper-parameters
HPARAMS = """
[finetune]
epochs = 2
[finetune.random]
lr = 0.05
[finetune.random.tuning]
budget = 4
trials = 4
tuned_on = "digits-smoke validation"
at_bound = ["lr"]
[finetune.class]
lr = 0.002
"""


def _digits(hparams_text: str):
    text = (SUITES / "digits-smoke.toml").read_text()
    return parse_suite(text, "digits-smoke.toml", hparams_text)


def test_hparams_resolve_per_scenario_kind():
    suite = _digits(HPARAMS)
    plan = plan_runs(suite, RunOptions(seeds=[0]), select_methods(suite, ["finetune"]))
    by_kind = {r.scenario.split("-")[0]: r for r in plan}
    assert by_kind["random"].hparams["lr"] == 0.05 and by_kind["class"].hparams["lr"] == 0.002
    assert by_kind["random"].hparams["epochs"] == by_kind["class"].hparams["epochs"] == 2  # [finetune]: both
    assert by_kind["random"].config_hash != by_kind["class"].config_hash
    assert by_kind["random"].tuning == {"tuning_budget": 4, "tuning_trials": 4, "tuned_on": "digits-smoke validation",
                                        "tuning_at_bound": "lr"}
    assert by_kind["class"].tuning["tuning_budget"] == 0  # set by hand, not tuned
    # --set wins over both and the run is no longer the tuned configuration
    plan = plan_runs(suite, RunOptions(seeds=[0], overrides={"finetune": {"lr": "0.3"}}),
                     select_methods(suite, ["finetune"]))
    assert {r.hparams["lr"] for r in plan} == {0.3}
    assert {r.scenario: r.tuning["tuned_on"] for r in plan} == {"random-10": "overridden by --set", "class-3": ""}


def test_plain_method_table_still_applies_to_both_kinds():
    suite = _digits("[finetune]\nlr = 0.07\n")
    plan = plan_runs(suite, RunOptions(seeds=[0]), select_methods(suite, ["finetune"]))
    assert {r.hparams["lr"] for r in plan} == {0.07} and len({r.scenario for r in plan}) == 2


def test_misspelt_kind_table_is_an_error():
    suite = _digits("[finetune.randm]\nlr = 0.07\n")
    with pytest.raises(ValueError, match="did you mean 'random'"):
        plan_runs(suite, RunOptions(seeds=[0]), select_methods(suite, ["finetune"]))
    assert suite_layer({"f": {"lr": 1, "class": {"lr": 2}}}, "f", "class") == {"lr": 2}
    assert tuning_record({"f": {"random": {"lr": 1}}}, "f", "random") == {}


# --------------------------------------------------------------------------------- validation setting
def test_validation_suite_shares_nothing_scored():
    suite = load_suite("fmnist-quick")
    seeds = validation_seeds(suite, 2)
    assert seeds == [1000, 1001]
    # a suite that already uses seeds 1000 and 1001 gets the next free ones
    assert validation_seeds(dataclasses.replace(suite, seeds=(1000, 1001)), 2) == [1002, 1003]
    vsuite = make_validation_suite(suite, seeds, 10, 10_000, 60_000)
    assert vsuite.scenarios == ("random-10", "class-1", "class-2") and not set(vsuite.seeds) & set(suite.seeds)
    assert vsuite.holdout == 2000 and not vsuite.carved  # fmnist-quick uses 2,500 of 60,000 train images
    assert "salun_mia" in vsuite.evaluators and "rmia" in vsuite.evaluators and "ulira" not in vsuite.evaluators
    with pytest.raises(ValueError, match="seeds of suite"):
        make_validation_suite(suite, [3, 1000], 10, 10_000, 60_000)
    two_classes = dataclasses.replace(suite, scenarios=("class-0", "class-1", "class-9"))
    one_each = make_validation_suite(two_classes, seeds, 10, 10_000, 60_000, classes=1)
    assert one_each.scenarios == ("class-2", "class-3", "class-4")
    assert make_validation_suite(two_classes, seeds, 10, 10_000, 60_000).scenarios == (
        "class-2", "class-3", "class-4", "class-5", "class-6", "class-7")
    one_class = dataclasses.replace(suite, scenarios=("class-0",))  # 3 classes: only 2 are left to validate on
    assert make_validation_suite(one_class, seeds, 3, 10_000, 60_000, classes=3).scenarios == ("class-1", "class-2")
    with pytest.raises(ValueError, match="no class is left"):
        make_validation_suite(dataclasses.replace(suite, scenarios=tuple(f"class-{c}" for c in range(10))),
                              seeds, 10, 10_000, 60_000)
    whole = load_suite("digits-smoke")  # no train subset: the validation test set is carved from the pool
    assert make_validation_suite(whole, seeds, 10, 360, 1437).carved


class Forbidden(torch.Tensor):
    """A test-split tensor: its size may be read (it sizes the validation test set), its contents never."""

    ALLOWED: ClassVar[set] = {torch.Tensor.__len__, torch.Tensor.size, torch.Tensor.dim, torch.Tensor.shape.__get__}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func not in cls.ALLOWED:
            raise AssertionError(f"tuning read the test split ({getattr(func, '__name__', func)})")
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.fixture()
def guarded(monkeypatch):
    """Make the test split raise when read, and record every (scenario, seed) a split is made for."""
    real_load, real_split = harness.protocol.datasets.load_dataset, harness.protocol.suite.make_split
    splits: list[tuple[str, int]] = []

    def load(name, root=None):
        arrays = real_load(name, root)
        return dataclasses.replace(arrays, test_x=arrays.test_x.as_subclass(Forbidden),
                                   test_y=arrays.test_y.as_subclass(Forbidden))

    def split(suite, scenario, seed, train_y, test_y, *rest):
        splits.append((scenario.name, seed))
        return real_split(suite, scenario, seed, train_y, test_y, *rest)

    for module in (harness.protocol.suite, harness.commands.tune.validation, harness.commands.tune.command):
        monkeypatch.setattr(module, "load_dataset", load)
    monkeypatch.setattr(harness.protocol.suite, "make_split", split)  # every split is made through Suite.split
    return splits


def test_guard_catches_a_read_of_the_test_split(guarded):
    """The guard itself: scoring on the suite's own data (what tuning must not do) trips it."""
    with pytest.raises(AssertionError, match="read the test split"):
        load_suite("digits-smoke").load_data()


def test_tuning_reads_neither_the_suite_seeds_nor_its_forget_class_nor_the_test_split(guarded, tmp_path,
                                                                                         session_cache):
    suite = load_suite("digits-smoke")
    results = run_tune(TuneRequest(suite="digits-smoke", methods=["ssd"], budget=1, out=tmp_path / "t",
                                   cache_dir=session_cache.root, isolate=False), report=lambda _: None)
    assert [r.kind for r in results] == ["random", "class"]
    assert guarded, "no split was made: the spy did not see the runs"
    assert not {seed for _, seed in guarded} & set(suite.seeds)
    assert "class-3" not in {name for name, _ in guarded}  # the suite's forget class


# ----------------------------------------------------------------------------------------- end to end
def test_tune_end_to_end_on_digits(tmp_path, session_cache):
    shipped = (SUITES / "digits-smoke.toml").read_text()
    out = tmp_path / "tuning"
    lines: list[str] = []
    results = run_tune(TuneRequest(suite="digits-smoke", methods=["finetune", "ssd"], budget=2, out=out,
                                   cache_dir=session_cache.root, isolate=False), report=lines.append)
    # the same budget for every (method, kind), each trial a distinct configuration
    assert {(r.method, r.kind) for r in results} == {(m, k) for m in ("finetune", "ssd") for k in ("random", "class")}
    assert all(len(r.trials) == r.budget == 2 for r in results)
    assert not (SUITES / "digits-smoke.hparams.toml").exists() and (SUITES / "digits-smoke.toml").read_text() == shipped
    doc = tomllib.loads((out / "digits-smoke.hparams.toml").read_text())
    for result in results:
        table = doc[result.method][result.kind]
        assert {k: table[k] for k in result.space} == result.best.params
        assert table["tuning"]["budget"] == 2 and table["tuning"]["trials"] == 2
        log = pd.read_csv(out / "digits-smoke.tuning" / f"{result.method}-{result.kind}.csv")
        assert len(log) == 2 and log["best"].sum() == 1
        assert math.isclose(log.loc[log["best"], "avg_gap"].item(), result.best.objective, rel_tol=1e-5)
    # trial 0 is the method's current setting (registered default here: digits-smoke has no hparams file)
    assert results[0].trials[0].params == {"lr": 0.01, "epochs": 10}
    # the copied suite file runs with the tuned per-kind settings, and its rows say how they were tuned
    summary = run_suite(load_suite(str(out / "digits-smoke.toml")),
                        RunOptions(methods=["ssd"], seeds=[0], results_root=tmp_path / "results",
                                   cache_dir=session_cache.root, progress=False))
    rows = {r["scenario"]: r for r in summary.rows}
    for result in (r for r in results if r.method == "ssd"):
        row = rows["random-10" if result.kind == "random" else "class-3"]
        assert row["tuning_budget"] == 2 and row["tuning_trials"] == 2 and "validation" in row["tuned_on"]
        assert all(f'"{k}": {v}' in row["hparams"] for k, v in result.best.params.items())


def test_write_updates_the_hparams_file_beside_a_suite_file(tmp_path, session_cache):
    suite_path = tmp_path / "digits-copy.toml"
    suite_path.write_text((SUITES / "digits-smoke.toml").read_text())
    (tmp_path / "digits-copy.hparams.toml").write_text("[finetune]\nepochs = 3\n\n[ssd]\nalpha = 50.0\n")
    run_tune(TuneRequest(suite=str(suite_path), methods=["ssd"], budget=1, kinds=["random"], out=tmp_path / "work",
                         write=True, cache_dir=session_cache.root, isolate=False), report=lambda _: None)
    doc = tomllib.loads((tmp_path / "digits-copy.hparams.toml").read_text())
    assert doc["finetune"] == {"epochs": 3}  # other methods are kept
    assert "alpha" not in doc["ssd"] and doc["ssd"]["random"]["alpha"] == 50.0  # trial 0: the current setting
    assert doc["ssd"]["random"]["tuning"]["log"] == "digits-copy.tuning/ssd-random.csv"
    assert (tmp_path / "digits-copy.tuning" / "ssd-random.csv").is_file()


def test_shipped_fmnist_quick_settings_were_tuned_with_one_budget():
    """Every built-in method and scenario kind of fmnist-quick has a tuning record with the same budget,
    a complete trial log beside it, and settings inside the method's declared space."""
    suite = load_suite("fmnist-quick")
    kinds = {s.split("-")[0] for s in suite.scenarios}
    budgets = set()
    for name, spec in _tunable().items():
        for kind in sorted(kinds & set(spec.scenarios)):
            record = tuning_record(suite.hparams, name, kind)
            assert record, f"{name} ({kind}) has no tuning record"
            budgets.add(record["budget"])
            assert record["trials"] == record["budget"]
            log = pd.read_csv(SUITES / record["log"])
            assert len(log) == record["budget"] and math.isclose(log["avg_gap"].min(), record["objective"], abs_tol=1e-3)
            values = suite_layer(suite.hparams, name, kind)
            for knob_name, knob in spec.search_space.items():
                assert knob.clip(values[knob_name]) == values[knob_name], f"{name}.{knob_name} outside its space"
    assert len(budgets) == 1, f"unequal budgets {budgets}"


def test_shipped_fmnist_scenarios_settings_are_fmnist_quicks_random_ones_and_say_so():
    """fmnist-scenarios is not tuned on its own: each random-family method's setting, in every kind the suite's
    scenarios read (random, memorised, entangled; sequential reads random), is fmnist-quick's tuned random one, and
    its tuning record names fmnist-quick's trial log and says the other kinds were not tuned."""
    from harness.protocol.splits import parse_scenario
    from harness.protocol.scoring import hparams_kind

    quick, suite = load_suite("fmnist-quick"), load_suite("fmnist-scenarios")
    same = ("dataset", "train_subset", "test_subset", "subset_seed", "pool", "model", "recipe", "oracles", "seeds",
            "max_time_ratio", "unlearn_augment", "evaluate")
    assert {k: getattr(suite, k) for k in same} == {k: getattr(quick, k) for k in same}
    kinds = {hparams_kind(parse_scenario(s).kind) for s in suite.scenarios}
    assert kinds == {"random", "memorised", "entangled"}
    for name, spec in _tunable().items():
        if not spec.supports("random"):
            continue
        expected = suite_layer(quick.hparams, name, "random")
        for kind in sorted(kinds):
            assert suite_layer(suite.hparams, name, kind) == expected, (name, kind)
            record = tuning_record(suite.hparams, name, kind)
            assert record == {**tuning_record(quick.hparams, name, "random"), "tuned_on": record["tuned_on"]}
            assert (SUITES / record["log"]).is_file() and record["log"].startswith("fmnist-quick.tuning/")
            assert "fmnist-quick validation" in record["tuned_on"]
            assert kind == "random" or record["tuned_on"].startswith(f"not tuned on {kind} scenarios")
