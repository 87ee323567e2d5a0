"""Isolated method runs: what a worker can see, what it can send back, and what isolation costs."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import statistics
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import torch

from harness.isolation.method_call import build_task, call_method, task_memoizer
from harness.isolation.plugins import load_plugin_file
from harness.isolation.workers import Isolation, IsolationLimits, MethodFault
from harness.pipeline.driver import RunOptions, run_suite
from harness.pipeline.oracle_copy import (
    COPY_TV_FRACTION,
    functional_copy_check,
    oracle_copy_reason,
    state_hash,
)
from harness.protocol.methods import get_method
from harness.protocol.splits import hash_indices
from harness.training.cache import ArtifactCache
from harness.training.reference_models import get_oracle


def _plugin(tmp_path: Path, body: str, **names: str) -> tuple[str, Path]:
    """Write a plugin whose method name is unique in this session; returns (name, path)."""
    name = f"iso-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"plugin_{name.replace('-', '_')}.py"
    path.write_text(textwrap.dedent(body).replace("METHOD", name))
    load_plugin_file(path)
    return name, path


def _run(iso: Isolation, world, name: str, hparams: dict | None = None, cache=None, original_key=None):
    return iso.unlearn(world.run(get_method(name), hparams, original_key=original_key), cache=cache)


PROBE = '''
import gc, hashlib, json, os
import torch
from harness import register_method

@register_method("METHOD", needs_retain=True)
def probe(task, *, oracle_hash: str = "", test_hash: str = "", needle: str = ""):
    """Look everywhere in this process for the oracle, the test images and the cache location.

    The sandbox lets nothing out but the answer, so the findings travel in the error of a failed row.
    """
    from harness.pipeline.oracle_copy import state_hash
    found = {"oracle": False, "test": False, "strings": 0}
    for obj in gc.get_objects():
        if isinstance(obj, torch.nn.Module):
            found["oracle"] |= state_hash(obj) == oracle_hash
        elif isinstance(obj, torch.Tensor) and obj.dim() == 4:
            digest = hashlib.sha256(obj.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            found["test"] |= digest == test_hash
        elif isinstance(obj, (dict, list, tuple)):
            values = obj.values() if isinstance(obj, dict) else obj
            found["strings"] += sum(1 for v in values if isinstance(v, str) and needle and needle in v)
    found["referrers"] = [type(r).__name__ for r in gc.get_referrers(task)]
    found["env"] = [k for k, v in os.environ.items() if k.startswith("UNLEARN_BENCH") or (needle and needle in v)]
    found["task_fields"] = sorted(vars(task))
    raise RuntimeError("PROBE " + json.dumps(found))
'''


def _tensor_hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _probe_findings(row: dict) -> dict:
    assert row["status"] == "failed" and "PROBE " in row["error"], row["error"]
    return json.loads(row["error"].rsplit("PROBE ", 1)[1])


def test_worker_finds_no_oracle_test_data_or_cache_path(tmp_path, digits_random, monkeypatch):
    """Walk every object in the worker: no oracle, no test images, no cache path; in-process would leak."""
    world = digits_random
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(world.cache.root))
    name, _ = _plugin(tmp_path, PROBE)
    # Accuracy only: no shadow runs, so the probe's first call is the main run, with the oracles loaded.
    suite = dataclasses.replace(world.suite, evaluate={**world.suite.evaluate, "evaluators": ["accuracy"]})
    found = {}
    for isolate in (True, False):
        options = RunOptions(methods=[name], seeds=[0], scenarios=["random-10"], results_root=tmp_path / f"r{isolate}",
                             cache_dir=world.cache.root, isolate=isolate, progress=False,
                             overrides={name: {"oracle_hash": state_hash(world.oracle),
                                               "test_hash": _tensor_hash(world.data.test_x),
                                               "needle": str(world.cache.root)}})
        summary = run_suite(suite, options)
        assert len(summary.rows) == 1
        found[isolate] = _probe_findings(summary.rows[0])
    inside = found[True]
    assert not inside["oracle"] and not inside["test"]
    assert inside["strings"] == 0 and inside["env"] == []
    assert inside["task_fields"] == sorted(["model", "forget", "retain", "num_classes", "scenario_kind", "device",
                                            "generator", "forget_class", "augment", "progress", "_fresh_model",
                                            "_memoize"])
    # The same probe run in-process does find them: the test can see a leak when there is one.
    assert found[False]["oracle"] and found[False]["test"]


def test_cached_artifacts_go_through_the_parent(tmp_path, digits_random):
    world = digits_random
    name, _ = _plugin(tmp_path, '''
        import torch
        from harness import register_method

        COMPUTED = []  # the worker is reused across this method's runs: counts its computations

        @register_method("METHOD", needs_retain=False)
        def cacher(task):
            def compute():
                COMPUTED.append(1)
                return {"adv": task.forget.x[:5] * 2, "eps": torch.tensor(0.1)}
            art = task.cached("advset", {"eps": 0.1}, compute)
            assert torch.equal(art["adv"], task.forget.x[:5] * 2)
            if len(COMPUTED) != 1:
                raise RuntimeError(f"computed {len(COMPUTED)} times")
            return task.model
    ''')
    from harness.training.cache import ArtifactCache

    cache = ArtifactCache(tmp_path / "cache")
    with Isolation(IsolationLimits(timeout_s=120, memory_mb=2048)) as iso:
        for _ in range(2):
            _run(iso, world, name, cache=cache, original_key="orig-key")
        assert iso.restarts == 0  # one worker served both runs, so COMPUTED saw both
    assert len(list((tmp_path / "cache" / "derived-advset").glob("*.pt"))) == 1
    assert (cache.hits, cache.misses) == (1, 1)  # computed once, then served by the parent from the cache


@pytest.mark.parametrize("body, status, text", [
    ('return task.cached("../oracle", {}, lambda: torch.zeros(1))', "failed", "task.cached: name must match"),
    ('return task.cached("obj", {}, lambda: type("X", (), {})())', "failed", "not tensors or plain containers"),
    ('return torch.nn.Linear(3, 2)', "invalid", "forward pass fails"),
    ('return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(task.forget.x[0].numel(), task.num_classes))',
     "invalid", "is not a mlp of the original's shape"),
    ('return "a string"', "invalid", "returned str, expected a torch.nn.Module"),
])
def test_bad_outputs_and_cache_requests_are_refused(tmp_path, digits_random, body, status, text):
    name, _ = _plugin(tmp_path, f'''
        import torch
        from harness import register_method

        @register_method("METHOD", needs_retain=False)
        def bad(task):
            {body}
    ''')
    from harness.training.cache import ArtifactCache

    with Isolation(IsolationLimits(timeout_s=60, memory_mb=2048)) as iso, pytest.raises(MethodFault) as info:
        _run(iso, world := digits_random, name, cache=ArtifactCache(tmp_path / "c"), original_key="k")
    assert info.value.status == status and text in str(info.value)
    del world


def test_a_hostile_pickle_never_executes_in_the_parent(tmp_path, digits_random):
    """The method finds the worker's pipe and sends a pickle that would run a command when loaded."""
    marker = tmp_path / "pwned"
    name, _ = _plugin(tmp_path, f'''
        import gc, json, os, pickle, time
        from multiprocessing.connection import Connection
        from harness import register_method

        class Boom:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))

        @register_method("METHOD", needs_retain=False)
        def evil(task):
            conn = next(o for o in gc.get_objects() if isinstance(o, Connection))
            conn.send_bytes(json.dumps({{"op": "result", "status": "ok", "blob": True}}).encode())
            conn.send_bytes(pickle.dumps({{"0.weight": Boom()}}))
            time.sleep(30)
    ''')
    with Isolation(IsolationLimits(timeout_s=60, memory_mb=2048)) as iso, pytest.raises(MethodFault) as info:
        _run(iso, digits_random, name)
    assert info.value.status == "invalid" and "cannot be read safely" in str(info.value)
    assert not marker.exists()


def test_oracle_copies_are_detected(digits_random):
    world = digits_random
    copy = __import__("copy").deepcopy(world.oracle)
    assert "identical to the oracle" in oracle_copy_reason(copy, world.oracle, world.original)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(1e-6 * torch.randn_like(p))
    assert "near copy" in oracle_copy_reason(copy, world.oracle, world.original)
    assert oracle_copy_reason(world.original, world.oracle, world.original) is None


def test_the_functional_check_with_one_and_two_oracles(digits_random):
    world = digits_random
    second = get_oracle(world.workspace, world.split, 1).model
    x = world.data.test_x
    one = functional_copy_check(world.original, [world.oracle], world.original, x)
    assert one.reason is None and one.check == "weights only (1 oracle)" and math.isnan(one.oracle_pair_tv)
    assert "identical" in functional_copy_check(copy.deepcopy(world.oracle), [world.oracle], world.original, x).reason
    two = functional_copy_check(world.original, [world.oracle, second], world.original, x)
    assert two.reason is None and two.oracle_pair_tv > 0 and two.check == "weights+function"
    # Oracle 0 (it shares the original's initialisation, so it is close to it in weights) with 0.1% weight
    # noise: a functional copy; with one oracle there is no floor and the weight check lets it pass.
    noisy = copy.deepcopy(world.oracle)
    with torch.no_grad():
        for p in noisy.parameters():
            p.mul_(1 + 1e-3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    flagged = functional_copy_check(noisy, [world.oracle, second], world.original, x)
    assert "predictions on held-out examples copy oracle 0" in flagged.reason
    assert flagged.copy_tv < COPY_TV_FRACTION * flagged.oracle_pair_tv
    assert functional_copy_check(noisy, [world.oracle], world.original, x).reason is None
    with pytest.raises(ValueError, match="held-out inputs"):
        functional_copy_check(world.original, [world.oracle], world.original, x[:0])
    with pytest.raises(ValueError, match="at least one oracle"):
        functional_copy_check(world.original, [], world.original, x)


def test_task_memoizer_scopes_artifacts_by_family(tmp_path):
    """In-process (``--no-isolation``) task.cached: the same name and parameters, two families, two slots."""
    cache = ArtifactCache(tmp_path)
    forget = torch.arange(5)
    ours = task_memoizer(cache, "orig", hash_indices(forget), "module:methods.amun")
    theirs = task_memoizer(cache, "orig", hash_indices(forget), "plugin:evil:0123")
    assert ours("adv", {"eps": 1}, lambda: torch.ones(2)).tolist() == [1.0, 1.0]
    assert theirs("adv", {"eps": 1}, lambda: torch.zeros(2)).tolist() == [0.0, 0.0]
    assert ours("adv", {"eps": 1}, lambda: torch.full((2,), 7.0)).tolist() == [1.0, 1.0]
    assert len(list((tmp_path / "derived-adv").glob("*.pt"))) == 2


def test_a_plugin_that_returns_the_cached_oracle_gets_an_invalid_row(tmp_path, digits_random, monkeypatch):
    """Without the sandbox a hostile plugin reads the oracle file from the cache folder and returns it."""
    monkeypatch.setenv("UNLEARN_BENCH_SANDBOX", "none")  # the sandbox would hide the file (tests/test_sandbox.py)
    world = digits_random
    from harness.training.reference_models import model_key

    oracle_file = world.cache.paths("oracle", model_key(world.suite, world.data, "oracle", world.split.retain,
                                                        world.split.seed))[0]
    name, _ = _plugin(tmp_path, f'''
        import torch
        from harness import register_method

        @register_method("METHOD", needs_retain=False)
        def thief(task, *, noise: float = 0.0):
            state = torch.load({str(oracle_file)!r}, weights_only=False)["state"]
            task.model.load_state_dict(state)
            with torch.no_grad():
                for p in task.model.parameters():
                    p.add_(noise * torch.randn_like(p))
            return task.model
    ''')
    for noise, reason in ((0.0, "identical to the oracle"), (1e-6, "near copy")):
        options = RunOptions(methods=[name], seeds=[0], scenarios=["random-10"], cache_dir=world.cache.root,
                             results_root=tmp_path / f"r{noise}", isolate=True, progress=False,
                             overrides={name: {"noise": noise}})
        row = run_suite(world.suite, options).rows[0]
        assert row["status"] == "invalid" and reason in row["error"], row["error"]
        assert row["sandbox"] == "none"


@pytest.mark.slow
def test_isolation_overhead_per_run(tmp_path, digits_random, capsys):
    """Per-run cost of a worker round trip (reused worker) and of a fresh worker, against in-process."""
    world = digits_random
    name, _ = _plugin(tmp_path, '''
        from harness import register_method

        @register_method("METHOD", needs_retain=True)
        def noop(task):
            return task.model
    ''')
    spec = get_method(name)
    n = 15

    def inproc() -> None:
        call_method(spec, build_task(world.run(spec)), {})

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    with Isolation(IsolationLimits(timeout_s=120, memory_mb=2048)) as iso:
        iso.start()
        fresh = [timed(lambda: _run(iso, world, name)) if iso.close() is None else 0.0 for _ in range(5)]
        reused = [timed(lambda: _run(iso, world, name)) for _ in range(n)]
    local = [timed(inproc) for _ in range(n)]
    med = {k: statistics.median(v) for k, v in (("fresh", fresh), ("reused", reused), ("inproc", local))}
    with capsys.disabled():
        print(f"\nisolation overhead (noop method, digits): in-process {med['inproc'] * 1e3:.1f} ms, "
              f"reused worker {med['reused'] * 1e3:.1f} ms, fresh worker {med['fresh'] * 1e3:.1f} ms per run")
    # Loose on purpose (shared CI machines): a process start per run with 'spawn' would cost seconds.
    assert med["reused"] - med["inproc"] < 1.0
    assert med["fresh"] < 5.0
