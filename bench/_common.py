"""Helpers shared by the bench scripts: the hardware line, timed CLI runs, a plain table printer."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness.commands.cli"]


def hardware() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}; "
            f"load average at start {load:.1f}")


def run_cli(args: list[str], timeout: float = 3600) -> float:
    """Run ``unlearn-bench`` in a subprocess; returns wall seconds, raises with its output on failure."""
    start = time.perf_counter()
    proc = subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"unlearn-bench {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])])
