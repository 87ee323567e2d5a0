"""What a method can observe does not tell its audit runs from its scored runs (docs/reliability.md).

A probe plugin records every task field a method could branch on; with ``pool = "half"`` each field has one
value per scenario across the scored runs and the audit runs on the shadow bank (sizes, class counts, the
generator's seed width, the model's state), so no rule over them separates the two kinds of run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.isolation.plugins import load_plugin_file
from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.suite import load_suite

PROBE = Path(__file__).parent / "plugins_gaming" / "observer.py"


def test_scored_and_audit_runs_show_a_method_the_same_task(tmp_path, monkeypatch):
    log = tmp_path / "observed.jsonl"
    monkeypatch.setenv("OBSERVER_LOG", str(log))
    load_plugin_file(PROBE)
    suite = dataclasses.replace(load_suite("digits-smoke"), evaluate={"evaluators": ["accuracy", "ulira"],
                                                                      "shadow_models": 4})
    summary = run_suite(suite, RunOptions(methods=["observer"], results_root=tmp_path / "results",
                                          cache_dir=tmp_path / "cache", device="cpu", progress=False))
    assert summary.failed == 0 and summary.written == len(suite.scenarios) * len(suite.seeds)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    per_scenario = len(suite.seeds) + 4  # scored runs + one audit run per shadow
    assert len(seen) == len(suite.scenarios) * per_scenario
    for kind in {s["kind"] for s in seen}:
        mine = [s for s in seen if s["kind"] == kind]
        assert len(mine) == per_scenario
        seed_bits = [s.pop("seed_bits") for s in mine]
        assert min(seed_bits) > 40, seed_bits  # 63-bit seeds everywhere: a narrower audit seed would give runs away
        if kind == "random":  # a random forget set's class counts vary from run to run, in both kinds of run alike
            for s in mine:
                s.pop("forget_counts")
        distinct = {json.dumps(s, sort_keys=True) for s in mine}
        assert len(distinct) == 1, distinct
