"""AMUN: the escalating-epsilon adversarial set, its reuse from the artifact cache, and the fine-tuning variants."""

from __future__ import annotations

import pytest
import torch

from harness.pipeline.driver import unlearn
from harness.protocol.methods import get_method
from harness.training.cache import ArtifactCache
from harness.training.loop import accuracy, predict_logits
from methods.adversarial import adversarial_set

EPS0 = 0.25  # on 8x8 digits this gives a mix of samples flipped at eps_init and after 1-2 doublings
STEPS = 10


@pytest.fixture(scope="module")
def attacked(digits_random):
    """The digits original attacked on (a subset of) its forget set."""
    model = digits_random.original
    x = digits_random.data.train_x[digits_random.split.forget][:64]
    y = digits_random.data.train_y[digits_random.split.forget][:64]
    return model, x, y, adversarial_set(model, x, y, eps_init=EPS0, steps=STEPS, max_doublings=8)


def test_every_example_is_within_its_epsilon_and_flipped(attacked):
    model, x, y, (x_adv, y_adv, eps, dist) = attacked
    assert torch.isfinite(eps).all(), "the cap was not reached on digits"
    assert torch.allclose(dist, (x_adv - x).flatten(1).norm(dim=1))
    assert (dist <= eps + 1e-5).all()
    assert (x_adv >= 0).all() and (x_adv <= 1).all()
    pred = predict_logits(model, x_adv).argmax(1)
    assert (pred != y).all()
    assert torch.equal(pred, y_adv)  # the label is the model's prediction at the stored iterate


def test_epsilon_stops_at_the_first_flip(attacked):
    model, x, y, (_, _, eps, _) = attacked
    k = torch.round(torch.log2(eps / EPS0)).long()
    assert torch.allclose(eps, EPS0 * 2.0 ** k.double().float())  # eps = eps_init * 2^k
    assert (k == 0).any() and (k >= 1).any(), "want both flipped-at-eps_init and doubled samples"
    assert (eps[predict_logits(model, x).argmax(1) == y] >= EPS0).all()
    # Re-attack with one doubling fewer: the same warm-started trajectory must not flip those samples yet.
    for level in range(1, int(k.max()) + 1):
        _, _, eps_short, _ = adversarial_set(model, x, y, eps_init=EPS0, steps=STEPS, max_doublings=level - 1)
        needs = k >= level
        assert torch.isinf(eps_short[needs]).all()  # not flipped at eps/2 (or below)
        assert torch.equal(eps_short[~needs], eps[~needs])


def test_restart_mode_not_flipped_at_half_epsilon(digits_random):
    model = digits_random.original
    x = digits_random.data.train_x[digits_random.split.forget][:32]
    y = digits_random.data.train_y[digits_random.split.forget][:32]
    _, _, eps, _ = adversarial_set(model, x, y, eps_init=EPS0, steps=STEPS, max_doublings=8, restart_per_eps=True)
    doubled = eps > EPS0
    assert doubled.any()
    for i in torch.nonzero(doubled).flatten().tolist():
        # a fresh attack at eps/2 (restart mode starts each radius from the clean sample) does not flip it
        _, _, again, _ = adversarial_set(model, x[i : i + 1], y[i : i + 1], eps_init=float(eps[i]) / 2,
                                         steps=STEPS, max_doublings=0, restart_per_eps=True)
        assert torch.isinf(again).all()


def test_misclassified_samples_get_zero_perturbation(digits_random):
    model = digits_random.original
    x = digits_random.data.train_x[:8]
    pred = predict_logits(model, x).argmax(1)
    wrong = (pred + 1) % 10  # labels the model already gets wrong
    x_adv, y_adv, eps, dist = adversarial_set(model, x, wrong, eps_init=EPS0, steps=STEPS)
    assert torch.equal(x_adv, x) and (dist == 0).all()
    assert torch.equal(y_adv, pred) and (eps == EPS0).all()


def test_adversarial_set_reused_from_cache(digits_random, tmp_path):
    world = digits_random
    cache = ArtifactCache(tmp_path / "cache")
    hp = {"epochs": 1, "eps_init": EPS0, "attack_steps": STEPS}

    def run(method: str):
        spec = get_method(method)
        params = {**spec.hparams, **hp}
        return unlearn(world.run(spec, params, original_key="orig-0"), cache=cache)

    run("amun")
    assert (cache.misses, cache.hits) == (1, 0)
    files = list((tmp_path / "cache" / "derived-amun-adversarial").glob("*.pt"))
    assert len(files) == 1
    stored = files[0].stat().st_mtime_ns
    run("amun")
    run("amun-noretain")  # same original, forget set and attack settings: same artifact
    assert (cache.misses, cache.hits) == (1, 2)
    assert files[0].stat().st_mtime_ns == stored


@pytest.mark.parametrize("method", ["amun", "amun-noretain", "amun-advonly", "amun-salun"])
def test_variants_do_not_increase_forget_accuracy(digits_random, method):
    spec = get_method(method)
    task = digits_random.task(spec)
    assert (task.retain is None) == (method == "amun-noretain")
    fx, fy = task.forget.x, task.forget.y
    before = accuracy(digits_random.original, fx, fy)
    model = spec.fn(task, **{**spec.hparams, "epochs": 2, "eps_init": EPS0, "attack_steps": STEPS})
    assert accuracy(model, fx, fy) <= before
    assert accuracy(model, digits_random.data.test_x, digits_random.data.test_y) > 50.0
