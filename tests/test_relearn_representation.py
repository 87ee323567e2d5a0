"""The ``relearn`` and ``representation`` evaluators: known answers on tiny worlds, the declared feature layer of
every built-in architecture, determinism, the declared directions (a planted flipped direction turns a test red)
and one run through the real CLI."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from harness.commands.cli import main
from harness.core.results import read_results
from harness.evaluate import EVALUATORS, EvalContext, get_evaluator
from harness.evaluate import relearn as relearn_module
from harness.evaluate.base import check_evaluation
from harness.evaluate.relearn import relearn_subsets, steps_to_reach
from harness.evaluate.representation import linear_cka, penultimate_features, probe_folds, unbiased_hsic
from harness.protocol.architectures import build_model, feature_head, register_model
from harness.protocol.suite import load_suite
from harness.training.cache import ArtifactCache
from harness.training.reference_models import get_oracle, get_original
from harness.training.workspace import Workspace
from leaderboard.attacks import gap_function

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parent.parent
AXIS_METRICS = ("relearn_forget_acc", "probe_forget_acc")  # the two metrics that enter the privacy axis


@dataclasses.dataclass
class ClassWorld:
    """fmnist-tiny, class-0, seed 0: an original, three independent retrains, and the original with the forget
    class suppressed in its head only (the failure mode both evaluators exist to catch)."""

    workspace: Workspace
    split: object
    original: torch.nn.Module
    oracles: list[torch.nn.Module]
    suppressed: torch.nn.Module

    def context(self, references: list[torch.nn.Module] | None = None) -> EvalContext:
        refs = self.oracles[:2] if references is None else references
        return EvalContext(self.workspace, self.split, 0, self.original, refs)

    def evaluate(self, evaluator: str, model: torch.nn.Module,
                 references: list[torch.nn.Module] | None = None) -> dict[str, float]:
        return get_evaluator(evaluator).fn(model, self.context(references))


@pytest.fixture(scope="module")
def class_world(tmp_path_factory) -> ClassWorld:
    from harness.protocol.datasets import DatasetNotFound

    suite = load_suite(str(ROOT / "tests" / "suites" / "fmnist-tiny.toml"))
    try:
        data = suite.load_data()
    except DatasetNotFound as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")
    suite = dataclasses.replace(suite, evaluate={**suite.evaluate, "evaluators": ["relearn", "representation"]})
    ws = Workspace(suite, data, ArtifactCache(tmp_path_factory.mktemp("cache")), CPU)
    split = suite.split(data, "class-0", 0)
    original = get_original(ws, 0).model
    oracles = [get_oracle(ws, split, k).model for k in range(3)]  # k = 2: a third retrain, beyond the suite's K
    suppressed = copy.deepcopy(original)
    with torch.no_grad():
        dict(suppressed.named_modules())[feature_head(suite.model)].bias[0] -= 10.0  # forget accuracy 0
    return ClassWorld(ws, split, original, oracles, suppressed)


# ---------------------------------------------------------------------------------------------- relearn
def test_steps_to_reach_is_the_first_step_at_the_target_and_censors_at_budget_plus_one():
    assert steps_to_reach([0.0, 50.0, 95.0, 99.0], 90.0) == 2
    assert steps_to_reach([95.0, 10.0], 90.0) == 0
    assert steps_to_reach([0.0, 10.0, 20.0], 90.0) == 3  # not reached within 2 steps


def test_relearn_subsets_hold_out_forget_examples_and_mix_in_retain(class_world):
    split = class_world.split
    tune, held_out = relearn_subsets(split, "forget", 32)
    forget, retain = set(split.forget.tolist()), set(split.retain.tolist())
    assert len(set(tune.tolist()) & forget) == 32 and len(set(tune.tolist()) & retain) == 32
    assert set(held_out.tolist()) == forget - set(tune.tolist())  # never fine-tuned on what is scored
    tune_r, held_r = relearn_subsets(split, "retain", 32)
    assert set(tune_r.tolist()) <= retain and len(tune_r) == 64 and torch.equal(held_r, held_out)
    assert torch.equal(relearn_subsets(split, "forget", 32)[0], tune)  # seeded by the scenario and seed


def relearn_known_answers(world: ClassWorld) -> None:
    """The identity 'unlearning' (the original) relearns at once; a retrain must learn the class; the head-only
    suppression comes back far faster than retraining."""
    original = world.evaluate("relearn", world.original)
    oracle = world.evaluate("relearn", world.oracles[0])
    suppressed = world.evaluate("relearn", world.suppressed)
    assert original["relearn_steps"] == 0 and original["relearn_forget_acc"] >= 80
    assert oracle["relearn_steps"] > 3
    assert suppressed["relearn_steps"] < oracle["relearn_steps"]
    assert suppressed["relearn_forget_acc"] > oracle["relearn_forget_acc"] + 20


def test_relearn_known_answers(class_world):
    relearn_known_answers(class_world)


def test_planted_gradient_ascent_in_relearn_turns_the_known_answers_red(class_world, monkeypatch):
    real = relearn_module.F.cross_entropy
    monkeypatch.setattr(relearn_module.F, "cross_entropy", lambda *a, **k: -real(*a, **k))
    with pytest.raises(AssertionError):
        relearn_known_answers(class_world)


def test_relearn_is_deterministic_and_leaves_the_model_untouched(class_world):
    before = copy.deepcopy(class_world.suppressed.state_dict())
    first = class_world.evaluate("relearn", class_world.suppressed)
    assert class_world.evaluate("relearn", class_world.suppressed) == first
    assert all(torch.equal(before[k], v) for k, v in class_world.suppressed.state_dict().items())


def test_relearn_retain_mode_does_not_bring_back_a_retrained_models_class(class_world):
    ctx = class_world.context()
    ctx = dataclasses.replace(ctx, workspace=dataclasses.replace(
        ctx.workspace, suite=dataclasses.replace(ctx.suite, evaluate={**ctx.suite.evaluate,
                                                                      "relearn": {"data": "retain"}})))
    assert ctx.options("relearn")["data"] == "retain"
    assert get_evaluator("relearn").fn(class_world.oracles[0], ctx)["relearn_forget_acc"] == 0.0


# ------------------------------------------------------------------------------------------ representation
def test_unbiased_hsic_is_the_u_statistic():
    """Song et al.'s closed form against the U-statistic it estimates, by brute force over ordered quadruples."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    k, l = a @ a.T, b @ b.T
    n = len(k)
    terms = [k[i, j] * (l[i, j] + l[q, r] - 2 * l[i, q]) for i, j, q, r in itertools.permutations(range(n), 4)]
    assert unbiased_hsic(k, l) == pytest.approx(float(np.mean(terms)), rel=1e-9)


def cka_known_answers(cka) -> None:
    """Debiased linear CKA: 1 with itself and under its invariances, about 0 with independent noise."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64))
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)
    rotation = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    assert cka(x, 3.0 * x @ rotation + 5.0) == pytest.approx(1.0, abs=1e-9)  # isotropic scale, rotation, shift
    assert abs(cka(x, rng.normal(size=(300, 64)))) < 0.03


def test_debiased_cka_of_a_representation_with_itself_is_one_and_with_noise_near_zero():
    cka_known_answers(linear_cka)


def test_the_plain_estimator_would_call_unrelated_features_similar():
    """What the debiasing is for: the biased estimator on the same independent features."""
    rng = np.random.default_rng(1)
    x, noise = rng.normal(size=(300, 64)), rng.normal(size=(300, 64))
    xc, nc = x - x.mean(0), noise - noise.mean(0)
    biased = np.linalg.norm(xc.T @ nc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(nc.T @ nc))
    assert biased > 0.1 and abs(linear_cka(x, noise)) < 0.03


def test_planted_flipped_cka_turns_the_known_answers_red():
    with pytest.raises(AssertionError):
        cka_known_answers(lambda a, b: 1.0 - linear_cka(a, b))


@pytest.mark.parametrize("name, shape, width", [
    ("mlp", (1, 8, 8), 256), ("mlp-128", (1, 8, 8), 128), ("cnn-small", (1, 8, 8), 128),
    ("cnn-small", (1, 28, 28), 128), ("resnet18-cifar", (3, 8, 8), 512), ("vit-tiny", (3, 8, 8), 192),
])
def test_declared_feature_layer_is_the_penultimate_representation(name, shape, width):
    """The head applied to the captured features gives the model's logits: the declared layer is the input of
    the classifier, for every built-in architecture."""
    model = build_model(name, shape, 10, seed=0).eval()
    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(0))
    feats = penultimate_features(model, feature_head(name), x)
    assert feats.shape == (5, width)
    head = dict(model.named_modules())[feature_head(name)]
    with torch.no_grad():
        assert torch.allclose(head(torch.as_tensor(feats, dtype=torch.float32)), model(x), atol=1e-4)


def test_feature_layer_errors_are_clear():
    with pytest.raises(KeyError, match="did you mean 'mlp-128'"):
        feature_head("mlp-12")
    register_model("tests-headless-model")(lambda shape, classes: torch.nn.Linear(1, classes))
    with pytest.raises(ValueError, match="declares no feature layer"):
        feature_head("tests-headless-model")
    with pytest.raises(ValueError, match="no module 'fc'"):
        penultimate_features(build_model("mlp", (1, 2, 2), 3), "fc", torch.zeros(1, 1, 2, 2))


def test_a_retrains_cka_to_other_retrains_matches_the_oracle_pairs(class_world):
    """The third retrain scored against oracles 0 and 1 lands where the oracle pair is; the original's forget
    features are further from the retrains' than the retrains are from each other."""
    oracles = class_world.oracles
    pair = class_world.evaluate("representation", oracles[0], [oracles[1]])
    third = class_world.evaluate("representation", oracles[2], oracles[:2])
    original = class_world.evaluate("representation", class_world.original, oracles[:2])
    for metric in ("cka_forget", "cka_test"):
        assert third[metric] == pytest.approx(pair[metric], abs=0.03)
    assert original["cka_forget"] < min(pair["cka_forget"], third["cka_forget"]) - 0.01


def test_the_probe_reads_the_forget_class_from_the_originals_features_better_than_from_a_retrains(class_world):
    original = class_world.evaluate("representation", class_world.original)
    oracle = class_world.evaluate("representation", class_world.oracles[2])
    suppressed = class_world.evaluate("representation", class_world.suppressed)
    assert original["probe_forget_acc"] > oracle["probe_forget_acc"] + 5
    assert suppressed["probe_forget_acc"] == original["probe_forget_acc"]  # the head is not what it reads
    folds = probe_folds(class_world.split, 500)
    for fit, scored in folds:
        assert not set(fit.tolist()) & set(scored.tolist())  # scored on forget images the probe never fitted
    scored = sorted(i for _, fold in folds for i in fold.tolist())
    assert scored == sorted(class_world.split.forget.tolist())  # every forget image, once


def test_representation_is_deterministic(class_world):
    first = class_world.evaluate("representation", class_world.original)
    assert class_world.evaluate("representation", class_world.original) == first


# --------------------------------------------------------------------------------------- declared directions
def _oracle_gap_ordering(world: ClassWorld, metric: str, evaluator: str) -> None:
    """With its declared direction, a model holding more forget information than the retrains (the original)
    gets a larger gap to the oracles' value than one more retrain does."""
    info = next(m for m in EVALUATORS[evaluator].metrics if m.name == metric)
    target = np.mean([world.evaluate(evaluator, world.oracles[k], world.oracles[:k] + world.oracles[k + 1:2])[metric]
                      for k in range(2)])
    gap = gap_function(info.direction)
    original = float(gap(world.evaluate(evaluator, world.original)[metric], target))
    retrain = float(gap(world.evaluate(evaluator, world.oracles[2])[metric], target))
    assert original > retrain + 5


@pytest.mark.parametrize("metric, evaluator", [("relearn_forget_acc", "relearn"),
                                               ("probe_forget_acc", "representation")])
def test_declared_direction_puts_remaining_information_far_from_the_oracles(class_world, metric, evaluator):
    info = next(m for m in EVALUATORS[evaluator].metrics if m.name == metric)
    assert info.direction == "match-oracle" and info.axis == "privacy" and info.privacy
    _oracle_gap_ordering(class_world, metric, evaluator)


@pytest.mark.parametrize("metric, evaluator", [("relearn_forget_acc", "relearn"),
                                               ("probe_forget_acc", "representation")])
def test_planted_flipped_direction_turns_the_gap_test_red(class_world, monkeypatch, metric, evaluator):
    """'higher is better' on a metric whose high values mean remaining information: the original would pass."""
    spec = EVALUATORS[evaluator]
    flipped = tuple(dataclasses.replace(m, direction="higher") if m.name == metric else m for m in spec.metrics)
    monkeypatch.setitem(EVALUATORS._entries, evaluator, dataclasses.replace(spec, metrics=flipped))
    with pytest.raises(AssertionError):
        _oracle_gap_ordering(class_world, metric, evaluator)


def test_cka_is_shown_off_both_axes_and_relearn_steps_only_in_class_scenarios():
    metrics = {m.name: m for name in ("relearn", "representation") for m in EVALUATORS[name].metrics}
    for name in ("cka_forget", "cka_test", "relearn_steps"):
        assert metrics[name].axis == "" and metrics[name].direction == "match-oracle"
    assert metrics["relearn_steps"].scenarios == ("class",)
    assert not EVALUATORS["relearn"].per_method and not EVALUATORS["representation"].per_method


def test_options_are_checked_before_anything_trains():
    check_evaluation({"evaluators": ["relearn", "representation"], "relearn": {"data": "retain", "steps": 5},
                      "representation": {"max_examples": 100}}, "x.toml")
    with pytest.raises(ValueError, match="did you mean 'forget'"):
        check_evaluation({"evaluators": ["relearn"], "relearn": {"data": "forgt"}}, "x.toml")
    with pytest.raises(ValueError, match="threshold"):
        check_evaluation({"evaluators": ["relearn"], "relearn": {"threshold": 1.5}}, "x.toml")
    with pytest.raises(ValueError, match="did you mean 'probe_C'"):
        check_evaluation({"evaluators": ["representation"], "representation": {"probe_c": 1.0}}, "x.toml")


# ------------------------------------------------------------------------------------------ through the CLI
@pytest.mark.slow
def test_cli_writes_both_evaluators_with_gaps_to_the_oracles(tmp_path):
    suite_file = tmp_path / "relearn-digits.toml"
    suite_file.write_text('extends = "digits-smoke"\nname = "relearn-digits"\n[run]\nscenarios = ["class-3"]\n'
                          '[evaluate]\nevaluators = ["accuracy", "relearn", "representation"]\n')
    assert main(["run", "--suite", str(suite_file), "--seeds", "0", "--methods", "original,retrain,finetune",
                 "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-isolation"]) == 0
    frame = read_results(tmp_path / "r", "relearn-digits").set_index("method")
    assert (frame["status"] == "ok").all()
    for metric in ("relearn_forget_acc", "relearn_steps", "cka_forget", "cka_test", "probe_forget_acc"):
        assert frame[metric].notna().all() and frame[f"gap_{metric}"].notna().all()
    assert frame.loc["original", "relearn_steps"] == 0
    assert frame.loc["original", "gap_cka_forget"] > frame.loc["retrain", "gap_cka_forget"]
    meta = json.loads(frame.loc["finetune", "metric_meta"])
    assert meta["relearn_forget_acc"]["axis"] == "privacy" and meta["cka_forget"]["axis"] == ""
    assert set(json.loads(frame.loc["finetune", "evaluator_seconds"])) >= {"relearn", "representation"}
    assert not math.isnan(frame.loc["finetune", "gap_probe_forget_acc"])


def test_the_relearn_step_is_torchs_sgd_with_momentum():
    """relearn's functional step (no torch._dynamo import) makes exactly torch.optim.SGD's updates, momentum kept
    across steps."""
    from harness.evaluate.relearn import sgd_step

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    by_class, by_step = copy.deepcopy(model), copy.deepcopy(model)
    optimizer = torch.optim.SGD(by_class.parameters(), lr=0.1, momentum=0.9)
    params = list(by_step.parameters())
    buffers: list = [None] * len(params)
    for _ in range(4):
        optimizer.zero_grad()
        F.cross_entropy(by_class(x), y).backward()
        optimizer.step()
        for p in params:
            p.grad = None
        F.cross_entropy(by_step(x), y).backward()
        sgd_step(params, buffers, 0.1, 0.9)
    assert all(b is not None for b in buffers)
    assert all(torch.equal(a, b) for a, b in zip(by_class.parameters(), by_step.parameters(), strict=True))
