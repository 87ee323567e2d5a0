"""The sequential scenario kind (``sequential-SxP``, docs/scenarios.md): the name, the requests and the per-step
splits (a known answer for the step-s oracle's training set), the chain of models (each step unlearns the previous
step's output), resume, tuning, and the kind through the real CLI on a tiny world (rows ok with a step column,
deterministic split hashes, rows pass verify, the leaderboard's per-step section)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.core.results import read_results
from harness.pipeline.driver import RunOptions, run_suite
from harness.pipeline.plan import plan_runs, select_methods
from harness.protocol.methods import METHODS, register_method
from harness.protocol.splits import make_split, parse_scenario, sequential_requests
from harness.protocol.suite import load_suite
from harness.training import reference_models
from harness.training.cache import ArtifactCache
from harness.training.difficulty import scenario_split
from harness.training.reference_models import get_oracle, model_key, oracle_key, oracle_seed
from harness.training.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "suites" / "sequential-digits.toml"
SCENARIO = "sequential-3x5"


def _workspace(cache_dir: Path) -> Workspace:
    suite = load_suite(str(SUITE))
    return Workspace(suite, suite.load_data(), ArtifactCache(cache_dir), torch.device("cpu"))


def test_the_name_parses_and_round_trips():
    scenario = parse_scenario("sequential-5x2")
    assert (scenario.kind, scenario.steps, scenario.value, scenario.family) == ("sequential", 5, 2.0, "random")
    assert scenario.name == "sequential-5x2" and parse_scenario("sequential-4x2.5").name == "sequential-4x2.5"
    for bad in ("sequential-0x5", "sequential-20x5", "sequential-5x0", "sequential-5"):
        with pytest.raises(ValueError, match="scenario"):
            parse_scenario(bad)


def test_the_step_s_oracle_trains_on_the_pool_minus_the_first_s_requests(tmp_path, monkeypatch):
    """Known answer: at step s the oracles' training set is exactly the pool without requests 1..s."""
    ws = _workspace(tmp_path)
    suite, data = ws.suite, ws.data
    scenario = parse_scenario(SCENARIO)
    pool = suite.original_positions(data, 0).numpy()
    requests = sequential_requests(suite.name, scenario, 0, pool)
    n_request = round(len(pool) * 5 / 100)
    assert [len(r) for r in requests] == [n_request] * 3
    assert len(np.unique(np.concatenate(requests))) == 3 * n_request  # disjoint
    assert set(np.concatenate(requests)) <= set(pool)
    trained: list[torch.Tensor] = []
    monkeypatch.setattr(reference_models, "train_model", lambda model, x, *a, **k: trained.append(x.clone()))
    for step in (1, 2, 3):
        split = scenario_split(ws, SCENARIO, 0, step=step)
        union = np.sort(np.concatenate(requests[:step]))
        expected = np.setdiff1d(pool, union)  # sorted
        assert split.step == step
        np.testing.assert_array_equal(split.forget.numpy(), union)
        np.testing.assert_array_equal(split.request.numpy(), requests[step - 1])
        np.testing.assert_array_equal(split.given.numpy(), requests[step - 1])
        np.testing.assert_array_equal(split.first.numpy(), requests[0])
        np.testing.assert_array_equal(split.retain.numpy(), expected)
        for k in range(suite.oracles):
            assert oracle_key(suite, data, split, k) == model_key(suite, data, "oracle", torch.as_tensor(expected),
                                                                  oracle_seed(split, k))
            trained.clear()
            get_oracle(ws, split, k)  # what the oracle job trains on: the spy sees the training images
            assert len(trained) == 1 and torch.equal(trained[0], data.train_x[torch.as_tensor(expected)])
    # the step-1 split of a one-step sequence is a random forget set of the same size
    assert len(scenario_split(ws, "sequential-1x5", 0, step=1).forget) == n_request


def test_split_hashes_are_pure_and_name_the_step(tmp_path):
    ws = _workspace(tmp_path)
    hashes = [scenario_split(ws, SCENARIO, 0, step=s).hash for s in (1, 2, 3)]
    assert hashes == [scenario_split(ws, SCENARIO, 0, step=s).hash for s in (1, 2, 3)]  # a pure function
    assert len(set(hashes)) == 3
    assert scenario_split(ws, SCENARIO, 1, step=1).hash != hashes[0]  # another seed, other requests
    data = ws.data
    with pytest.raises(ValueError, match="step"):
        make_split("x", parse_scenario(SCENARIO), 0, data.train_y, data.test_y)
    with pytest.raises(ValueError, match="step"):
        make_split("x", parse_scenario(SCENARIO), 0, data.train_y, data.test_y, step=4)
    with pytest.raises(ValueError, match="step"):
        make_split("x", parse_scenario("random-10"), 0, data.train_y, data.test_y, step=1)
    # the other kinds' hashes do not change: a random split carries no step
    assert ws.suite.split(data, "random-10", 0).step is None


def test_the_plan_has_a_run_per_step_with_the_random_kinds_settings(tmp_path):
    suite = dataclasses.replace(load_suite(str(SUITE)), hparams={"finetune": {"random": {"epochs": 2}}})
    options = RunOptions(methods=["finetune"], results_root=tmp_path, cache_dir=tmp_path, progress=False)
    plan = plan_runs(suite, options, select_methods(suite, ["finetune"]))
    assert [r.step for r in plan] == [1, 2, 3]
    assert len({r.run_id for r in plan}) == 3 and {r.hparams["epochs"] for r in plan} == {2}
    random = plan_runs(dataclasses.replace(suite, scenarios=("random-10",)), options, select_methods(suite, ["finetune"]))
    assert [r.step for r in random] == [None]


_SEEN: list[tuple[float, int, int]] = []  # (the input model's last bias sum, forget size, retain size) per call


@pytest.fixture
def seq_probe():
    """A method (registered for this test only) that records what it was given and returns the model with its
    last bias moved by 1 (a visible change)."""

    @register_method("seq-probe", scenarios=("random",), needs_retain=True)
    def probe(task):
        last = [m for m in task.model.modules() if isinstance(m, torch.nn.Linear)][-1]
        _SEEN.append((float(last.bias.detach().sum()), len(task.forget.y), len(task.retain.y)))
        with torch.no_grad():
            last.bias += 1.0
        return task.model

    yield "seq-probe"
    del METHODS["seq-probe"]


def test_each_step_unlearns_the_previous_steps_output_and_resumes(tmp_path, seq_probe):
    suite = dataclasses.replace(load_suite(str(SUITE)), evaluate={"evaluators": ["accuracy"]})
    options = RunOptions(methods=["seq-probe"], references=False, results_root=tmp_path / "r",
                         cache_dir=tmp_path / "c", isolate=False, progress=False, device="cpu")
    _SEEN.clear()
    first = run_suite(suite, options)
    assert first.written == 3 and first.failed == 0
    classes = 10
    b0, n_forget, n_retain = _SEEN[0]
    assert [round(b - b0, 4) for b, _, _ in _SEEN] == [0.0, classes, 2 * classes]  # step s starts from step s-1
    assert {f for _, f, _ in _SEEN} == {n_forget}  # request s only, not the union
    assert [r for _, _, r in _SEEN] == [n_retain, n_retain - n_forget, n_retain - 2 * n_forget]
    rows = read_results(tmp_path / "r", suite.name).sort_values("step")
    assert rows["step"].tolist() == [1, 2, 3] and (rows["scenario"] == SCENARIO).all()
    assert rows["forget_acc"].notna().all() and rows["first_forget_acc"].notna().all()
    assert rows["split_hash"].nunique() == 3 and rows["oracle_key"].nunique() == 3
    # resume: the step-2 row is lost; steps 1 and 2 run again (step 2's input), step 3 does not
    victim = rows[rows["step"] == 2]["run_id"].iloc[0]
    (tmp_path / "r" / suite.name / f"{victim}.parquet").unlink()
    before = rows.set_index("step")["forget_acc"]
    _SEEN.clear()
    again = run_suite(suite, options)
    assert again.written == 1 and again.skipped == 2 and len(_SEEN) == 2
    redone = read_results(tmp_path / "r", suite.name).set_index("step")["forget_acc"]
    assert redone[2] == before[2]


@pytest.fixture
def seq_crash():
    """A method (this test only) that fails on its second call: step 2 of its sequence."""
    calls = []

    @register_method("seq-crash", scenarios=("random",), needs_retain=False)
    def crash(task):
        calls.append(len(task.forget.y))
        if len(calls) == 2:
            raise RuntimeError("planted failure at step 2")
        return task.model

    yield "seq-crash"
    del METHODS["seq-crash"]


def test_a_failed_step_breaks_the_rest_of_its_sequence(tmp_path, seq_crash):
    suite = dataclasses.replace(load_suite(str(SUITE)), evaluate={"evaluators": ["accuracy"]})
    options = RunOptions(methods=[seq_crash], references=False, results_root=tmp_path / "r", cache_dir=tmp_path / "c",
                         isolate=False, progress=False, device="cpu")
    summary = run_suite(suite, options)
    rows = read_results(tmp_path / "r", suite.name).sort_values("step").set_index("step")
    assert summary.written == 3 and summary.failed == 2
    assert rows.loc[1, "status"] == "ok" and rows.loc[2, "status"] == "failed" and rows.loc[3, "status"] == "failed"
    assert "planted failure" in rows.loc[2, "error"] and "step 2" in rows.loc[3, "error"]


def test_tune_does_not_tune_the_sequential_kind(tmp_path):
    from harness.commands.tune.command import TuneRequest, run_tune

    lines: list[str] = []
    results = run_tune(TuneRequest(suite=str(SUITE), methods=["ssd"], budget=1, out=tmp_path / "t",
                                   cache_dir=tmp_path / "c", isolate=False), report=lines.append)
    assert results == [] and any("random kind's hyper-parameters" in line for line in lines)
    with pytest.raises(ValueError, match="random kind"):
        run_tune(TuneRequest(suite=str(SUITE), methods=["ssd"], budget=1, kinds=["sequential"], out=tmp_path / "t",
                             cache_dir=tmp_path / "c", isolate=False), report=lines.append)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.commands.cli", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
def test_sequential_runs_end_to_end_and_verifies(tmp_path):
    results, cache, site = tmp_path / "results", tmp_path / "cache", tmp_path / "site"
    start = time.perf_counter()
    proc = _cli("run", "--suite", str(SUITE), "--methods", "original,retrain,finetune", "--set", "finetune.epochs=1",
                "--results", str(results), "--cache-dir", str(cache), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"sequential-digits cold run: {time.perf_counter() - start:.1f} s")
    suite = load_suite(str(SUITE))
    rows = pd.read_parquet(results / suite.name)
    assert (rows["status"] == "ok").all(), rows[["method", "step", "error"]]
    assert len(rows) == 9 and sorted(rows.groupby("method")["step"].apply(sorted).tolist()) == [[1, 2, 3]] * 3
    # hidden in this kind: the shadow-bank evaluators (no U-LiRA or consistency column is written)
    assert not [c for c in rows.columns if c.startswith(("ulira", "consistency_p"))]
    ws = Workspace(suite, suite.load_data(), ArtifactCache(cache), torch.device("cpu"))
    for step, group in rows.groupby("step"):
        split = scenario_split(ws, SCENARIO, 0, step=int(step))
        assert set(group["split_hash"]) == {split.hash}
        assert set(group["oracle_key"]) == {oracle_key(suite, ws.data, split, 0)}
    step1 = rows[rows["step"] == 1]
    np.testing.assert_allclose(step1["first_forget_acc"], step1["forget_acc"])  # request 1 is the union at step 1
    np.testing.assert_allclose(step1["first_salun_mia"], step1["salun_mia"])
    check = _cli("verify", str(results), "--sample", "0", "--cache-dir", str(cache))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(rows)} of {len(rows)} re-run rows match" in check.stdout, check.stdout
    board = _cli("leaderboard", "--suite", str(SUITE), "--results", str(results), "--out", str(site), "--quiet")
    assert board.returncode == 0, board.stderr[-3000:]
    text = (site / f"{suite.name}.md").read_text()
    assert "## Sequential scenarios" in text and "| finetune |" in text and "slope" in text
    assert "plot-steps" in (site / "index.html").read_text()
    json_out = _cli("leaderboard", "--suite", str(SUITE), "--results", str(results), "--out", str(site), "--json")
    assert json_out.returncode == 0, json_out.stderr[-3000:]
    (view,) = json.loads(json_out.stdout)["suites"][0]["sequential"]
    entries = {e["entry"]: e for e in view["entries"]}
    assert view["steps"] == 3 and {"original", "finetune"} <= set(entries)
    assert all(len(e["gap_to_floor"]) == 3 for e in entries.values())
    # every row passes the leaderboard's integrity check (split hash and oracle keys recomputed per step)
    from leaderboard.render import build_boards

    (board_data,) = build_boards(results, str(SUITE))
    scenario_board = board_data.scenarios[0]
    assert scenario_board.table["verified"].all() and scenario_board.seeds == [0]
    assert (scenario_board.table["n"] == 1).all()  # the last step: one row per entry and seed
