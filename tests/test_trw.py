"""TRW (reconstructed): the tilted target distribution and a run on the digits class scenario."""

from __future__ import annotations

import itertools

import pytest
import torch

from harness.protocol.methods import get_method
from harness.training.loop import accuracy
from methods.trw import class_similarity_weights, tilted_target


@pytest.fixture
def logits() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(16, 5) * 3


def test_weights_are_a_distribution_without_the_forget_class():
    torch.manual_seed(1)
    reps = torch.randn(6, 12)
    w = class_similarity_weights(reps, forget_class=2, pca_dim=4, temperature=0.1)
    assert w[2] == 0
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert (w >= 0).all()


def test_most_similar_class_gets_the_largest_weight():
    torch.manual_seed(2)
    reps = torch.randn(5, 8)
    reps[3] = reps[0] + 0.05 * torch.randn(8)  # class 3 is a near copy of the forget class 0
    w = class_similarity_weights(reps, forget_class=0, pca_dim=4, temperature=0.1)
    assert int(w.argmax()) == 3


@pytest.mark.parametrize("beta", [0.0, 1.0, 10.0])
def test_target_zero_on_forget_class_and_normalised(logits, beta):
    w = torch.tensor([0.1, 0.0, 0.2, 0.3, 0.4])
    q = tilted_target(logits, forget_class=1, weights=w, beta=beta)
    assert (q[:, 1] == 0).all()
    assert torch.allclose(q.sum(1), torch.ones(len(q)), atol=1e-6)
    assert (q >= 0).all()


def test_beta_zero_is_the_renormalised_original(logits):
    p = torch.softmax(logits.double(), 1)
    expected = p.clone()
    expected[:, 4] = 0
    expected = expected / expected.sum(1, keepdim=True)
    q = tilted_target(logits, forget_class=4, weights=torch.rand(5), beta=0.0)
    assert torch.allclose(q.double(), expected, atol=1e-6)


def test_stable_when_the_forget_class_dominates():
    logits = torch.tensor([[60.0, 0.0, 1.0, -2.0]])  # p_o(u) = 1 in float32
    q = tilted_target(logits, forget_class=0, weights=torch.zeros(4), beta=0.0)
    assert torch.isfinite(q).all() and q[0, 2] > q[0, 1] > q[0, 3]


def test_mass_concentrates_on_most_similar_class_as_beta_grows(logits):
    w = torch.tensor([0.05, 0.6, 0.0, 0.15, 0.2])  # class 1 most similar; forget class 2
    masses = [float(tilted_target(logits, 2, w, beta)[:, 1].mean()) for beta in (0.0, 2.0, 10.0, 50.0)]
    assert all(a < b for a, b in itertools.pairwise(masses))
    assert masses[-1] > 0.99


def test_trw_on_digits_class(digits_class):
    spec = get_method("trw")
    world = digits_class
    task = world.task(spec)
    u = world.split.scenario.forget_class
    fx, fy = task.forget.x, task.forget.y
    before = accuracy(world.original, fx, fy)
    model = spec.fn(task, epochs=3, lr=0.05, lr_step=3)
    after = accuracy(model, fx, fy)
    assert after <= before
    assert after < 20.0  # the forget class is no longer predicted
    assert int(model(fx).argmax(1).eq(u).sum()) < len(fy) * 0.2
