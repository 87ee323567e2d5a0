"""The old import paths of the flat ``harness/`` layout, kept importable (deprecated).

``harness/__init__.py`` appends this folder to the package's ``__path__``, so ``import harness.train`` finds
``_compat/train.py`` when ``harness/`` itself has no such module. Each file here is one old path: it warns and puts
the module that now holds the code in its place in ``sys.modules`` (the same module object, so patching an attribute
through the old path patches the real one). New code imports the new paths; tests/test_architecture.py forbids
importing these from the project's own packages. docs/architecture.md lists every move.
"""

from __future__ import annotations

import importlib
import sys
import warnings


def moved(old: str, new: str) -> None:
    """Make the old module path ``old`` the module ``new`` (called by the shim at ``old``)."""
    if old == "__main__":  # run with ``python -m <old path>``: the shim runs the command itself
        return
    warnings.warn(f"{old} is deprecated: import {new} (docs/architecture.md)", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
