"""Inputs are checked before any training: suite files, --set, scenarios, seeds, timeouts, plugin signatures.

Each error must name the file or flag, the field and what is allowed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.core.registry import Registry
from harness.protocol.methods import PluginError, register_method
from harness.protocol.suite import SuiteError, parse_suite

ROOT = Path(__file__).resolve().parent.parent
SMOKE = (ROOT / "harness" / "suites" / "digits-smoke.toml").read_text()


def _variant(old: str, new: str) -> str:
    assert old in SMOKE, old
    return SMOKE.replace(old, new)


@pytest.mark.parametrize("text, message", [
    (_variant("seeds = [0, 1]", "seeds = [0, -1]"), "seeds must be a non-empty list of distinct non-negative"),
    (_variant("seeds = [0, 1]", "seeds = [1, 1]"), "distinct non-negative integers, got [1, 1]"),
    (_variant("seeds = [0, 1]", "seeds = [true]"), "distinct non-negative integers"),
    (_variant("seeds = [0, 1]", "seeds = []"), "non-empty list"),
    (_variant("timeout = 120", "timeout = 0"), "timeout must be a positive number of seconds, got 0"),
    (_variant("timeout = 120", "timeout = 'soon'"), "timeout must be a positive number"),
    (_variant("timeout = 120", "timeout = 120\nmemory_mb = -5"), "memory_mb must be a positive integer"),
    (_variant("timeout = 120", "timeout = 120\nunlearn_augment = 'rotate'"),
     "unlearn_augment must be one of none, crop, crop-flip, got 'rotate'"),
    (_variant("timeout = 120", "timeout = 120\nmethods = 'finetune'"), "methods must be a list of method names"),
    (_variant("timeout = 120", "timout = 120"), "[run]: unknown field 'timout'; did you mean 'timeout'?"),
    (_variant('"random-10", "class-3"', '"random-10", "everything"'), "unknown scenario 'everything'"),
    (_variant('name = "mlp"', 'name = "mlpp"'), "unknown model 'mlpp'; did you mean 'mlp' or 'mlp-128'?"),
    (_variant('dataset = "digits"', 'dataset = "digits"\ntrain_subset = 0'), "train_subset must be a positive"),
    (_variant("epochs = 15", "epochs = 0"), "epochs, batch_size and lr must be positive"),
    (_variant("[run]", "[runn]"), "unknown field 'runn'"),
    (_variant("oracles = 2", "oracles = 0"), "oracles must be a positive integer"),
    ("name = ", "not valid TOML"),
])
def test_malformed_suites_name_file_field_and_allowed_values(text, message):
    with pytest.raises(SuiteError) as info:
        parse_suite(text, "bad.toml")
    assert str(info.value).startswith("bad.toml") and message in str(info.value), str(info.value)


def test_the_cli_rejects_a_malformed_suite_file_before_training(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(_variant("seeds = [0, 1]", "seeds = [0, 0]"))
    done = subprocess.run([sys.executable, "-m", "harness.commands.cli", "run", "--suite", str(bad), "--results",
                           str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "bad.toml [run]: seeds must be a non-empty list of distinct non-negative integers" in done.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "r" / "digits-smoke").exists()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "-1"], "seeds must be distinct non-negative integers, got '-1'"),
    (["--seeds", "0,0"], "seeds must be distinct non-negative integers, got '0,0'"),
    (["--seeds", "zero"], "seeds must be integers separated by commas"),
    (["--timeout", "0"], "--timeout must be a positive number of seconds"),
    (["--timeout", "nan"], "--timeout must be a positive number of seconds"),
])
def test_bad_flags_are_usage_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["run", "--suite", "digits-smoke", "--results", str(tmp_path), *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--scenarios", "random-10,forget-all"], "unknown scenario 'forget-all': expected 'random-P' (0<P<100) or 'class-K'"),
    (["--scenarios", "random-100"], "percent must be in (0, 100)"),
    (["--methods", "finetun"], "unknown method 'finetun'; did you mean 'finetune'"),
    (["--methods", "finetune", "--set", "finetune.lrr=0.1"], "'finetune' has no hyper-parameter 'lrr'; did you mean 'lr'"),
    (["--methods", "finetune", "--set", "finetune.epochs=many"], "finetune.epochs: cannot use 'many' as a int"),
    (["--methods", "finetune", "--set", "finetune.epochs=2.5"], "cannot use '2.5' as a int"),
    (["--methods", "finetune", "--set", "original.lr=1"], "--set names method 'original', which is not selected"),
    (["--methods", "finetune", "--set", "lr=0.1"], "expected METHOD.NAME=VALUE"),
    (["--suite", "digits-smok"], "unknown suite 'digits-smok'; did you mean 'digits-smoke'"),
])
def test_bad_selections_fail_before_any_training(tmp_path, capsys, args, message):
    argv = ["run", "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-references", *args]
    if "--suite" not in args:
        argv += ["--suite", "digits-smoke"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing was trained or cached


def test_a_seed_the_suite_lacks_is_allowed(tmp_path):
    from harness.pipeline.driver import RunOptions, plan_runs, select_methods
    from harness.protocol.suite import load_suite

    suite = load_suite("digits-smoke")
    options = RunOptions(methods=["original"], seeds=[7], results_root=tmp_path)
    plan = plan_runs(suite, options, select_methods(suite, options.methods))
    assert {run.seed for run in plan} == {7}


@pytest.mark.parametrize("define, message", [
    ("def m(task, lr=0.1): ...", "hyper-parameter 'lr' must be keyword-only"),
    ("def m(task, *, lr): ...", "hyper-parameter 'lr' needs a default value"),
    ("def m(*, lr=0.1): ...", "the first parameter must be the positional UnlearningTask"),
    ("def m(task, *, layers=[1, 2]): ...", "default must be bool/int/float/str/None"),
])
def test_plugin_signatures_are_checked_at_registration(define, message):
    namespace: dict = {}
    exec(define, namespace)  # noqa: S102 - a tiny function definition written by this test
    with pytest.raises(PluginError) as info:
        register_method("sig-check", registry=Registry("method"))(namespace["m"])
    assert message in str(info.value)


def test_a_plugin_file_that_fails_to_import_becomes_a_failed_row(tmp_path):
    from harness.core.results import read_results

    bad = tmp_path / "broken_plugin.py"
    bad.write_text("import not_a_real_module_xyz\n")
    suite = tmp_path / "fast.toml"  # accuracy only: this test is about the row, not the metrics
    suite.write_text(SMOKE.split("[evaluate]")[0] + '[evaluate]\nevaluators = ["accuracy"]\n')
    code = main(["run", "--suite", str(suite), "--methods", "original", "--no-references", "--seeds", "0", "--scenarios",
                 "random-10", "--plugin", str(bad), "--results", str(tmp_path / "r"), "--cache-dir",
                 str(tmp_path / "c"), "--no-progress", "--no-isolation"])
    assert code == 0
    rows = read_results(tmp_path / "r", "digits-smoke")
    failed = rows[rows["method"] == "plugin:broken_plugin"]
    assert failed["status"].tolist() == ["failed"]
    assert "ModuleNotFoundError" in failed["error"].iloc[0] and "broken_plugin.py" in failed["error"].iloc[0]
    assert rows[rows["method"] == "original"]["status"].tolist() == ["ok"]


@pytest.mark.parametrize("addition, message", [
    ("\n[evaluate.ulira]\nmin_cout = 2\n", "[evaluate.ulira]: unknown option 'min_cout'; did you mean 'min_count'?"),
    ("\n[evaluate.ulria]\nmin_count = 2\n", "unknown key 'ulria'; did you mean 'ulira'"),
    ("\n[evaluate.accuracy]\nfoo = 1\n", "'accuracy' takes no options"),
])
def test_misspelled_evaluator_options_fail_before_training(addition, message, tmp_path, capsys):
    suite = tmp_path / "mine.toml"
    suite.write_text(SMOKE + addition)
    code = main(["run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "mine.toml" in err and message in err, err
    assert not (tmp_path / "c").exists()  # nothing was trained


def test_unknown_evaluator_name_gets_did_you_mean(tmp_path, capsys):
    suite = tmp_path / "mine.toml"
    suite.write_text(SMOKE.replace('"rmia", "ulira"', '"rmia", "ulirra"'))
    code = main(["run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    assert code == 2 and "unknown evaluator 'ulirra'; did you mean 'ulira'?" in capsys.readouterr().err


def test_a_reader_that_stops_early_is_not_an_error():
    """`unlearn-bench methods | head -1`: the closed pipe ends the command quietly, without a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.commands.cli", "methods"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    _, err = proc.communicate(timeout=120)
    assert first and proc.returncode == 0, (proc.returncode, err.decode()[-2000:])
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()[-2000:]
