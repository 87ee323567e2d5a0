"""`unlearn-bench verify`: comparison rules, sample selection, the records the leaderboard reads, and re-runs
of genuine and edited rows (in-process on a custom suite; through the real CLI on digits-smoke)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.commands.verify import (
    ERROR,
    MATCH,
    MISMATCH,
    STEP_TOLERANCES,
    TOLERANCES,
    Settings,
    VerifyError,
    compare,
    recorded_threads,
    select_rows,
    verify,
)
from harness.core.results import row_hash
from leaderboard.rechecks import NOT_CHECKED, VERIFIED, recheck_status, record_path

ROOT = Path(__file__).resolve().parent.parent
META = json.dumps({"forget_acc": {"unit": "%"}, "kl_forget": {"unit": "nats"}, "tow": {"unit": "fraction"},
                   "ulira_n_shadows": {"unit": "count"}, "klom_forget_p50": {"unit": "nats"},
                   "klom_n_models": {"unit": "count"}})


def _row(**changes) -> dict:
    row = {"run_id": "r1", "suite": "s", "suite_hash": "h", "status": "ok", "method": "finetune", "seed": 0,
           "split_hash": "sp", "original_key": "o", "oracle_keys": '["a", "b"]', "noop": False,
           "forget_acc": 80.0, "gap_forget_acc": 2.0, "kl_forget": 0.3, "tow": 0.95, "ulira_n_shadows": 8.0,
           "klom_forget_p50": 2.5, "klom_n_models": 5.0,
           "wall_time_s": 3.0, "created_at": "2026-01-01", "metric_meta": META}
    row.update(changes)
    return row


# ----------------------------------------------------------------------------------------- comparison
def test_identical_rows_match_and_environment_columns_are_not_compared():
    stored, fresh = _row(), _row(wall_time_s=99.0, created_at="2027-01-01", hardware="gpu")
    differences, compared = compare(stored, fresh)
    # every column but wall time, date and metric_meta, plus the unit of each of metric_meta's 6 metrics
    assert differences == [] and compared == len(stored) - 3 + 6


@pytest.mark.parametrize("column, tolerance", [("forget_acc", TOLERANCES["%"]), ("gap_forget_acc", TOLERANCES["%"]),
                                               ("kl_forget", TOLERANCES["nats"]), ("tow", TOLERANCES["fraction"]),
                                               ("klom_forget_p50", STEP_TOLERANCES["klom_"])])
def test_metrics_match_within_their_tolerance_and_not_beyond(column, tolerance):
    inside = compare(_row(), _row(**{column: _row()[column] + 0.9 * tolerance}))[0]
    outside = compare(_row(), _row(**{column: _row()[column] + 1.5 * tolerance}))[0]
    assert inside == [] and [d["column"] for d in outside] == [column]
    assert outside[0]["tolerance"] == tolerance


@pytest.mark.parametrize("column, value", [("split_hash", "other"), ("original_key", "x"), ("suite_hash", "h2"),
                                           ("oracle_keys", '["a"]'), ("noop", True), ("status", "failed"),
                                           ("ulira_n_shadows", 8.0000001), ("klom_n_models", 5.1)])
def test_hashes_keys_and_counts_must_be_exact(column, value):
    differences = compare(_row(), _row(**{column: value}))[0]
    assert [d["column"] for d in differences] == [column]


def test_missing_values_and_missing_columns():
    assert compare(_row(kl_forget=float("nan")), _row(kl_forget=None))[0] == []  # NaN on both sides
    assert [d["column"] for d in compare(_row(kl_forget=float("nan")), _row())[0]] == ["kl_forget"]
    fresh = _row()
    del fresh["kl_forget"]  # a stored claim the re-run cannot reproduce
    assert [d["column"] for d in compare(_row(), fresh)[0]] == ["kl_forget"]
    stored = _row()
    del stored["tow"]  # a metric added to the harness after the row was made is no claim of the row
    assert compare(stored, _row())[0] == []


def test_metric_meta_is_compared_on_what_ranks_a_metric():
    flipped = json.loads(META)
    flipped["kl_forget"]["direction"] = "higher"
    differences = compare(_row(metric_meta=json.dumps(flipped)), _row())[0]
    assert [d["column"] for d in differences] == ["metric_meta.kl_forget.direction"]
    described = json.loads(META)
    described["kl_forget"]["description"] = "reworded in a later version"
    assert compare(_row(metric_meta=json.dumps(described)), _row())[0] == []


def test_recorded_threads_come_from_the_hardware_column():
    assert recorded_threads({"hardware": "cpu:x86_64x4threads"}) == 4
    assert recorded_threads({"hardware": "NVIDIA H100"}) == 1 and recorded_threads({}) == 1


# ------------------------------------------------------------------------------------------ selection
def test_sample_is_seeded_and_skips_rows_that_did_not_run():
    rows = [_row(run_id=f"r{i:02d}") for i in range(20)] + [_row(run_id="bad", status="failed")]
    first = select_rows(rows, 5, [], seed=3)
    assert [r["run_id"] for r in first] == [r["run_id"] for r in select_rows(rows, 5, [], seed=3)]
    assert len(first) == 5 and all(r["status"] == "ok" for r in first)
    assert {r["run_id"] for r in select_rows(rows, 5, [], seed=4)} != {r["run_id"] for r in first}
    assert len(select_rows(rows, 0, [])) == 20  # 0: every ok row
    assert [r["run_id"] for r in select_rows(rows, 5, ["bad", "r03"])] == ["bad", "r03"]
    with pytest.raises(VerifyError, match="no row with run_id nope"):
        select_rows(rows, 5, ["nope"])
    with pytest.raises(VerifyError, match="no result rows"):
        select_rows([], 5, [])


# ------------------------------------------------------------------------------- records and statuses
def _record(root: Path, suite: str, run_id: str, outcome: str, hashed: str) -> None:
    path = record_path(root, suite, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run_id, "row_hash": hashed, "outcome": outcome}))


def test_recheck_status_reads_records_for_the_exact_row(tmp_path):
    import pandas as pd

    frame = pd.DataFrame([{"suite": "s", "run_id": f"r{i}", "row_hash": f"h{i}"} for i in range(6)])
    _record(tmp_path, "s", "r0", "match", "h0")
    _record(tmp_path, "s", "r1", "mismatch", "h1")
    _record(tmp_path, "s", "r2", "match", "old")  # the row was rewritten after it was re-checked
    _record(tmp_path, "s", "r3", "error", "h3")  # the re-run could not happen
    record_path(tmp_path, "s", "r4").write_text("{not json")
    got = recheck_status(frame, tmp_path).tolist()
    assert got == [VERIFIED, "mismatch", NOT_CHECKED, NOT_CHECKED, NOT_CHECKED, NOT_CHECKED]


def test_the_status_reader_does_not_need_torch():
    code = "import sys, leaderboard.rechecks; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------ re-runs
def _rewrite(path: Path, **changes) -> None:
    """Edit a stored row and give it a fresh, valid row hash (only a re-run can tell)."""
    row = pq.read_table(path).to_pylist()[0]
    row.update(changes)
    row["row_hash"] = row_hash(row)
    pq.write_table(pa.Table.from_pylist([row]), path)


def test_verify_in_process_on_a_custom_suite(tmp_path):
    """A suite that is not built in is re-derived from the definition stored in its rows; an edited metric,
    an edited suite definition and an unregistered method are each reported."""
    from harness.pipeline.driver import RunOptions, run_suite
    from harness.protocol.suite import load_suite

    text = (ROOT / "harness" / "suites" / "digits-smoke.toml").read_text()
    text = text.replace('name = "digits-smoke"', 'name = "verify-digits"').replace("epochs = 15", "epochs = 3")
    text = text.replace('evaluators = ["accuracy", "salun_mia", "distribution", "rmia", "ulira", "mia_nn", "klom", '
                        '"consistency"]', 'evaluators = ["accuracy", "distribution"]')
    assert 'evaluators = ["accuracy", "distribution"]' in text
    (tmp_path / "verify-digits.toml").write_text(text)
    suite = load_suite(str(tmp_path / "verify-digits.toml"))
    results, cache = tmp_path / "results", tmp_path / "cache"
    summary = run_suite(suite, RunOptions(methods=["original", "finetune"], seeds=[0], scenarios=["random-10"],
                                          overrides={"finetune": {"epochs": 1}}, results_root=results,
                                          cache_dir=cache, progress=False))
    rows = {r["method"]: r for r in summary.rows}
    ids = {method: row["run_id"] for method, row in rows.items()}
    folder = results / "verify-digits"
    settings = Settings(cache_dir=cache, isolate=False)
    outcomes, root = verify(folder, settings, sample=0)
    assert root == results and [o.outcome for o in outcomes] == [MATCH, MATCH]

    _rewrite(folder / f"{ids['finetune']}.parquet", forget_acc=rows["finetune"]["forget_acc"] + 5.0)
    stored = pq.read_table(folder / f"{ids['original']}.parquet").to_pylist()[0]
    _rewrite(folder / f"{ids['original']}.parquet",
             suite_definition=stored["suite_definition"].replace("epochs = 3", "epochs = 4"))
    outcomes, _ = verify(folder, settings, sample=0)
    by_method = {o.row["method"]: o for o in outcomes}
    assert by_method["finetune"].outcome == MISMATCH
    assert [d["column"] for d in by_method["finetune"].differences] == ["forget_acc"]
    changed = {d["column"] for d in by_method["original"].differences}
    assert by_method["original"].outcome == MISMATCH and {"suite_hash", "original_key"} <= changed
    statuses = recheck_status(_frame(folder), results)
    assert sorted(statuses) == ["mismatch", "mismatch"]

    _rewrite(folder / f"{ids['finetune']}.parquet", method="not-registered")
    (outcome,) = verify(folder, settings, run_ids=[ids["finetune"]])[0]
    assert outcome.outcome == ERROR and "unknown method 'not-registered'" in outcome.reason


def _frame(folder: Path):
    import pandas as pd

    return pd.DataFrame([pq.read_table(p).to_pylist()[0] for p in sorted(folder.glob("*.parquet"))])


@pytest.mark.slow
def test_verify_cli_reports_the_genuine_row_as_match_and_the_edited_row_as_mismatch(tmp_path):
    """From nothing: run two digits-smoke rows through the real CLI, edit one (with a valid row hash), verify
    the folder: one match, one mismatch naming the edited metric, exit status 1, records for the leaderboard."""
    results, cache = tmp_path / "results", tmp_path / "cache"
    run = [sys.executable, "-m", "harness.commands.cli", "run", "--suite", "digits-smoke", "--seeds", "0",
           "--scenarios", "random-10", "--methods", "original,finetune", "--no-references", "--set", "finetune.epochs=1",
           "--results", str(results), "--cache-dir", str(cache), "--no-progress"]
    proc = subprocess.run(run, check=False, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    folder = results / "digits-smoke"
    files = {pq.read_table(p).to_pylist()[0]["method"]: p for p in folder.glob("*.parquet")}
    edited = pq.read_table(files["finetune"]).to_pylist()[0]
    _rewrite(files["finetune"], retain_acc=edited["retain_acc"] - 2.0)
    check = [sys.executable, "-m", "harness.commands.cli", "verify", str(results), "--sample", "0",
             "--cache-dir", str(cache)]
    proc = subprocess.run(check, check=False, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {line.split()[1]: line for line in proc.stdout.splitlines() if line.count(" ") > 3}
    assert ": match" in lines["original"], proc.stdout
    assert ": mismatch" in lines["finetune"] and "retain_acc" in lines["finetune"], proc.stdout
    assert "1 of 2 re-run rows match" in proc.stdout
    assert sorted(recheck_status(_frame(folder), results)) == ["mismatch", "verified"]
    board = [sys.executable, "-m", "harness.commands.cli", "leaderboard", "--results", str(results), "--suite",
             "digits-smoke", "--out", str(tmp_path / "site"), "--quiet"]
    proc = subprocess.run(board, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "site" / "digits-smoke.md").read_text()
    assert "finetune: 1 mismatch of 1 rows" in page and "original: 1 verified of 1 rows" in page
