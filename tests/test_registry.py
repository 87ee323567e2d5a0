"""One registry type for methods, model architectures, datasets and evaluators (harness/core/registry.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.core.registry import DuplicateName, Registry
from harness.evaluate.base import EVALUATORS, MetricInfo, register_evaluator
from harness.protocol.architectures import MODELS, build_model, register_model
from harness.protocol.datasets import DATASETS, load_dataset
from harness.protocol.methods import METHODS, PluginError, get_method, register_method

REGISTRIES = {"method": METHODS, "model": MODELS, "dataset": DATASETS, "evaluator": EVALUATORS}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_kind_is_one_registry_type(kind):
    registry = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    assert len(registry) > 0  # the built-ins are there on first read


@pytest.mark.parametrize(("kind", "typo", "meant"), [("method", "finetun", "finetune"), ("model", "mlp-12", "mlp-128"),
                                                     ("dataset", "digit", "digits"), ("evaluator", "acuracy", "accuracy")])
def test_an_unknown_name_says_did_you_mean(kind, typo, meant):
    with pytest.raises(KeyError, match=rf"unknown {kind} '{typo}'; did you mean .*'{meant}'"):
        REGISTRIES[kind][typo]


def test_the_lookups_raise_the_registry_error():
    with pytest.raises(KeyError, match="did you mean 'mlp'"):
        build_model("mpl", (1, 8, 8), 10)
    with pytest.raises(KeyError, match="did you mean 'digits'"):
        load_dataset("digts")
    with pytest.raises(KeyError, match="did you mean 'finetune'"):
        get_method("fine-tune")


def test_a_taken_name_is_refused_in_every_registry(monkeypatch):
    with pytest.raises(DuplicateName, match="model 'mlp' is already registered"):
        register_model("mlp")(lambda shape, classes: None)
    with pytest.raises(DuplicateName, match="dataset 'digits' is already registered"):
        DATASETS.register("digits", lambda root=None: None)
    with pytest.raises(DuplicateName, match="evaluator 'accuracy' is already registered"):
        register_evaluator("accuracy", [MetricInfo("x", "x")])(lambda model, ctx: {})
    with pytest.raises(PluginError, match="method 'finetune' is already registered"):
        register_method("finetune")(lambda task: task.model)


def test_a_plugin_registers_by_decorator_and_leaves_again():
    registry: Registry[object] = Registry("widget")

    @registry.decorator("spanner")
    def spanner():
        return "spanner"

    assert registry["spanner"] is spanner and registry.origins["spanner"] == __name__
    del registry["spanner"]
    assert "spanner" not in registry


def test_builtins_load_on_first_read_not_on_import():
    code = ("import sys; import harness.protocol.methods as m; assert 'baselines' not in sys.modules;"
            "assert 'finetune' in m.METHODS; assert 'baselines' in sys.modules;"
            "import harness.evaluate.base as e;"
            "assert 'accuracy' in e.EVALUATORS")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
