"""Plugins end to end: a file passed with ``--plugin``, a package found through its entry point, and broken
plugins that must become ``failed``/``invalid`` rows without stopping the other methods.

Every run is a real ``unlearn-bench run`` subprocess on digits-smoke (one seed) from a folder outside the
repository; the example package is pip-installed into a temporary ``--target`` folder, never into the venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness.core.results import read_results

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("unlearn-bench")
SUITE = "digits-smoke"

pytestmark = pytest.mark.slow  # several CLI subprocesses (torch import each time): ~10-40 s in all


def _run(tmp: Path, results: Path, cache: Path, *args: str, pythonpath: Path | None = None) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [str(CLI), "run", "--suite", SUITE, "--seeds", "0", "--results", str(results), "--cache-dir", str(cache),
           "--no-progress", "--no-references", *args]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _trained(stdout: str) -> int:
    match = re.search(r"(\d+) trained", stdout)
    assert match, stdout
    return int(match.group(1))


def _reference_models(cache: Path) -> set[str]:
    """Cached originals, oracles and shadow references: what a new method must never cause to be trained.

    (Per-method artifacts such as U-LiRA's unlearned shadows are legitimately new for a new method.)
    """
    folders = [p for p in cache.iterdir() if p.name in ("original", "oracle") or p.name.startswith("shadow-")]
    return {str(f.relative_to(cache)) for d in folders for f in d.glob("*.pt")}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(work folder outside the repo, results, cache) with the built-in finetune rows already stored."""
    tmp = tmp_path_factory.mktemp("plugins")
    results, cache = tmp / "results", tmp / "cache"
    out = _run(tmp, results, cache, "--methods", "finetune")
    assert _trained(out) > 0 and _reference_models(cache)  # originals and oracles are trained once, here
    return tmp, results, cache


def _rows(results: Path) -> pd.DataFrame:
    return read_results(results, SUITE)


def test_plugin_file_runs_next_to_builtins(shared) -> None:
    tmp, results, cache = shared
    plugin = tmp / "elsewhere" / "my_method.py"
    plugin.parent.mkdir()
    shutil.copy(ROOT / "examples" / "my_method.py", plugin)
    before = _reference_models(cache)
    _run(tmp, results, cache, "--methods", "finetune", "--plugin", str(plugin))
    assert _reference_models(cache) == before, "a plugin run must reuse the cached originals and oracles"
    df = _rows(results)
    mine = df[df.method == "my-method"]
    assert len(mine) == 2 and set(mine.status) == {"ok"}, mine[["scenario", "status", "error"]]
    assert mine.method_kind.eq("plugin").all()
    assert (df[df.method == "finetune"].status == "ok").sum() == 2
    assert mine.avg_gap.notna().all()


def test_entry_point_package(shared) -> None:
    tmp, results, cache = shared
    src = tmp / "pkg_src"
    shutil.copytree(ROOT / "examples" / "plugin_package", src)  # builds write into the source folder
    target = tmp / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "--quiet", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    before = _reference_models(cache)
    _run(tmp, results, cache, "--methods", "finetune", pythonpath=target)
    assert _reference_models(cache) == before
    df = _rows(results)
    rows = df[df.method == "forget-to-uniform"]
    assert len(rows) == 2 and set(rows.status) == {"ok"}, rows[["scenario", "status", "error"]]


BROKEN = {
    "broken_import": """
        import definitely_not_an_installed_module  # noqa: F401
    """,
    "broken_empty": """
        VALUE = 1  # defines no method
    """,
    "broken_signature": """
        from harness import register_method

        @register_method("broken-signature")
        def method(task, lr=0.1):  # hyper-parameters must be keyword-only
            return task.model
    """,
    "broken_return": """
        from harness import register_method

        @register_method("broken-return")
        def method(task):
            return {"model": task.model}
    """,
    "broken_nan": """
        import torch
        from harness import register_method

        @register_method("broken-nan")
        def method(task):
            with torch.no_grad():
                for p in task.model.parameters():
                    p.fill_(float("nan"))
            return task.model
    """,
    "broken_raise": """
        from harness import register_method
        from harness.training.loop import cross_entropy_loss, optimize, sgd

        @register_method("broken-raise")
        def method(task):
            optimize(task.model, sgd(task.model, 0.01), task.retain_loader(64), cross_entropy_loss)
            raise RuntimeError("boom after one epoch")
    """,
}

# (method name in the row, allowed statuses, text the error must contain: the plugin and the problem)
EXPECTED = {
    "broken_import": ("plugin:broken_import", {"failed"}, ["broken_import.py", "definitely_not_an_installed_module"]),
    "broken_empty": ("plugin:broken_empty", {"failed"}, ["broken_empty.py", "registered no method"]),
    "broken_signature": ("plugin:broken_signature", {"failed"}, ["broken_signature.py", "keyword-only"]),
    "broken_return": ("broken-return", {"invalid"}, ["broken_return.py", "dict"]),
    "broken_nan": ("broken-nan", {"invalid"}, ["broken_nan.py", "non-finite"]),
    "broken_raise": ("broken-raise", {"failed"}, ["broken_raise.py", "boom after one epoch"]),
}


def test_broken_plugins_become_failed_rows(shared) -> None:
    tmp, _, cache = shared
    folder = tmp / "broken"
    folder.mkdir()
    args = ["--methods", "finetune"]
    for stem, code in BROKEN.items():
        path = folder / f"{stem}.py"
        path.write_text(textwrap.dedent(code))
        args += ["--plugin", str(path)]
    isolated = tmp / "broken_results"
    before = _reference_models(cache)
    out = _run(tmp, isolated, cache, *args)
    assert _trained(out) == 0, "failed plugins and already-cached built-ins train nothing"
    assert _reference_models(cache) == before
    df = _rows(isolated)
    assert (df[df.method == "finetune"].status == "ok").sum() == 2, "built-in rows must still be written"
    for stem, (method, statuses, needles) in EXPECTED.items():
        rows = df[df.method == method]
        assert len(rows) >= 1, f"no row for {stem}: {sorted(df.method.unique())}"
        for _, row in rows.iterrows():
            assert row.status in statuses, (stem, row.status, row.error)
            for needle in needles:
                assert needle in row.error, f"{stem}: {needle!r} not in error {row.error!r}"
