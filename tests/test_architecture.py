"""The package's shape, as docs/architecture.md draws it: layers that import only downward, no import cycles
(function-level imports included), torch-free foundations, and built-in methods that use only the public API.

Every rule reads the import graph that grimp builds from the source (every ``import`` statement, wherever it
stands: module level, inside a function, under ``TYPE_CHECKING``). A rule has no exceptions unless
:data:`ALLOWED` lists one with its reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

PACKAGES = ("harness", "leaderboard", "baselines", "methods")
# Low to high: a module may import its own layer and the layers below it, never one above.
LAYERS = (
    "harness.core",       # torch-free: registry type, files, results store, attack statistics, version
    "harness.protocol",   # suites, scenarios and splits, datasets, architectures, recipes, methods, scoring
    "harness.training",   # the loop, batched training, clipping, cache, reference models, shadow bank
    "harness.api",        # what a method author imports: task, training helpers, building blocks
    "harness.isolation",  # sandbox, fork server, method workers, method call, plugins
    "harness.evaluate",   # evaluators
    "harness.pipeline",   # plan -> job graph -> executors -> one row; the driver
    "leaderboard",        # rows -> Markdown/HTML and statistics
    "harness.commands",   # cli, tune, verify, try
)
# The package's face (``import harness``): it may import the core only; the public names load lazily.
FACE = "harness"
# Old import paths (deprecated shims): importable from outside, never imported by the project's own code.
COMPAT = "harness._compat"
# Built-in methods are written as plugins are: they import the public API only.
PLUGINS = ("baselines", "methods")
PUBLIC = ("harness", "harness.api")
# (importer, imported) module pairs allowed against the rules, each with its reason. Empty: no exceptions.
ALLOWED: dict[tuple[str, str], str] = {}
# Must import without torch: what reading results needs (the leaderboard imports these), and the face.
TORCH_FREE_MODULES = ("harness", "harness.protocol", "harness.protocol.scoring", "harness.protocol.search_space",
                      "harness.protocol.methods", "harness.protocol.hparams")
TORCH_FREE_PACKAGES = ("harness.core", "leaderboard")
ROOT = Path(__file__).resolve().parent.parent
# The shims' own module names too (``harness.train``, ...): once ``harness`` is imported, its ``__path__`` holds
# _compat/, and grimp finds them there.
OLD_PATHS = tuple(sorted("harness." + ".".join(p.relative_to(ROOT / "harness" / "_compat").with_suffix("").parts)
                         .removesuffix(".__init__") for p in (ROOT / "harness" / "_compat").rglob("*.py")
                         if p.parent != ROOT / "harness" / "_compat" or p.name != "__init__.py"))


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)


def layer_of(module: str) -> int | None:
    """The index of the module's layer in :data:`LAYERS` (None: not in a layer)."""
    for index, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return index
    return None


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_compat(module: str) -> bool:
    return within(module, COMPAT) or any(within(module, old) for old in OLD_PATHS)


def where(graph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    lines = ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
    return f"{importer} -> {imported} ({lines})"


def violations(graph) -> list[str]:
    """Every import edge that breaks a rule (and is not in :data:`ALLOWED`)."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if (importer, imported) in ALLOWED or is_compat(importer):
                continue
            if is_compat(imported):
                found.append("imports a deprecated old path: " + where(graph, importer, imported))
            elif importer == FACE:
                if layer_of(imported) != 0:
                    found.append("the face imports more than the core: " + where(graph, importer, imported))
            elif importer.split(".")[0] in PLUGINS:
                if not (imported.split(".")[0] in PLUGINS or imported in PUBLIC or within(imported, "harness.api")):
                    found.append("a built-in method imports past the public API: " + where(graph, importer, imported))
            elif imported.split(".")[0] in PLUGINS:
                found.append("imports a built-in method package: " + where(graph, importer, imported))
            else:
                low, high = layer_of(imported), layer_of(importer)
                if imported == FACE or low is None or high is None or low > high:
                    found.append(f"upward ({LAYERS[high] if high is not None else importer} imports "
                                 f"{LAYERS[low] if low is not None else imported}): {where(graph, importer, imported)}")
    return found


def test_layers_import_only_downward(graph):
    assert violations(graph) == []


def test_only_the_command_line_renders_the_leaderboard(graph):
    """The engine never depends on its presentation: the cli's commands are the one way into the leaderboard."""
    importers = {m for m in graph.modules if within(m, "harness") and not is_compat(m)
                 for imported in graph.find_modules_directly_imported_by(m) if within(imported, "leaderboard")}
    assert importers <= {"harness.commands.cli"}


def test_every_module_is_in_a_layer(graph):
    loose = [m for m in graph.modules if layer_of(m) is None and m != FACE and not is_compat(m)
             and m.split(".")[0] not in PLUGINS]
    assert loose == []


def test_allowed_exceptions_are_still_needed(graph):
    stale = [pair for pair in ALLOWED if pair[1] not in graph.find_modules_directly_imported_by(pair[0])]
    assert stale == []


def test_an_upward_import_is_caught(tmp_path):
    """Plant ``harness.core`` -> ``harness.pipeline`` (inside a function) in a copy of the packages: the rule fires."""
    import shutil

    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    planted = tmp_path / "harness" / "core" / "files.py"
    planted.write_text(planted.read_text() + "\n\ndef _planted():\n    from harness.pipeline import driver\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
            "import grimp, test_architecture as t; g = grimp.build_graph(*t.PACKAGES, cache_dir=None);"
            "print('\\n'.join(t.violations(g)))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(Path(__file__).parent)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "harness.core.files -> harness.pipeline.driver" in done.stdout


def import_cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module in the project's import graph (Tarjan)."""
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


def test_no_import_cycles(graph):
    assert import_cycles(graph) == []


def test_the_core_never_reaches_torch():
    """Not even through a function-level import: every chain from a core module to torch."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    chains = [chain for module in sorted(graph.modules) if within(module, "harness.core")
              for chain in [graph.find_shortest_chain(importer=module, imported="torch")] if chain]
    assert chains == []


def test_reading_results_does_not_import_torch(graph):
    modules = [*TORCH_FREE_MODULES, *sorted(m for m in graph.modules for p in TORCH_FREE_PACKAGES if within(m, p))]
    code = f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n" \
           "assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_harness_has_few_top_level_entries():
    """The layers, the face, the old paths and the suites' data folder: nothing else at the top."""
    entries = sorted(p.name for p in (ROOT / "harness").iterdir() if p.name != "__pycache__")
    expected = sorted([*(layer.split(".")[1] for layer in LAYERS if layer.startswith("harness.")), "__init__.py",
                       "_compat", "suites"])
    assert entries == expected


def test_long_modules_say_why():
    """A module over 400 lines gives its reason in its docstring (a line starting 'Why one module:')."""
    long = []
    for path in sorted(p for name in PACKAGES for p in (ROOT / name).rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 400 and "Why one module:" not in text.split('"""')[1]:
            long.append(str(path.relative_to(ROOT)))
    assert long == []


def test_the_docs_describe_the_tree_that_exists():
    """docs/architecture.md names every module of every layer, and README's Layout every layer folder."""
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    missing = []
    for layer in (name.split(".")[1] for name in LAYERS if name.startswith("harness.")):
        if f"`{layer}/`" not in layout:
            missing.append(f"README Layout: {layer}/")
        if f"harness.{layer}" not in architecture:
            missing.append(f"docs/architecture.md: harness.{layer}")
        for path in sorted((ROOT / "harness" / layer).rglob("*.py")):
            if path.name != "__init__.py" and layer != "evaluate" and f"`{path.name}`" not in architecture \
                    and f"`{path.parent.name}/`" not in architecture:
                missing.append(f"docs/architecture.md: {path.relative_to(ROOT)}")
    assert missing == []
