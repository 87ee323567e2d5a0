"""Batched (vmap) training gives the models sequential training gives, for the same seeds."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from harness.protocol.architectures import build_model
from harness.protocol.suite import load_suite
from harness.training import batched as ensemble
from harness.training.loop import Recipe, accuracy, predict_logits, train_model


@pytest.fixture(scope="module")
def digits():
    return load_suite("digits-smoke").load_data()


def _halves(data, k: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random halves of the train pool, as shadow models use."""
    gen = torch.Generator().manual_seed(seed)
    n = len(data.train_y)
    return [(data.train_x[p], data.train_y[p]) for p in (torch.randperm(n, generator=gen)[: n // 2] for _ in range(k))]


def _models(arch: str, data, k: int) -> list[nn.Module]:
    return [build_model(arch, data.input_shape, data.num_classes, seed=100 + i) for i in range(k)]


def _max_diff(a: list[nn.Module], b: list[nn.Module]) -> float:
    return max((pa - pb).abs().max().item() for ma, mb in zip(a, b) for pa, pb in zip(ma.parameters(), mb.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("arch, augment", [("mlp", "none"), ("cnn-small", "crop-flip")])
def test_batched_equals_sequential(digits, arch, augment):
    recipe = Recipe(epochs=3, batch_size=64, lr=0.05, augment=augment, schedule="cosine")
    datasets, seeds = _halves(digits, 3), [11, 12, 13]
    batched = ensemble.train_models(_models(arch, digits, 3), datasets, recipe, seeds, mode="batched")
    sequential = ensemble.train_models(_models(arch, digits, 3), datasets, recipe, seeds, mode="sequential")
    # Rounding only (bmm vs addmm): ~1e-8 after an epoch; an occasional ReLU flip lifts one model to ~1e-4.
    # A wrong shuffle, augmentation or schedule gives differences of order 1e-1.
    assert _max_diff(batched, sequential) < 2e-3
    assert _max_diff(batched, _models(arch, digits, 3)) > 5e-2  # and training did move the weights
    for a, b in zip(batched, sequential):
        assert not a.training
        agree = (predict_logits(a, digits.test_x).argmax(1) == predict_logits(b, digits.test_x).argmax(1))
        assert agree.float().mean() > 0.99


def test_sequential_mode_is_train_model(digits):
    recipe = Recipe(epochs=2, batch_size=64)
    datasets = _halves(digits, 2)
    out = ensemble.train_models(_models("mlp", digits, 2), datasets, recipe, [5, 6], mode="sequential")
    ref = [train_model(m, x, y, recipe, s) for m, (x, y), s in zip(_models("mlp", digits, 2), datasets, [5, 6])]
    assert _max_diff(out, ref) == 0.0


def test_different_seeds_give_different_models(digits):
    recipe = Recipe(epochs=2, batch_size=64)
    x, y = _halves(digits, 1)[0]
    models = [build_model("mlp", digits.input_shape, 10, seed=0) for _ in range(2)]
    a, b = ensemble.train_models(models, [(x, y)] * 2, recipe, [1, 2], mode="batched")
    assert _max_diff([a], [b]) > 1e-3  # same init and data, different shuffles


def test_what_cannot_be_batched(digits):
    datasets = _halves(digits, 2)
    recipe = Recipe(epochs=1)
    assert ensemble.why_not_batched(_models("mlp", digits, 2), datasets, recipe) is None
    assert "unequal" in ensemble.why_not_batched(_models("mlp", digits, 2), [datasets[0], (datasets[1][0][:10],
                                                 datasets[1][1][:10])], recipe)
    assert "FastClip" in ensemble.why_not_batched(_models("mlp", digits, 2), datasets,
                                                  dataclasses.replace(recipe, clip=1.0))
    bn = [nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10)) for _ in range(2)]
    assert "buffers" in ensemble.why_not_batched(bn, datasets, recipe)
    drop = [nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10)) for _ in range(2)]
    assert "dropout" in ensemble.why_not_batched(drop, datasets, recipe)
    assert ensemble.train_models(bn, datasets, recipe, [0, 1], mode="auto")  # auto falls back to sequential
    with pytest.raises(ValueError, match="cannot train batched"):
        ensemble.train_models(bn, datasets, recipe, [0, 1], mode="batched")


def test_auto_mode_probes_once_and_remembers(digits, monkeypatch):
    calls = []
    real = ensemble.probe_mode

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(ensemble, "probe_mode", counting)
    monkeypatch.setattr(ensemble, "_DECISIONS", {})
    datasets, recipe = _halves(digits, 2), Recipe(epochs=1, batch_size=64)
    first = ensemble.choose_mode(_models("mlp", digits, 2), datasets, recipe, probe=True)
    second = ensemble.choose_mode(_models("mlp", digits, 2), datasets, recipe, probe=True)
    assert first == second and first in ("batched", "sequential") and len(calls) == 1
    # The default rule never times anything: the same choice in every process.
    assert ensemble.choose_mode(_models("mlp", digits, 2), datasets, recipe) == "sequential"
    assert ensemble.choose_mode(_models("cnn-small", digits, 2), datasets, recipe) == "batched"
    assert len(calls) == 1


@pytest.mark.slow
def test_bf16_and_channels_last_recipes_train_on_cpu(digits):
    """The GPU options fall back cleanly on a CPU: bf16 autocast and channels-last still train the model."""
    base = Recipe(epochs=4, batch_size=64, lr=0.05)
    x, y = digits.train_x, digits.train_y
    ref = train_model(build_model("cnn-small", digits.input_shape, 10, seed=0), x, y, base, 0)
    fast = dataclasses.replace(base, precision="bf16", channels_last=True)
    model = train_model(build_model("cnn-small", digits.input_shape, 10, seed=0), x, y, fast, 0)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert accuracy(model, digits.test_x, digits.test_y) > accuracy(ref, digits.test_x, digits.test_y) - 10
    assert accuracy(model, digits.test_x, digits.test_y) > 80
    with pytest.raises(ValueError, match="precision"):
        train_model(build_model("mlp", digits.input_shape, 10), x, y, dataclasses.replace(base, precision="fp8"), 0)


def test_new_recipe_fields_keep_old_cache_keys():
    assert "precision" not in Recipe().as_dict() and "channels_last" not in Recipe().as_dict()
    assert Recipe(precision="bf16").as_dict()["precision"] == "bf16"
    assert Recipe(channels_last=True).as_dict()["channels_last"] is True


def test_the_shadow_bank_trains_batched_into_the_same_cache_entries(tmp_path):
    """The batched shadow path (a GPU job in the graph) stores each model under the key the sequential path
    loads, with weights equal to rounding."""
    from harness.training.cache import ArtifactCache
    from harness.training.reference_models import train_cached, train_cached_many
    from harness.training.workspace import Workspace

    suite = dataclasses.replace(load_suite("digits-smoke"), recipe=Recipe(epochs=3, batch_size=64, lr=0.05))
    data = suite.load_data()
    gen = torch.Generator().manual_seed(0)
    positions = [torch.sort(torch.randperm(len(data.train_y), generator=gen)[:600]).values for _ in range(3)]
    seeds, cpu = [5, 6, 7], torch.device("cpu")
    batched_cache, sequential_cache = ArtifactCache(tmp_path / "b"), ArtifactCache(tmp_path / "s")
    batched = train_cached_many(Workspace(suite, data, batched_cache, cpu), "shadow-original", positions, seeds,
                                mode="batched")
    assert batched_cache.misses == 3 and batched_cache.hits == 0  # trained together: counted as trained
    assert all(batched_cache.exists("shadow-original", m.key) for m in batched)  # and stored
    sequential = [train_cached(Workspace(suite, data, sequential_cache, cpu), "shadow-original", p, s)
                  for p, s in zip(positions, seeds)]
    assert [m.key for m in batched] == [m.key for m in sequential]
    assert _max_diff([m.model for m in batched], [m.model for m in sequential]) < 2e-3
    assert _max_diff([m.model for m in batched], [m.model for m in sequential[1:] + sequential[:1]]) > 5e-2


def test_the_job_graph_batches_the_shadow_bank_on_a_gpu():
    from harness.pipeline.graph import build_graph
    from harness.pipeline.plan import RunOptions, plan_runs, select_methods

    suite = load_suite("digits-smoke")
    plan = plan_runs(suite, RunOptions(methods=["finetune"], seeds=[0]), select_methods(suite, ["finetune"]))
    jobs = {j.id: j for j in build_graph(plan, gpu=True, suite=suite, batch_shadows=True)}
    n = suite.evaluate["shadow_models"]
    assert jobs["shadow-original/all"].indices == tuple(range(n))
    assert jobs["shadow-retrained/class-3/all"].indices == tuple(range(n))
    assert not any(j.startswith("shadow-original/0") for j in jobs)
    assert "shadow-original/all" in jobs["runs/random-10/0"].deps and all(j.gpu for j in jobs.values())
