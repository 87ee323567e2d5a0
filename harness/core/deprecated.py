"""Names kept where they used to be: a package that was once a module still answers that module's names, with a
``DeprecationWarning`` (harness.isolation, harness.protocol; docs/architecture.md, "Where things moved")."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from typing import Any


def forward_names(package: str, module: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that finds the names of ``module`` (the old module's new home)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{package}.{name}") is not None:  # a submodule (from package import it)
            return importlib.import_module(f"{package}.{name}")
        target = importlib.import_module(module)
        if not hasattr(target, name):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(f"{package}.{name} is deprecated: import it from {module}", DeprecationWarning, stacklevel=2)
        return getattr(target, name)

    return __getattr__
