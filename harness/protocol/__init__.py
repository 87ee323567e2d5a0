"""The benchmark protocol: what is fixed before anything trains. Suites (TOML, validated), scenarios and splits,
datasets, model architectures, training recipes, methods' declarations (the method registry) and their search
spaces, hyper-parameter layering, and the scoring rules (headlines, the noise floor, ToW).

``harness.protocol`` was once the module that is now :mod:`harness.protocol.scoring`; its names (``HEADLINES``,
``ORACLE_METHOD``, ``floor_gaps``, ...) still resolve here, with a deprecation warning.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    scoring = importlib.import_module("harness.protocol.scoring")
    if not hasattr(scoring, name):
        raise AttributeError(f"module 'harness.protocol' has no attribute {name!r}")
    warnings.warn(f"harness.protocol.{name} is deprecated: import it from harness.protocol.scoring",
                  DeprecationWarning, stacklevel=2)
    return getattr(scoring, name)
