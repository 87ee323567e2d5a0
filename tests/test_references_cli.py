"""The reference rows always run: ``--methods`` on an empty results folder still writes ``original`` and
``retrain`` for each (scenario, seed), and ``--no-references`` leaves them out with a warning."""

from __future__ import annotations

import subprocess
import sys

from harness.core.results import read_results


def _run(tmp_path, results: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", "digits-smoke", "--seeds", "0",
           "--scenarios", "random-10", "--methods", "finetune", "--results", str(tmp_path / results),
           "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--no-isolation", *extra]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900)


def test_methods_on_empty_results_write_the_reference_rows(tmp_path):
    proc = _run(tmp_path, "results")
    assert proc.returncode == 0, proc.stderr
    frame = read_results(tmp_path / "results", "digits-smoke")
    assert sorted(frame["method"]) == ["finetune", "original", "retrain"]
    assert (frame["status"] == "ok").all(), frame[["method", "error"]]
    assert set(zip(frame["scenario"], frame["seed"])) == {("random-10", 0)}

    again = _run(tmp_path, "results")  # stored references are not rerun
    assert again.returncode == 0 and "0 runs written" in again.stdout, again.stdout

    bare = _run(tmp_path, "bare", "--no-references")
    assert bare.returncode == 0, bare.stderr
    assert "--no-references" in bare.stderr and "floor" in bare.stderr
    assert list(read_results(tmp_path / "bare", "digits-smoke")["method"]) == ["finetune"]
