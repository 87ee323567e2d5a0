"""The paper-comparable class metrics: Kodge et al.'s class MIA (``kodge_mia``) and the unlearned-vs-retrained
class attack (``uvr_*``); MIA-NN's ``neighbour`` features; the new options' validation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_known_answers import TableModel, context, evaluate, logits_from_probs, world

from harness.commands.cli import main
from harness.core.results import read_results
from harness.evaluate import EvalContext, get_evaluator
from harness.evaluate.base import check_evaluation
from harness.evaluate.kodge_mia import capped, class_mia
from harness.evaluate.mia_nn import features
from harness.evaluate.unlearned_vs_retrained import uvr_attack
from harness.pipeline.row import SeedContext
from harness.protocol.methods import get_method
from harness.protocol.scoring import HEADLINES
from harness.protocol.suite import load_suite
from harness.training.workspace import Workspace

CPU = torch.device("cpu")
SUITE_FILE = "tests/suites/class-digits.toml"


# --------------------------------------------------------------------------------- Kodge's class MIA
def _probs(labels: list[int], true_conf: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Rows with ``true_conf`` on the example's label and the rest spread evenly over the other classes."""
    rows = np.tile(((1 - true_conf) / (n_classes - 1))[:, None], (1, n_classes))
    rows[np.arange(len(labels)), labels] = true_conf
    return rows


def _kodge_world(forget_train: np.ndarray, forget_test: np.ndarray) -> tuple[TableModel, EvalContext]:
    """Forget class 0: 10 train and 10 test images; 30 retain train images the model is sure of."""
    n_forget, n_retain, n_other_test = len(forget_train), 30, 6
    train_y = [0] * n_forget + [1, 2] * (n_retain // 2)
    test_y = [0] * len(forget_test) + [1, 2] * (n_other_test // 2)
    data, split = world(train_y, test_y, forget=list(range(n_forget)), kind="class", forget_class=0)
    conf = np.r_[forget_train, np.linspace(0.95, 0.999, n_retain), forget_test, np.full(n_other_test, 0.9)]
    return TableModel(logits_from_probs(_probs(train_y + test_y, conf))), context(data, split)


FORGOTTEN = np.linspace(0.001, 0.02, 10)  # a retrained model: the forgotten class gets almost nothing
REMEMBERED = np.linspace(0.95, 0.999, 10)  # the original: forget-class images look like the retain set


def test_kodge_mia_a_retrained_like_model_scores_100_and_an_original_like_one_0():
    assert evaluate("kodge_mia", *_kodge_world(FORGOTTEN, np.linspace(0.002, 0.03, 10))) == {"kodge_mia": 100.0}
    assert evaluate("kodge_mia", *_kodge_world(REMEMBERED, np.linspace(0.9, 0.99, 10))) == {"kodge_mia": 0.0}


def test_kodge_mia_is_the_share_of_forget_class_test_images_called_forget_like():
    half = np.r_[np.linspace(0.002, 0.03, 4), np.linspace(0.96, 0.99, 6)]  # 4 of 10 test images look forgotten
    assert evaluate("kodge_mia", *_kodge_world(FORGOTTEN, half))["kodge_mia"] == 40.0


def test_kodge_mia_fits_on_train_images_not_test_images():
    """Forget-class test images alone look forgotten: the fit (retain vs forget *train*) calls them retain-like
    only if the forget train images still look remembered."""
    model, ctx = _kodge_world(REMEMBERED, np.linspace(0.002, 0.03, 10))
    assert evaluate("kodge_mia", model, ctx)["kodge_mia"] == 0.0


def test_class_mia_matches_sklearn_and_keeps_the_imbalance():
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    retain, forget = rng.uniform(0.9, 1.0, 90), rng.uniform(0.9, 1.0, 10)  # indistinguishable, 9:1
    target = rng.uniform(0.0, 1.0, 50)
    clf = SVC(C=3, gamma="auto").fit(np.r_[retain, forget].reshape(-1, 1), np.r_[np.ones(90), np.zeros(10)])
    assert class_mia(retain, forget, target) == pytest.approx(100 * (clf.predict(target.reshape(-1, 1)) == 0).mean())
    assert class_mia(retain, forget, target) == 0.0  # the majority label wins where the two sets overlap


def test_capped_keeps_the_ratio_is_seeded_and_leaves_small_sets_alone():
    retain, forget = torch.arange(100, 1000), torch.arange(100)
    r, f = capped(retain, forget, 200, seed=7)
    assert (len(r), len(f)) == (180, 20)
    assert set(r.tolist()) <= set(retain.tolist()) and set(f.tolist()) <= set(forget.tolist())
    assert torch.equal(r, r.sort().values) and len(set(r.tolist())) == 180
    again = capped(retain, forget, 200, seed=7)
    assert torch.equal(again[0], r) and torch.equal(again[1], f)
    assert not torch.equal(capped(retain, forget, 200, seed=8)[0], r)
    small = capped(retain, forget, 1000, seed=7)
    assert small[0] is retain and small[1] is forget


def test_kodge_mia_subsampled_fit_gives_the_same_answer_on_a_clear_case():
    model, ctx = _kodge_world(FORGOTTEN, np.linspace(0.002, 0.03, 10))
    suite = dataclasses.replace(ctx.suite, evaluate={**ctx.suite.evaluate, "kodge_mia": {"max_fit": 20}})
    ctx = dataclasses.replace(ctx, workspace=dataclasses.replace(ctx.workspace, suite=suite))
    assert evaluate("kodge_mia", model, ctx)["kodge_mia"] == 100.0


def test_kodge_mia_on_digits_separates_the_oracle_from_the_original(digits_class):
    w = digits_class
    ctx = EvalContext(w.workspace, w.split, 0, None, [])
    oracle, original = evaluate("kodge_mia", w.oracle, ctx), evaluate("kodge_mia", w.original, ctx)
    assert oracle["kodge_mia"] >= 95 and original["kodge_mia"] <= 5, (oracle, original)


# ------------------------------------------------------------------ unlearned vs retrained (class U-LiRA)
def _class_bank(n: int = 8, pool: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Per-example mean signals of forget-class images and which shadow's half holds each image (pairs)."""
    rng = np.random.default_rng(seed)
    in_forget = np.zeros((n, pool), bool)
    for i in range(0, n, 2):
        perm = rng.permutation(pool)
        in_forget[i, perm[: pool // 2]] = True
        in_forget[i + 1, perm[pool // 2:]] = True
    return rng.normal(-8, 2, pool), in_forget, rng  # per-example difficulty


def _models(base: np.ndarray, rng: np.random.Generator, n: int = 8, shift: float = 0.0) -> np.ndarray:
    """[n, pool] signals of n independently trained models: a per-model offset and per-example noise."""
    return base + shift + rng.normal(0, 0.5, (n, 1)) + rng.normal(0, 0.7, (n, len(base)))


def _attack(seed: int = 0, shift: float = 0.0):
    base, in_forget, rng = _class_bank(seed=seed)
    return uvr_attack(_models(base, rng, shift=shift), _models(base, rng), in_forget)


def test_uvr_is_exactly_50_when_the_unlearned_shadows_are_the_retrained_ones():
    base, in_forget, rng = _class_bank()
    retrained = _models(base, rng)
    result = uvr_attack(retrained, retrained, in_forget)
    assert result.accuracy == 50.0 and result.auc == 50.0


def test_uvr_sits_near_50_for_models_distributed_like_retraining():
    accuracies = [_attack(seed).accuracy for seed in range(10)]
    assert abs(np.mean(accuracies) - 50) < 3, accuracies


def test_uvr_calls_the_unlearned_shadows_positive():
    """A method that leaves the forgotten class a little more probable is detected, unlearned = positive: a swap
    of the two sides would put the accuracy below 50."""
    result = _attack(shift=1.5)
    assert result.accuracy > 75 and result.auc > 80, result


def _digits_ctx(suite, cache, memo: dict | None = None) -> SeedContext:
    return SeedContext(Workspace(suite, suite.load_data(), cache, CPU), "class-3", 0, {} if memo is None else memo)


def _evaluate(ctx: SeedContext, evaluator: str, method: str, model: torch.nn.Module) -> dict[str, float]:
    spec = get_method(method)
    return get_evaluator(evaluator).fn(model, ctx.eval_context(spec, dict(spec.hparams)))


def test_uvr_reference_is_50_and_the_original_saturates_on_digits(digits_suite, session_cache):
    ctx = _digits_ctx(digits_suite, session_cache)
    oracle = _evaluate(ctx, "unlearned_vs_retrained", "retrain", ctx.oracle.model)
    original = _evaluate(ctx, "unlearned_vs_retrained", "original", ctx.original.model)
    assert oracle == {"uvr_acc": 50.0, "uvr_auc": 50.0, "uvr_n_shadows": 4.0}
    assert original["uvr_acc"] > 95 and original["uvr_auc"] > 95, original


def test_uvr_reuses_the_method_runs_that_ulira_cached(digits_suite, session_cache):
    """No new method runs: after U-LiRA ran finetune on the shadows, the attack works with running forbidden."""
    spec = get_method("finetune")
    _evaluate(_digits_ctx(digits_suite, session_cache), "ulira", "finetune", torch.nn.Identity())
    ectx = _digits_ctx(digits_suite, session_cache).eval_context(spec, dict(spec.hparams))

    def forbidden(*args, **kwargs):
        raise AssertionError("the attack ran the method again")

    ectx = dataclasses.replace(ectx, unlearn=forbidden)
    values = get_evaluator("unlearned_vs_retrained").fn(torch.nn.Identity(), ectx)
    assert 50 < values["uvr_acc"] <= 100 and values["uvr_n_shadows"] == 4.0


# ------------------------------------------------------------------------------ MIA-NN neighbour features
def test_neighbour_features_are_the_neighbour_probabilities_only():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]))
    assert np.allclose(features(logits, "neighbour", [2]), [[0.3], [0.6]])
    assert features(logits, "neighbour", [2, 1]).shape == (2, 2)


def test_mia_nn_neighbour_features_run_and_differ_from_softmax(digits_suite, session_cache):
    values = {}
    for kind in ("softmax", "neighbour"):
        suite = dataclasses.replace(digits_suite, evaluate={**digits_suite.evaluate,
                                                            "mia_nn": {"variant": "discriminate", "features": kind}})
        ctx = _digits_ctx(suite, session_cache)
        values[kind] = _evaluate(ctx, "mia_nn", "original", ctx.original.model)["mia_nn"]
    assert np.isfinite(values["neighbour"]) and values["neighbour"] != values["softmax"], values


# ------------------------------------------------------------------------------------- declarations, options
def test_the_new_metrics_are_class_only_paper_comparable_and_in_no_headline():
    for name in ("kodge_mia", "unlearned_vs_retrained"):
        evaluator = get_evaluator(name)
        assert evaluator.scenarios == ("class",)
        for m in evaluator.metrics:
            assert m.axis == "" and not m.privacy
            assert m.paper_comparable == (m.direction != "info")
    uvr = get_evaluator("unlearned_vs_retrained")
    assert uvr.per_method and uvr.needs == ("shadow-bank",) and uvr.prepare is not None
    in_headlines = {t for terms in HEADLINES.values() for kind in terms.values() for t in kind}
    assert not in_headlines & {"kodge_mia", "uvr_acc", "uvr_auc"}


@pytest.mark.parametrize(("table", "message"), [
    ({"kodge_mia": {"gama": 1.0}}, "unknown option 'gama'; did you mean 'gamma'"),
    ({"kodge_mia": {"gamma": "autoo"}}, "unknown gamma 'autoo'.*; did you mean 'auto'"),
    ({"kodge_mia": {"gamma": -1.0}}, "gamma must be a positive number"),
    ({"kodge_mia": {"C": 0}}, "C must be a positive number"),
    ({"kodge_mia": {"max_fit": 1}}, "max_fit must be an integer >= 2"),
    ({"unlearned_vs_retrained": {"variance": "per_example"}}, "unknown variance 'per_example'; did you mean 'per-example'"),
    ({"unlearned_vs_retrained": {"variance": "xyz"}}, "unknown variance 'xyz'; known: global, per-example"),
    ({"unlearned_vs_retrained": {"min_count": 1.5}}, "min_count must be an integer"),
    ({"unlearned_vs_retrained": {"min_cout": 3}}, "did you mean 'min_count'"),
    ({"mia_nn": {"features": "neighbor"}}, "unknown features 'neighbor'; did you mean 'neighbour'"),
    ({"mia_nn": {"variant": "discriminat"}}, "did you mean 'discriminate'"),
    ({"mia_nn": {"neighbours": 0}}, "neighbours must be a positive integer"),
])
def test_options_are_validated_with_did_you_mean(table, message):
    evaluate_table = {"evaluators": ["kodge_mia", "unlearned_vs_retrained", "mia_nn"], **table}
    with pytest.raises(ValueError, match=f"x.toml \\[evaluate.*{message}"):
        check_evaluation(evaluate_table, "x.toml")


def test_default_and_documented_options_pass():
    check_evaluation({"evaluators": ["kodge_mia", "unlearned_vs_retrained", "mia_nn"],
                      "kodge_mia": {"gamma": 0.5, "max_fit": 500, "C": 1},
                      "unlearned_vs_retrained": {"variance": "per-example"},
                      "mia_nn": {"features": "neighbour", "neighbours": 2}}, "x.toml")


# ------------------------------------------------------------------------------------------ through the CLI
@pytest.mark.slow
def test_cli_writes_the_paper_comparable_class_metrics(tmp_path):
    assert main(["run", "--suite", SUITE_FILE, "--seeds", "0", "--methods", "original,retrain,finetune",
                 "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]) == 0
    frame = read_results(tmp_path / "r", load_suite(SUITE_FILE).name).set_index("method")
    assert (frame["status"] == "ok").all()
    assert frame.loc["retrain", "kodge_mia"] >= 95 and frame.loc["original", "kodge_mia"] <= 5
    assert frame.loc["retrain", "uvr_acc"] == 50.0 and frame.loc["original", "uvr_acc"] > 95
    assert frame.loc["finetune", "gap_uvr_acc"] == pytest.approx(abs(frame.loc["finetune", "uvr_acc"] - 50))
    assert frame.loc["finetune", "gap_kodge_mia"] == pytest.approx(abs(frame.loc["finetune", "kodge_mia"] - 100))
    meta = json.loads(frame.loc["finetune", "metric_meta"])
    for name in ("kodge_mia", "uvr_acc", "uvr_auc"):
        assert meta[name]["paper_comparable"] and meta[name]["axis"] == ""
