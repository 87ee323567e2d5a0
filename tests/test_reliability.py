"""Fault injection through the real CLI on digits-smoke: kills, concurrent runs, corrupt cache, hostile plugins.

Every test ends by checking the stored rows: the expected set, no duplicates, no unreadable or tampered file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.results import read_results

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness.commands.cli"]
METHODS = "finetune,original,retrain"
# digits-smoke with the accuracy evaluator only: these tests are about rows, not metrics, and must stay fast.
SMOKE = (ROOT / "harness" / "suites" / "digits-smoke.toml").read_text()
FAST_SUITE = Path(tempfile.mkdtemp(prefix="unlearn-bench-reliability-")) / "digits-smoke-fast.toml"
FAST_SUITE.write_text(re.sub(r"(?ms)^\[evaluate\].*", '[evaluate]\nevaluators = ["accuracy"]\n', SMOKE))
BASE = ["run", "--suite", str(FAST_SUITE), "--seeds", "0", "--no-progress", "--no-references"]
FT = ["--set", "finetune.epochs=2"]

pytestmark = pytest.mark.slow


def cli(*args: str, results: Path, cache: Path, timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    cmd = [*CLI, *BASE, "--results", str(results), "--cache-dir", str(cache), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, **popen)


def written(stdout: str) -> tuple[int, int]:
    """(runs written, already stored) from the CLI's summary line."""
    match = re.search(r"(\d+) runs written .* (\d+) already stored", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def check_rows(results: Path, expected: int) -> list[dict]:
    """The stored rows: exactly ``expected``, one per run id, all readable and untampered."""
    frame = read_results(results, "digits-smoke")
    rows = frame.to_dict("records")
    assert len(rows) == expected, frame[["method", "scenario", "status"]]
    assert frame["run_id"].is_unique
    assert not (frame["status"] == "unreadable").any() and not frame["tampered"].any()
    keys = {(r["method"], r["scenario"], r["seed"]) for r in rows}
    assert len(keys) == expected
    return rows


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A cache holding the seed-0 original and both oracles, so tests spend their time on method runs."""
    root = tmp_path_factory.mktemp("warm")
    done = cli("--methods", "original", results=root / "results", cache=root / "cache")
    assert done.returncode == 0, done.stderr
    return root / "cache"


def private_cache(warm_cache: Path, tmp_path: Path) -> Path:
    shutil.copytree(warm_cache, tmp_path / "cache")
    return tmp_path / "cache"


def test_sigkill_midway_then_resume_completes_exactly_the_missing_runs(tmp_path, warm_cache):
    cache, results = private_cache(warm_cache, tmp_path), tmp_path / "results"
    folder = results / "digits-smoke"
    proc = subprocess.Popen([*CLI, *BASE, "--methods", METHODS, "--results", str(results), "--cache-dir", str(cache)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(folder.glob("*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its method worker and the forkserver, mid-way
    proc.wait()
    stored = len(list(folder.glob("*.parquet")))
    assert 0 < stored < 6, "the kill should land mid-way"
    check_rows(results, stored)  # what the killed process left is whole
    done = cli("--methods", METHODS, results=results, cache=cache)
    assert done.returncode == 0, done.stderr
    assert written(done.stdout) == (6 - stored, stored)
    rows = check_rows(results, 6)
    assert all(r["status"] == "ok" for r in rows)
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp" and p.stat().st_mtime > time.time() - 1]


def test_two_processes_on_one_results_folder_do_not_duplicate(tmp_path, warm_cache):
    cache, results = private_cache(warm_cache, tmp_path), tmp_path / "results"
    cmd = [*CLI, *BASE, *FT, "--methods", METHODS, "--results", str(results), "--cache-dir", str(cache)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert sum(written(out)[0] for out, _ in outs) == 6  # each run executed by exactly one process
    assert all(r["status"] == "ok" for r in check_rows(results, 6))


def test_a_bit_flip_in_a_cached_oracle_is_detected_and_recomputed(tmp_path, warm_cache):
    cache, results = private_cache(warm_cache, tmp_path), tmp_path / "results"
    victim = min((cache / "oracle").glob("*.pt"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    done = cli(*FT, "--methods", "retrain,finetune", results=results, cache=cache)
    assert done.returncode == 0, done.stderr
    assert "corrupt cache artifact" in done.stderr and victim.name in done.stderr
    assert "1 corrupt recomputed" in done.stdout
    assert all(r["status"] == "ok" for r in check_rows(results, 4))
    from harness.training.cache import ArtifactCache

    ArtifactCache(cache).load("oracle", victim.stem)  # the recomputed file verifies


def test_an_edited_row_is_flagged_as_tampered(tmp_path, warm_cache):
    results = tmp_path / "results"
    done = cli("--methods", "original", "--scenarios", "random-10", results=results, cache=warm_cache)
    assert done.returncode == 0, done.stderr
    path = next((results / "digits-smoke").glob("*.parquet"))
    table = pq.read_table(path)
    column = table.schema.get_field_index("forget_acc")
    table = table.set_column(column, "forget_acc", pa.array([0.0]))  # a better-looking forget accuracy
    pq.write_table(table, path)
    frame = read_results(results, "digits-smoke")
    assert frame["tampered"].tolist() == [True]


HOSTILE = {
    "sleeper": ("import time", "while True:\n    time.sleep(1)"),
    "exiter": ("import os", "os._exit(3)"),
    "raiser": ("", "raise ValueError('deliberate failure from the raiser plugin')"),
    "nanner": ("import torch", "with torch.no_grad():\n    for p in task.model.parameters():\n"
                               "        p.fill_(float('nan'))\nreturn task.model"),
    "hog": ("", "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))"),
    "segv": ("import os, signal", "os.kill(os.getpid(), signal.SIGSEGV)"),
}
EXPECTED = {
    "sleeper": ("timeout", "exceeded the wall-clock limit of 20 s"),
    "exiter": ("failed", "exited with code 3"),
    "raiser": ("failed", "ValueError: deliberate failure from the raiser plugin"),
    "nanner": ("invalid", "non-finite values"),
    "hog": ("failed", "memory limit ("),  # a cgroup's OOM kill or RLIMIT_AS's MemoryError (harness/isolation/limits.py)
    "segv": ("failed", "died with SIGSEGV"),
    "finetune": ("ok", ""),
    "original": ("ok", ""),
}


def test_hostile_plugins_become_rows_and_the_rest_survive(tmp_path, warm_cache):
    plugins = []
    for name, (imports, body) in HOSTILE.items():
        path = tmp_path / f"{name}.py"
        path.write_text(f"{imports}\nfrom harness import register_method\n\n\n"
                        f"@register_method({name!r}, needs_retain=False)\n"
                        f"def {name}(task):\n{textwrap.indent(body, '    ')}\n")
        plugins += ["--plugin", str(path)]
    suite = tmp_path / "lowmem.toml"  # digits-smoke with a 1 GiB worker budget, so 'hog' hits the limit
    text = FAST_SUITE.read_text()
    suite.write_text(text.replace("timeout = 120", "timeout = 120\nmemory_mb = 1024"))
    cmd = [*CLI, "run", "--suite", str(suite), "--seeds", "0", "--scenarios", "random-10", "--no-progress",
           "--no-references", "--set", "finetune.epochs=2", "--timeout", "20", "--methods", "finetune,original", *plugins,
           "--results", str(tmp_path / "results"), "--cache-dir", str(warm_cache)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = {r["method"]: r for r in check_rows(tmp_path / "results", len(EXPECTED))}
    for method, (status, text) in EXPECTED.items():
        assert rows[method]["status"] == status, (method, rows[method]["error"])
        assert text in rows[method]["error"], (method, rows[method]["error"])
    assert rows["finetune"]["forget_acc"] > 0 and rows["original"]["forget_acc"] > 0
