"""Bring your own dataset, model and evaluator (issue 26): the loaders on tiny files in their real formats, timm and
torchvision models by name, the registry's entry points and prefixes, driver-side plugin files, and suites on an
ImageFolder tree and on .npz arrays through the real CLI, with a plugin evaluator judged on the leaderboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.registry import ExtensionError, Registry, load_extension_file
from harness.protocol.architectures import MODELS, build_model, feature_head, model_spec, split_model_spec
from harness.protocol.datasets import DATASETS, DatasetNotFound, load_digits, load_mnist, load_svhn
from harness.protocol.own_datasets import load_imagefolder, load_npz
from harness.protocol.suite import SuiteError, load_suite, parse_suite

ROOT = Path(__file__).resolve().parents[1]
ATTACK = ROOT / "examples" / "my_attack.py"
TIMM_MODEL = "timm:test_resnet"  # timm's own 370k-parameter test ResNet (BatchNorm), any input size


def write_pngs(root: Path, classes: int = 4, per_class: int = 40, size: int = 12, rgb: bool = False,
               seed: int = 0) -> None:
    """Noisy images with a weak class signal (a brighter quadrant): a model learns the classes and memorises its
    training images, so the original is detectably different from a retrain on its forget set."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.uniform(0, 1, (size, size, 3) if rgb else (size, size))
            h = size // 2
            a[(c // 2) * h:(c // 2) * h + h, (c % 2) * h:(c % 2) * h + h] += 0.3
            image = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8), "RGB" if rgb else "L")
            image.save(root / f"class_{c}" / f"{i:03d}.png")


def write_npz(path: Path, n_train: int = 160, n_test: int = 48, size: int = 8, seed: int = 0) -> dict:
    """RGB images channels-last (uint8) with the same weak quadrant signal, and their labels."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 4
        x = rng.uniform(0, 1, (n, size, size, 3))
        h = size // 2
        for i, c in enumerate(y):
            x[i, (c // 2) * h:(c // 2) * h + h, (c % 2) * h:(c % 2) * h + h] += 0.1
        return (np.clip(x, 0, 1) * 255).astype(np.uint8), y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    np.savez(path, **arrays)
    return arrays


# ------------------------------------------------------------------------------------------------- datasets


def test_mnist_from_idx_files_in_torchvision_layout(tmp_path):
    from tests.test_data import write_fmnist

    arrays = write_fmnist(tmp_path / "MNIST" / "raw")
    data = load_mnist(tmp_path)
    assert data.name == "mnist" and data.train_x.shape == (20, 1, 28, 28) and data.num_classes == 10
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_svhn_from_mat_files_maps_label_ten_to_zero(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 6), ("test_32x32.mat", 4)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        scipy.io.savemat(tmp_path / name, {"X": x, "y": np.array([[10], [1], [2], [3], [9], [10]][:n])})
    data = load_svhn(tmp_path)
    assert data.train_x.shape == (6, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert data.train_y.tolist() == [0, 1, 2, 3, 9, 0]
    x = scipy.io.loadmat(tmp_path / "train_32x32.mat")["X"]
    np.testing.assert_allclose(data.train_x[1, 2].numpy() * 255, x[:, :, 2, 1], atol=1e-3)


@pytest.mark.parametrize(("loader", "expected"), [
    (load_mnist, "train-images-idx3-ubyte"), (load_svhn, "train_32x32.mat"), (load_imagefolder, "<class>"),
    (load_npz, "x_train")])
def test_a_missing_root_is_one_line_naming_the_folder_and_the_layout(tmp_path, loader, expected):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFound) as info:
        loader(missing)
    message = str(info.value)
    assert "\n" not in message and str(missing) in message and expected in message


def test_imagefolder_split_tree_and_single_tree(tmp_path):
    write_pngs(tmp_path / "split" / "train", classes=3, per_class=5)
    write_pngs(tmp_path / "split" / "test", classes=3, per_class=2, seed=1)
    data = load_imagefolder(tmp_path / "split")
    assert data.train_x.shape == (15, 1, 12, 12) and data.test_x.shape == (6, 1, 12, 12)
    assert data.classes == ("class_0", "class_1", "class_2") and data.num_classes == 3
    assert data.train_y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    write_pngs(tmp_path / "single", classes=2, per_class=10, rgb=True)
    single = load_imagefolder(tmp_path / "single")
    assert single.train_x.shape == (16, 3, 12, 12) and single.test_x.shape == (4, 3, 12, 12)  # a fifth per class
    assert single.test_y.tolist() == [0, 0, 1, 1]
    assert single.fingerprint == load_imagefolder(tmp_path / "single").fingerprint  # a fixed split


def test_imagefolder_refuses_mixed_sizes(tmp_path):
    from PIL import Image

    write_pngs(tmp_path, classes=2, per_class=3)
    Image.new("L", (5, 5)).save(tmp_path / "class_1" / "odd.png")
    with pytest.raises(ValueError, match="odd.png is 5x5 but the first image is 12x12"):
        load_imagefolder(tmp_path)


def test_npz_channels_last_uint8_and_bad_files(tmp_path):
    arrays = write_npz(tmp_path / "data.npz", n_train=8, n_test=4)
    data = load_npz(tmp_path / "data.npz")
    assert data.train_x.shape == (8, 3, 8, 8) and data.num_classes == 4
    np.testing.assert_allclose(data.train_x[3].permute(1, 2, 0).numpy() * 255, arrays["x_train"][3], atol=1e-3)
    assert load_npz(tmp_path).fingerprint == data.fingerprint  # a folder with one .npz
    np.savez(tmp_path / "bad.npz", x_train=arrays["x_train"])
    with pytest.raises(ValueError, match="lacks y_train, x_test, y_test"):
        load_npz(tmp_path / "bad.npz")


def test_subsets_normalisation_and_fingerprints_work_alike_for_every_loader(tmp_path):
    write_pngs(tmp_path / "imgs", classes=4, per_class=10)
    text = f"""name = "n"
version = "1"
[data]
dataset = "imagefolder"
root = "{tmp_path / 'imgs'}"
train_subset = 16
normalize = "per-channel"
[model]
name = "mlp"
[run]
scenarios = ["random-10"]
seeds = [0]
"""
    suite = parse_suite(text)
    data = suite.load_data()
    assert torch.bincount(data.train_y).tolist() == [4, 4, 4, 4]  # class-balanced subset
    assert abs(float(data.train_x.mean())) < 1e-5 and abs(float(data.train_x.std()) - 1) < 1e-2
    assert data.fingerprint.endswith("-norm") and len(data.mean) == 1
    plain = parse_suite(text.replace('normalize = "per-channel"\n', "")).load_data()
    assert plain.fingerprint == data.fingerprint.removesuffix("-norm") and plain.mean == ()


def test_built_in_fingerprints_do_not_move():
    assert load_digits().fingerprint == "1b3ae6879adf2c2513509380"  # the digits data every cache key starts from


# ------------------------------------------------------------------------------------------------- models


def test_timm_models_by_name_with_shape_from_the_data_and_timm_s_head():
    model = build_model(TIMM_MODEL, (1, 8, 8), 4, seed=0)
    again = build_model(TIMM_MODEL, (1, 8, 8), 4, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    assert feature_head(TIMM_MODEL) == "fc"  # timm's own classifier name
    assert dict(model.named_modules())["fc"].out_features == 4
    vit = build_model(model_spec("timm:test_vit", {"drop_rate": 0.0}), (3, 16, 16), 5)  # img_size from the data
    assert vit(torch.randn(1, 3, 16, 16)).shape == (1, 5)


def test_torchvision_models_by_name():
    model = build_model("torchvision:resnet18", (3, 32, 32), 5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5) and feature_head("torchvision:resnet18") == "fc"
    with pytest.raises(ValueError, match="takes 3-channel images"):
        build_model("torchvision:resnet18", (1, 28, 28), 5)


def test_a_batchnorm_model_trains_when_a_last_batch_would_hold_one_example():
    from harness.protocol.recipe import Recipe
    from harness.training.loop import train_model

    model = build_model(TIMM_MODEL, (1, 8, 8), 3, seed=0)  # 1x1 features: BatchNorm refuses a batch of one
    x, y = torch.rand(33, 1, 8, 8), torch.arange(33) % 3
    train_model(model, x, y, Recipe(epochs=1, batch_size=32, lr=0.01), seed=0, device=torch.device("cpu"))
    assert not model.training


def test_an_unknown_timm_name_says_did_you_mean_from_timm_s_list():
    with pytest.raises(KeyError, match=r"timm has no model 'resnet10'; did you mean 'timm:resnet10t'"):
        MODELS["timm:resnet10"]
    assert "timm:resnet10" not in MODELS and TIMM_MODEL in MODELS


def test_model_arguments_travel_in_the_spec_and_a_bare_name_is_unchanged():
    assert model_spec("mlp") == model_spec("mlp", {}) == "mlp"  # existing suites' cache keys stay
    spec = model_spec("mlp", {"hidden": 32})
    assert split_model_spec(spec) == ("mlp", {"hidden": 32})
    assert build_model(spec, (1, 8, 8), 10)[1].out_features == 32
    base = load_suite("digits-smoke").definition
    assert parse_suite(base.replace('name = "mlp"', 'name = "mlp"\nhidden = 32')).model == spec
    with pytest.raises(SuiteError, match=r"unknown field 'hiden'; did you mean 'hidden'"):
        parse_suite(base.replace('name = "mlp"', 'name = "mlp"\nhiden = 32'))


# ------------------------------------------------------------------------------------------------- registry


def test_entry_points_and_prefixes_in_the_one_registry(monkeypatch):
    import harness.core.registry as registry_module

    class EntryPoint:
        def __init__(self, name, load):
            self.name, self.value, self.load = name, f"pkg:{name}", load

    registry: Registry[object] = Registry("widget", entry_points="unlearn_bench.widgets")

    def broken():
        raise ImportError("no such module")

    points = [EntryPoint("good", lambda: registry.register("spanner", "spanner", "pkg")),
              EntryPoint("bad", broken)]
    monkeypatch.setattr(registry_module.importlib.metadata, "entry_points",
                        lambda group: points if group == "unlearn_bench.widgets" else [])
    registry.add_resolver("tool", lambda rest: f"tool {rest}" if rest == "saw" else (_ for _ in ()).throw(
        KeyError(f"no tool {rest!r}")))
    assert registry["spanner"] == "spanner"  # the entry point loaded on the first read
    assert registry["tool:saw"] == "tool saw" and "tool:hammer" not in registry
    with pytest.raises(KeyError, match=r"unknown widget 'spaner'; did you mean 'spanner'.*entry point bad"):
        registry["spaner"]


def test_a_plugin_file_registers_evaluators_and_a_file_that_registers_nothing_is_refused(tmp_path):
    from harness.evaluate import EVALUATORS

    assert "evaluator 'loss_mia'" in load_extension_file(ATTACK)
    assert load_extension_file(ATTACK) == load_extension_file(str(ATTACK))  # once per file
    info = EVALUATORS["loss_mia"].metrics[0]
    assert info.axis == "privacy" and info.direction == "match-oracle"
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ExtensionError, match="registered nothing"):
        load_extension_file(empty)
    with pytest.raises(ExtensionError, match="not found"):
        load_extension_file(tmp_path / "absent.py")


def test_a_plugin_file_registers_a_dataset_and_a_model(tmp_path):
    plugin = tmp_path / "my_world.py"
    plugin.write_text('''
import torch
from torch import nn
from harness.protocol.architectures import register_model
from harness.protocol.datasets import dataset_arrays, register_dataset

@register_dataset("byo-test-blobs")
def blobs(root=None):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    x = torch.rand(40, 1, 4, 4, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.5
    return dataset_arrays("byo-test-blobs", x[:30], y[:30], x[30:], y[30:])

@register_model("byo-test-linear", head="1")
def linear(input_shape, num_classes):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))
''')
    suite_file = tmp_path / "s.toml"
    suite_file.write_text('name = "w"\nversion = "1"\nplugins = ["my_world.py"]\n[data]\ndataset = "byo-test-blobs"\n'
                          '[model]\nname = "byo-test-linear"\n[run]\nscenarios = ["random-10"]\nseeds = [0]\n')
    suite = load_suite(str(suite_file))  # the plugin path is relative to the suite file
    assert suite.plugins == (str(plugin.resolve()),) and "byo-test-blobs" in DATASETS
    data = suite.load_data()
    assert data.num_classes == 2 and len(data.fingerprint) > 24
    assert build_model(suite.model, data.input_shape, data.num_classes)(data.train_x[:2]).shape == (2, 2)
    from harness.pipeline.driver import RunOptions, run_suite

    with pytest.raises(ValueError, match="sandboxed method workers cannot import"):  # said before anything trains
        run_suite(suite, RunOptions(isolate=True, results_root=tmp_path / "r", cache_dir=tmp_path / "c"))


# ------------------------------------------------------------------------------------------------- the real CLI


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.commands.cli", *args], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=1200,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


SUITE = """name = "{name}"
version = "1"
description = "tests only: the user's own data, a timm model and a plugin evaluator"
{plugins}
[data]
dataset = "{dataset}"
root = "{root}"

[model]
name = "{model}"

[train]
epochs = 20
lr = 0.05
batch_size = 32

[run]
scenarios = ["random-10"]
seeds = [0, 1, 2]
oracles = 2
timeout = 120

[evaluate]
evaluators = ["accuracy", "loss_mia"]
"""


def _run_and_board(tmp_path: Path, suite_file: Path, extra: tuple[str, ...] = ()) -> dict:
    results, cache = tmp_path / "results", tmp_path / "cache"
    proc = _cli("run", "--suite", str(suite_file), "--methods", "original,retrain,finetune", "--set",
                "finetune.epochs=1", "--results", str(results), "--cache-dir", str(cache), "--no-progress", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pandas as pd

    rows = pd.read_parquet(results / suite_file.stem)  # the file is named for its suite
    assert (rows["status"] == "ok").all(), rows[["method", "seed", "error"]]
    assert rows["loss_mia_auc"].notna().all() and rows["gap_loss_mia_auc"].notna().all()
    meta = json.loads(rows["metric_meta"].iloc[0])["loss_mia_auc"]
    assert meta["evaluator"] == "loss_mia" and meta["axis"] == "privacy" and meta["direction"] == "match-oracle"
    board = _cli("leaderboard", "--suite", str(suite_file), "--results", str(results), "--out", str(tmp_path / "site"),
                 *extra)
    assert board.returncode == 0, board.stderr[-3000:]
    assert "privacy axis: loss_mia_auc" in board.stdout, board.stdout  # the plugin attack is on the axis
    text = _cli("leaderboard", "--suite", str(suite_file), "--results", str(results), "--out", str(tmp_path / "site"),
                "--json", *extra)
    scenario = json.loads(text.stdout)["suites"][0]["scenarios"][0]
    assert [a["metric"] for a in scenario["attacks"]] == ["loss_mia_auc"]
    verdicts = {e["method"]: e["privacy"]["verdict"] for e in scenario["entries"] if e["privacy"].get("verdict")}
    assert verdicts, scenario["entries"]
    assert verdicts["original"]["state"] == "worse"  # the plugin attack detects doing nothing, like a built-in
    assert all(e["privacy"]["verdict_attack"] == "loss_mia_auc" for e in scenario["entries"]
               if e["privacy"].get("verdict"))
    return scenario


@pytest.mark.slow
def test_an_imagefolder_suite_with_a_timm_model_and_a_plugin_evaluator_end_to_end(tmp_path):
    write_pngs(tmp_path / "imgs")
    suite_file = tmp_path / "byo-imagefolder.toml"
    suite_file.write_text(SUITE.format(name="byo-imagefolder", plugins="", dataset="imagefolder",
                                       root=tmp_path / "imgs", model=TIMM_MODEL))
    _run_and_board(tmp_path, suite_file, ("--evaluator-plugin", str(ATTACK)))
    check = _cli("verify", str(tmp_path / "results"), "--sample", "2", "--cache-dir", str(tmp_path / "cache"),
                 "--evaluator-plugin", str(ATTACK))  # a BatchNorm timm model's rows reproduce
    assert check.returncode == 0 and "2 of 2 re-run rows match" in check.stdout, check.stdout + check.stderr


@pytest.mark.slow
def test_an_npz_suite_with_its_plugin_evaluator_named_in_the_suite_end_to_end(tmp_path):
    write_npz(tmp_path / "data.npz")
    shutil.copy(ATTACK, tmp_path / "my_attack.py")
    suite_file = tmp_path / "byo-npz.toml"
    suite_file.write_text(SUITE.format(name="byo-npz", plugins='plugins = ["my_attack.py"]', dataset="npz",
                                       root="data.npz", model=TIMM_MODEL))  # both relative to the suite file
    _run_and_board(tmp_path, suite_file)


def test_a_missing_root_and_an_unknown_timm_name_are_one_line_errors_with_the_fix(tmp_path):
    suite_file = tmp_path / "bad.toml"
    suite_file.write_text(SUITE.format(name="bad", plugins="", dataset="imagefolder", root=tmp_path / "absent",
                                       model=TIMM_MODEL).replace('"loss_mia"', '"salun_mia"'))
    proc = _cli("run", "--suite", str(suite_file), "--results", str(tmp_path / "r"), "--cache-dir",
                str(tmp_path / "c"), "--no-progress", "--methods", "original")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(tmp_path / "absent") in lines[0] and "<root>/train/<class>/<image>.png" in lines[0]
    suite_file.write_text(suite_file.read_text().replace(TIMM_MODEL, "timm:resnet10"))
    proc = _cli("run", "--suite", str(suite_file), "--results", str(tmp_path / "r"), "--no-progress")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "timm has no model 'resnet10'; did you mean 'timm:resnet10t'" in lines[0]
