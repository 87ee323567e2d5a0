"""Running a method apart from the harness: the bubblewrap sandbox and its fork server, the method
workers, the in-process method call, and how plugins are imported and described.

``harness.isolation`` was once the module that is now :mod:`harness.isolation.workers`; its names (``Isolation``,
``IsolationLimits``, ``MethodFault``, ...) still resolve here, with a deprecation warning.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    workers = importlib.import_module("harness.isolation.workers")
    if not hasattr(workers, name):
        raise AttributeError(f"module 'harness.isolation' has no attribute {name!r}")
    warnings.warn(f"harness.isolation.{name} is deprecated: import it from harness.isolation.workers",
                  DeprecationWarning, stacklevel=2)
    return getattr(workers, name)
