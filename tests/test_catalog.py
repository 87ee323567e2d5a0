"""Everything the project ships, enumerated from its registries: each suite parses and plans, each evaluator
declares what the protocol needs, suites can extend one another."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evaluate import EVALUATORS
from harness.evaluate.base import NEEDS, check_evaluation
from harness.pipeline.plan import RunOptions, plan_runs, select_methods
from harness.protocol.scoring import SCENARIO_KINDS
from harness.protocol.suite import SuiteError, load_suite, parse_definition, suite_files

SUITES = sorted(suite_files())


@pytest.mark.parametrize("name", SUITES)
def test_every_shipped_suite_parses_and_plans(name):
    suite = load_suite(name)
    check_evaluation(suite.evaluate, suite.path)
    plan = plan_runs(suite, RunOptions(), select_methods(suite, []))
    assert plan and {r.scenario for r in plan} == set(suite.scenarios)
    assert {r.seed for r in plan} == set(suite.seeds) and suite.oracles >= 1
    assert len({r.run_id for r in plan}) == len(plan)
    again = parse_definition(suite.definition)  # what rows store rebuilds the same suite
    assert (again.name, again.recipe, again.scenarios, again.seeds, again.evaluate, again.hparams, again.oracles) == (
        suite.name, suite.recipe, suite.scenarios, suite.seeds, suite.evaluate, suite.hparams, suite.oracles)


@pytest.mark.parametrize("name", sorted(EVALUATORS))
def test_every_evaluator_declares_its_metrics_needs_and_options(name):
    evaluator = EVALUATORS[name]
    assert evaluator.metrics and set(evaluator.needs) <= set(NEEDS)
    scored = [m for m in evaluator.metrics if m.direction != "info"]
    assert scored or not evaluator.scores, f"{name} scores nothing and is not registered as a check"
    assert evaluator.scores or not scored, f"{name} is a check but scores {scored[0].name}"
    for metric in evaluator.metrics:
        assert metric.description and set(metric.scenarios) <= set(SCENARIO_KINDS) and metric.scenarios
        assert metric.direction in ("match-oracle", "higher", "lower", "info")
    for kind in evaluator.scenarios:
        assert evaluator.metrics_for(kind), f"{name} runs on {kind} scenarios but has no metric there"
    for option, default in evaluator.options.items():
        assert isinstance(default, (bool, int, float, str)), (option, default)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_a_suite_extends_another_by_name_or_path(tmp_path):
    base = load_suite("digits-smoke")
    child = load_suite(str(_write(tmp_path, "child", 'extends = "digits-smoke"\nname = "child"\nversion = "1"\n'
                                                       '[train]\nepochs = 3\n[run]\nseeds = [7]\n')))
    assert child.recipe.epochs == 3 and child.recipe.lr == base.recipe.lr  # tables merge key by key
    assert child.seeds == (7,) and child.scenarios == base.scenarios and child.hparams == base.hparams
    grandchild = load_suite(str(_write(tmp_path, "grand", 'extends = "child.toml"\nname = "grand"\nversion = "1"\n')))
    assert grandchild.seeds == (7,) and grandchild.recipe.epochs == 3
    assert parse_definition(grandchild.definition).recipe == grandchild.recipe


def test_extends_errors_name_the_file(tmp_path):
    _write(tmp_path, "a", 'extends = "b.toml"\nname = "a"\nversion = "1"\n')
    _write(tmp_path, "b", 'extends = "a.toml"\nname = "b"\nversion = "1"\n')
    with pytest.raises(SuiteError, match="cycle"):
        load_suite(str(tmp_path / "a.toml"))
    path = _write(tmp_path, "c", 'extends = "digts-smoke"\nname = "c"\nversion = "1"\n')
    with pytest.raises(SuiteError, match="c.toml: extends 'digts-smoke'.*did you mean 'digits-smoke'"):
        load_suite(str(path))


def test_every_documented_evaluate_setting_is_accepted():
    """Settings the harness reads from [evaluate] (docs/reliability.md, docs/evaluators.md) pass validation."""
    check_evaluation({"evaluators": ["accuracy"], "copy_tv_fraction": 0.3, "noop_fraction": 0.1,
                      "shadow_models": 8, "shadow_audit_factor": 4}, "my-suite.toml")
