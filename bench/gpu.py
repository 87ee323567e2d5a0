"""The GPU benchmark, sized for one call of at most 8 minutes on one H100/H200 (``bench/gpu.sh`` runs it).

Sections, each printed as a table with its ratios measured side by side in this one run, on this one card:

1. ResNet-18 (CIFAR stem) training throughput, images/s: the harness's loop (``harness.training.loop.train_model``)
   against a bare PyTorch loop on the same model, batch and optimiser; fp32, then bf16 + channels-last, then
   with ``torch.compile``.
2. The shadow bank, batched (vmap, ``harness.training.batched``) against sequential: K cnn-small models on
   Fashion-MNIST-sized halves.
3. GPU packing: the same small training jobs on 1 worker process and on k worker processes sharing the GPU.
4. A reduced ``fmnist-standard`` end to end through the CLI (one seed, a few methods, N = 16 shadows), wall time
   and stage timings.
5. A projected cost of the full ``fmnist-standard`` and ``cifar10-paper`` from the per-model times measured here.

``--dry-run`` runs every section at toy sizes on the CPU (digits data, a few steps): it checks the code paths,
not the speed, and is what CI runs. Without ``--dry-run`` and without a CUDA device it stops at once.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import hardware, table

from harness.protocol.architectures import build_model
from harness.training import batched as ensemble
from harness.training.loop import Recipe, seeded_generator, train_model


@dataclass(frozen=True)
class Sizes:
    """How much work each section does (GPU: about 8 minutes in all; dry run: seconds on a CPU)."""

    resnet_steps: int = 60
    resnet_batch: int = 512
    shadow_k: int = 16
    shadow_epochs: int = 2
    pack_models: int = 8
    pack_workers: int = 4
    pack_epochs: int = 2
    e2e_shadows: int = 16
    e2e_methods: str = "original,retrain,finetune,random-label"
    e2e_timeout: int = 240


DRY = Sizes(resnet_steps=2, resnet_batch=8, shadow_k=2, shadow_epochs=1, pack_models=2, pack_workers=2,
            pack_epochs=1, e2e_shadows=2, e2e_methods="original,retrain,finetune", e2e_timeout=600)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------ 1. throughput
def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
              bf16: bool) -> None:
    """The reference: the fewest lines that train the same model on the same batches."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    for step in range(steps):
        start = (step * batch) % (len(y) - batch + 1)
        xb, yb = x[start:start + batch], y[start:start + batch]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(xb).float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def throughput(sizes: Sizes, device: torch.device) -> list[list]:
    n = sizes.resnet_batch * sizes.resnet_steps
    x = torch.rand(n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    rows = []
    variants = [("fp32", False, False, False), ("bf16 + channels-last", True, True, False)]
    if device.type == "cuda":
        variants.append(("bf16 + channels-last + compile", True, True, True))
    for label, bf16, channels_last, compiled in variants:
        recipe = Recipe(epochs=1, lr=0.1, batch_size=sizes.resnet_batch, schedule="constant",
                        precision="bf16" if bf16 else "fp32", channels_last=channels_last, compile=compiled)
        harness_model = build_model("resnet18-cifar", (3, 32, 32), 10, seed=0).to(device)
        train_model(harness_model, x[: sizes.resnet_batch * 2], y[: sizes.resnet_batch * 2], recipe, 0, device)
        harness_s = _timed(lambda: train_model(harness_model, x, y, recipe, 0, device), device)
        bare_model = build_model("resnet18-cifar", (3, 32, 32), 10, seed=0).to(device)
        if channels_last:
            bare_model = bare_model.to(memory_format=torch.channels_last)
        runner = torch.compile(bare_model) if compiled else bare_model
        xb = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        bare_loop(runner, xb, y, sizes.resnet_batch, 2, bf16)  # warm-up (and compilation)
        bare_s = _timed(lambda: bare_loop(runner, xb, y, sizes.resnet_batch, sizes.resnet_steps, bf16), device)
        rows.append([label, n / harness_s, n / bare_s, bare_s / harness_s])
    return rows


# ------------------------------------------------------------------------------------ 2. shadow bank
def shadow_bank_timing(sizes: Sizes, device: torch.device, data) -> list[list]:
    recipe = Recipe(epochs=sizes.shadow_epochs, lr=0.05, batch_size=256, schedule="cosine", augment="crop")
    n = len(data.train_y) // 2
    gen = seeded_generator(0)
    halves = [torch.randperm(len(data.train_y), generator=gen)[:n] for _ in range(sizes.shadow_k)]
    datasets = [(data.train_x[h].to(device), data.train_y[h].to(device)) for h in halves]
    seeds = list(range(sizes.shadow_k))
    rows = []
    for arch in ("cnn-small", "mlp"):
        fresh = lambda: [build_model(arch, data.input_shape, data.num_classes, seed=s) for s in seeds]
        sequential = _timed(lambda: ensemble.train_models(fresh(), datasets, recipe, seeds, device, "sequential"),
                            device)
        batched = _timed(lambda: ensemble.train_models(fresh(), datasets, recipe, seeds, device, "batched"), device)
        rule = ensemble.rule_mode(fresh()[:1], device)
        rows.append([arch, sizes.shadow_k, sequential, batched, sequential / batched, rule])
    return rows


# ------------------------------------------------------------------------------------ 3. GPU packing
def _pack_job(args: tuple) -> float:
    arch, epochs, seed, device_name, shape, classes, n = args
    torch.set_num_threads(1)
    device = torch.device(device_name)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    start = time.perf_counter()
    train_model(build_model(arch, shape, classes, seed=seed), x, y, Recipe(epochs=epochs, batch_size=256), seed,
                device)
    _sync(device)
    return time.perf_counter() - start


def packing(sizes: Sizes, device: torch.device, data) -> list[list]:
    ctx = multiprocessing.get_context("spawn")
    n = len(data.train_y) // 2
    jobs = [("cnn-small", sizes.pack_epochs, s, str(device), data.input_shape, data.num_classes, n)
            for s in range(sizes.pack_models)]
    rows = []
    for workers in (1, sizes.pack_workers):
        with ctx.Pool(workers) as pool:
            pool.map(_pack_job, jobs[:workers])  # start-up and CUDA initialisation are not the jobs' time
            start = time.perf_counter()
            pool.map(_pack_job, jobs)
            wall = time.perf_counter() - start
        rows.append([workers, sizes.pack_models, wall, sizes.pack_models / wall])
    base = rows[0][2]
    return [r + [base / r[2]] for r in rows]


# ------------------------------------------------------------------------------------ 4. end to end
def end_to_end(sizes: Sizes, device: torch.device, dry: bool, folder: Path) -> tuple[list[list], dict]:
    base = "digits-smoke" if dry else "fmnist-standard"
    suite = folder / f"{base}-bench.toml"
    # The dry run only checks the path: cheap evaluators, methods in-process.
    evaluators = 'evaluators = ["accuracy", "salun_mia", "rmia"]\n' if dry else ""
    suite.write_text(f'extends = "{base}"\nname = "{base}-bench"\nversion = "1"\n'
                     f"[evaluate]\n{evaluators}shadow_models = {sizes.e2e_shadows}\n")
    command = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", str(suite), "--seeds", "0", "--methods",
               sizes.e2e_methods, "--results", str(folder / "results"), "--cache-dir", str(folder / "cache"),
               "--device", device.type, "--no-progress", *(["--no-isolation"] if dry else [])]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=sizes.e2e_timeout,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"end-to-end run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    from harness.core.results import read_results

    frame = read_results(folder / "results", f"{base}-bench")
    per_model = {"original": float(frame["oracle_train_s"].median())}  # an oracle trains like an original
    rows = [[f"{base} (seed 0, {sizes.e2e_methods}, N = {sizes.e2e_shadows})", len(frame),
             int((frame["status"] == "ok").sum()), wall]]
    return rows, {"model_s": per_model["original"], "rows": len(frame), "wall": wall}


# ------------------------------------------------------------------------------------ 5. projection
def projection(measured: dict, resnet_img_s: float) -> list[list]:
    """Models to train for a full suite times the per-model time measured here (a projection, not a run)."""
    from harness.protocol.suite import load_suite

    rows = []
    for name, epoch_images in (("fmnist-standard", 60000), ("cifar10-paper", 50000)):
        suite = load_suite(name)
        scenarios, seeds, k = len(suite.scenarios), len(suite.seeds), suite.oracles
        n = int(suite.evaluate.get("shadow_models", 0)) if any(
            e in suite.evaluators for e in ("ulira", "rmia", "mia_nn")) else 0
        models = seeds + scenarios * seeds * k + n + scenarios * n
        if name == "cifar10-paper":
            per_model = suite.recipe.epochs * epoch_images / max(resnet_img_s, 1e-9)
        else:
            per_model = measured.get("model_s", float("nan"))
        rows.append([name, models, per_model, models * per_model / 3600])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: check the code paths")
    parser.add_argument("--sections", default="1,2,3,4,5")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables as JSON here")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device visible to torch; use --dry-run to check the code paths on a CPU",
              file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    sizes = DRY if args.dry_run else Sizes()
    sections = {int(s) for s in args.sections.split(",")}
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (dry run: sizes are toys)"
    print(f"# bench/gpu.py on {name}; {time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}", flush=True)
    from harness.protocol.suite import load_suite

    data = load_suite("digits-smoke" if args.dry_run else "fmnist-standard").load_data()
    out: dict[str, list] = {}
    measured: dict = {}
    resnet_img_s = float("nan")
    if 1 in sections:
        out["throughput"] = rows = throughput(sizes, device)
        resnet_img_s = max(r[1] for r in rows)
        print("\n## 1. ResNet-18 (CIFAR stem) training, images/s\n"
              + table(["variant", "harness img/s", "bare loop img/s", "harness / bare"], rows), flush=True)
    if 2 in sections:
        out["shadow_bank"] = rows = shadow_bank_timing(sizes, device, data)
        print("\n## 2. Shadow bank: K models on halves, sequential vs batched (vmap)\n"
              + table(["arch", "K", "sequential s", "batched s", "speed-up", "rule picks"], rows), flush=True)
    if 3 in sections:
        out["packing"] = rows = packing(sizes, device, data)
        print("\n## 3. GPU packing: the same training jobs on 1 vs k worker processes\n"
              + table(["workers", "models", "wall s", "models/s", "speed-up vs 1"], rows), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if 4 in sections:
            rows, measured = end_to_end(sizes, device, args.dry_run, Path(tmp))
            out["end_to_end"] = rows
            print("\n## 4. Reduced suite end to end through the CLI\n"
                  + table(["run", "rows", "ok", "wall s"], rows), flush=True)
    if 5 in sections:
        out["projection"] = rows = projection(measured, resnet_img_s)
        print("\n## 5. Projected cost of the full suites: models trained from scratch x measured seconds per model "
              "(method and shadow runs not included)\n"
              + table(["suite", "models to train", "s per model", "GPU hours"], rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
