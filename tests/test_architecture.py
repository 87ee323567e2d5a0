"""The package's shape: no import cycles (function-level imports included), and the leaderboard stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

grimp = pytest.importorskip("grimp")

PACKAGES = ("harness", "leaderboard", "baselines", "methods")


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the project's import graph (Tarjan)."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles():
    assert import_cycles() == []


@pytest.mark.parametrize("module", ["leaderboard.render", "leaderboard.compare", "harness.core.attack_stats"])
def test_reading_results_does_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
