"""The old flat layout's import paths still work (harness/_compat/): each is the module that now holds its code."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

# Every module of the flat layout and where it lives now (docs/architecture.md, "Where things moved").
MOVED = {
    "harness.names": "harness.core.registry",
    "harness.files": "harness.core.files",
    "harness.results": "harness.core.results",
    "harness.membership": "harness.core.attack_stats",
    "harness.version": "harness.core.version",
    "harness.suite": "harness.protocol.suite",
    "harness.splits": "harness.protocol.splits",
    "harness.data": "harness.protocol.datasets",
    "harness.models": "harness.protocol.architectures",
    "harness.hparams": "harness.protocol.hparams",
    "harness.protocol": "harness.protocol.scoring",
    "harness.registry": "harness.protocol.methods",
    "harness.tune.space": "harness.protocol.search_space",
    "harness.train": "harness.training.loop",
    "harness.ensemble": "harness.training.batched",
    "harness.clipping": "harness.training.clipping",
    "harness.cache": "harness.training.cache",
    "harness.artifacts": "harness.training.reference_models",
    "harness.shadow": "harness.training.shadow_bank",
    "harness.task": "harness.api.task",
    "harness.unlearning": "harness.api.blocks",
    "harness.sandbox": "harness.isolation.sandbox",
    "harness.isolation": "harness.isolation.workers",
    "harness.execution": "harness.isolation.method_call",
    "harness.cgroups": "harness.isolation.cgroups",
    "harness.limits": "harness.isolation.limits",
    "harness.plugins": "harness.isolation.plugins",
    "harness.plugin_import": "harness.isolation.plugin_import",
    "harness.plugin_proxy": "harness.isolation.plugin_proxy",
    "harness.plan": "harness.pipeline.plan",
    "harness.jobs": "harness.pipeline.graph",
    "harness.executors": "harness.pipeline.executors",
    "harness.run": "harness.pipeline.row",
    "harness.runner": "harness.pipeline.driver",
    "harness.integrity": "harness.pipeline.oracle_copy",
    "harness.noop": "harness.pipeline.noop",
    "harness.provenance": "harness.pipeline.provenance",
    "harness.references": "harness.pipeline.references",
    "harness.cli": "harness.commands.cli",
    "harness.verify": "harness.commands.verify",
    "harness.quick": "harness.commands.quick",
    "harness.tune": "harness.commands.tune",
    "harness.tune.command": "harness.commands.tune.command",
    "harness.tune.output": "harness.commands.tune.output",
    "harness.tune.search": "harness.commands.tune.search",
    "harness.tune.validation": "harness.commands.tune.validation",
}
COMPAT = Path(__file__).resolve().parent.parent / "harness" / "_compat"
# Old modules that are packages now (their old names resolve on the package), or a folder of shims (tune/).
PACKAGES = {"harness.isolation", "harness.protocol", "harness.tune"}


@pytest.mark.parametrize("old", sorted(set(MOVED) - PACKAGES))
def test_old_path_is_the_new_module(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught)


def test_every_shim_is_listed_and_every_old_module_has_one():
    shims = {"harness." + ".".join(p.relative_to(COMPAT).with_suffix("").parts) for p in COMPAT.rglob("*.py")
              if p.name != "__init__.py"}
    assert shims == set(MOVED) - PACKAGES


def test_old_isolation_names_resolve_on_the_package():
    from harness.isolation.workers import Isolation, IsolationLimits, MethodFault

    with pytest.warns(DeprecationWarning):
        from harness.isolation import Isolation as OldIsolation
        from harness.isolation import IsolationLimits as OldLimits
        from harness.isolation import MethodFault as OldFault
    assert (OldIsolation, OldLimits, OldFault) == (Isolation, IsolationLimits, MethodFault)


def test_old_protocol_names_resolve_on_the_package():
    from harness.protocol.scoring import HEADLINES, ORACLE_METHOD

    with pytest.warns(DeprecationWarning):
        from harness.protocol import HEADLINES as OldHeadlines
        from harness.protocol import ORACLE_METHOD as OldOracle
    assert (OldHeadlines, OldOracle) == (HEADLINES, ORACLE_METHOD)


def test_a_submodule_of_such_a_package_is_no_old_name():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from harness.isolation import cgroups, sandbox
        from harness.protocol import suite
    assert (cgroups.__name__, sandbox.__name__, suite.__name__) == (
        "harness.isolation.cgroups", "harness.isolation.sandbox", "harness.protocol.suite")


def test_python_dash_m_harness_cli_still_runs():
    done = subprocess.run([sys.executable, "-m", "harness.cli", "suites"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "digits-smoke" in done.stdout
