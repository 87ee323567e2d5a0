"""Provenance facts stored with every results row (code version, packages, hardware)."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import torch

from harness.core.version import HARNESS_VERSION  # noqa: F401  (re-exported)


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the harness checkout (with ``-dirty`` for uncommitted changes), or 'unknown'."""
    here = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def package_versions() -> str:
    import numpy
    import pandas
    import sklearn

    return (f"python={platform.python_version()} torch={torch.__version__} numpy={numpy.__version__} "
            f"pandas={pandas.__version__} sklearn={sklearn.__version__}")


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu:{platform.machine()}x{torch.get_num_threads()}threads"
