"""The GPU benchmark is ready to run: its shell wrapper parses, it refuses a machine without a GPU clearly,
and its dry run exercises every section on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
GPU_SH = ROOT / "bench" / "gpu.sh"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(GPU_SH), *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def test_gpu_sh_is_valid_shell():
    assert subprocess.run(["bash", "-n", str(GPU_SH)], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_sh_fails_fast_without_a_gpu():
    proc = _run(timeout=120)
    assert proc.returncode == 2 and "needs an NVIDIA GPU" in proc.stderr


@pytest.mark.slow
def test_gpu_sh_dry_run_covers_every_section():
    proc = _run("--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for heading in ("## 1. ResNet-18", "## 2. Shadow bank", "## 3. GPU packing", "## 4. Reduced suite",
                    "## 5. Projected cost"):
        assert heading in proc.stdout, heading
    assert "gpu.sh: total" in proc.stdout
