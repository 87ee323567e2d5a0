"""``unlearn-bench doctor`` through the real CLI: a ready machine passes, each broken part is named with its fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "harness.commands.cli", "doctor"]


def doctor(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    defaults = ["--cache-dir", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]
    return subprocess.run([*CLI, *defaults, *args], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})}, cwd=tmp_path)


def lines(done: subprocess.CompletedProcess, area: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.split()[1:2] == [area]]


def test_a_ready_machine_passes(tmp_path):
    done = doctor(tmp_path, "--suite", "digits-smoke", env={"UNLEARN_BENCH_SANDBOX": "auto"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done, "data")[0].startswith("ok") and "digits-smoke" in lines(done, "data")[0]
    assert lines(done, "sandbox")[0].startswith("ok")  # CI installs bubblewrap (make sandbox)
    assert lines(done, "cache")[0].startswith("ok") and (tmp_path / "cache").is_dir()
    assert "FIX" not in done.stdout


def test_a_missing_data_root_and_an_unwritable_cache_are_fixes(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = doctor(tmp_path, "--suite", "fmnist-quick", "--data-root", str(tmp_path / "no-such-root"),
                  "--cache-dir", str(blocker / "cache"))
    assert done.returncode == 1, done.stdout + done.stderr
    data, cache = lines(done, "data")[0], lines(done, "cache")[0]
    assert data.startswith("FIX") and str(tmp_path / "no-such-root") in data
    assert cache.startswith("FIX") and "--cache-dir" in cache
    assert re.match(r"2 to fix, \d+ warning\(s\)$", done.stdout.rstrip().splitlines()[-1]), done.stdout


def test_an_unsandboxed_mode_is_a_warning_not_a_failure(tmp_path):
    done = doctor(tmp_path, "--suite", "digits-smoke", env={"UNLEARN_BENCH_SANDBOX": "none"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done, "sandbox")[0].startswith("warn") and "not sandboxed" in lines(done, "sandbox")[0]
