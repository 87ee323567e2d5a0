"""Command line: ``unlearn-bench run | suites | methods | leaderboard | compare | tune | verify | try | doctor``.

Why one module: it is the one argparse tree and the one dispatch table; each command's work lives in the module
it calls (pipeline, leaderboard, commands/*), imported only when that command runs, so ``unlearn-bench --help``
and the leaderboard do not load torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from harness.core.registry import load_extension_file
from harness.protocol.methods import PluginError

DEFAULT_SUITE = "fmnist-quick"
BOARD_FORMATS = ("summary", "markdown", "json", "latex", "csv")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _int_csv(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got {text!r}") from exc
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def _positive(kind: type, flag: str, what: str):
    """An argparse type accepting finite numbers > 0 of ``kind``; the error names the flag."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} must be a positive {what}, got {text!r}")
        return value

    return parse


_seconds = _positive(float, "--timeout", "number of seconds")
_positive_int = _positive(int, "--jobs", "integer")
_positive_threads = _positive(int, "--threads", "integer")


def _jobs(text: str) -> int | str:
    """``--jobs N`` or ``--jobs auto`` (resolved against the cores once --threads is known)."""
    return "auto" if text.strip() == "auto" else _positive_int(text)


def resolve_jobs(jobs: int | str, threads: int) -> int:
    """``auto``: as many workers as this process may use cores, each with ``threads`` threads."""
    if jobs != "auto":
        return int(jobs)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn-bench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run methods on a suite and store one Parquet row per run")
    run.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite name or .toml path (default {DEFAULT_SUITE})")
    run.add_argument("--methods", type=_csv, default=[], help="comma-separated method names (default: all)")
    run.add_argument("--seeds", type=_int_csv, default=[], help="comma-separated seeds (default: the suite's)")
    run.add_argument("--scenarios", type=_csv, default=[], help="comma-separated scenarios (default: the suite's)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.NAME=VALUE",
                     help="override a hyper-parameter (repeatable)")
    run.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE.py",
                     help="load methods from a Python file (repeatable)")
    _add_evaluator_plugin(run)
    run.add_argument("--results", type=Path, default=Path("results"), help="results folder (default ./results)")
    run.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default ~/.cache/unlearn-bench)")
    run.add_argument("--data-root", default=None, help="folder with the dataset files")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    run.add_argument("--force", action="store_true", help="rerun runs whose rows exist")
    run.add_argument("--no-references", action="store_true",
                     help="do not add the original and retrain rows --methods leaves out (verdicts need them)")
    run.add_argument("--retry-failed", action="store_true", help="rerun runs whose stored status is not ok")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--jobs", type=_jobs, default=1, metavar="N|auto",
                     help="run jobs in N local worker processes; auto: one per core / --threads (default 1: in-process)")
    run.add_argument("--threads", type=_positive_threads, default=1, metavar="T",
                     help="torch threads per worker, the same in every mode so rows do not depend on --jobs (default 1)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local (in-process, or a process pool with --jobs) or ray (default local)")
    run.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="Ray cluster to join, e.g. ray://head:10001 or auto (default: start a local one)")
    run.add_argument("--timeout", type=_seconds, default=None,
                     help="wall-clock seconds per method run (default: the suite's [run] timeout)")
    run.add_argument("--no-isolation", action="store_true",
                     help="run methods in this process (for debugging: no timeout, no crash protection)")

    sub.add_parser("suites", help="list the built-in suites")

    methods = sub.add_parser("methods", help="list registered methods and their hyper-parameters")
    methods.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE.py")
    methods.add_argument("--suite", default=None, help="also show this suite's hyper-parameter overrides")

    tune = sub.add_parser("tune", help="tune methods with the same trial budget on a validation setting "
                          "(docs/tuning.md)")
    tune.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite name or .toml path (default {DEFAULT_SUITE})")
    tune.add_argument("--methods", type=_csv, default=[],
                      help="comma-separated methods (default: every non-reference method, plugins included)")
    tune.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE.py",
                      help="load methods from a Python file (repeatable)")
    tune.add_argument("--budget", type=_positive(int, "--budget", "integer"), default=16, metavar="N",
                      help="trials per (method, scenario kind), the same for every method (default 16)")
    tune.add_argument("--seeds", type=_int_csv, default=[],
                      help="validation seeds, disjoint from the suite's (default: 1000,1001,1002)")
    tune.add_argument("--kinds", type=_csv, default=[], help="scenario kinds to tune (default: the suite's)")
    tune.add_argument("--classes", type=_positive(int, "--classes", "integer"), default=None, metavar="N",
                      help="validation forget classes per class scenario (default 2)")
    tune.add_argument("--out", type=Path, default=Path("tuning"),
                      help="folder for the tuned hparams file, a copy of the suite file, the trial logs and the "
                           "validation runs (default ./tuning)")
    tune.add_argument("--write", action="store_true",
                      help="also update the hparams file beside the suite file (and its <suite>.tuning/ logs)")
    tune.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default <out>/cache)")
    tune.add_argument("--data-root", default=None, help="folder with the dataset files")
    tune.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    tune.add_argument("--timeout", type=_seconds, default=None,
                      help="wall-clock seconds per method run (default: the suite's [run] timeout)")
    tune.add_argument("--no-isolation", action="store_true", help="run methods in this process (faster, unprotected)")
    tune.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")

    board = sub.add_parser("leaderboard", help="render the leaderboard from stored results")
    board.add_argument("--suite", default=None,
                       help="one suite, by name or suite-file path (default: every suite with results)")
    board.add_argument("--results", type=Path, default=Path("results"))
    _add_evaluator_plugin(board)
    board.add_argument("--out", type=Path, default=Path("site"), help="output folder (default ./site)")
    board.add_argument("--rank-by", "--sort", dest="rank_by", default="pareto", metavar="pareto|METRIC",
                       help="pareto (default): Pareto fronts over (utility, privacy), each judged against the "
                            "retrain floor; or a metric to rank by as before, e.g. avg_gap (--sort is an alias)")
    board.add_argument("--quiet", action="store_true", help="write files without printing the summary")
    output = board.add_mutually_exclusive_group()
    output.add_argument("--format", dest="format", default="summary", choices=BOARD_FORMATS,
                        help="what to print: the summary (default), the full Markdown, JSON, LaTeX (booktabs, a "
                             "table per scenario; also written to <out>/<suite>.tex) or CSV (a row per entry and "
                             "scenario; also <out>/<suite>.csv)")
    output.add_argument("--markdown", dest="format", action="store_const", const="markdown",
                        help="print the full Markdown (= --format markdown)")
    output.add_argument("--json", dest="format", action="store_const", const="json",
                        help="print the leaderboard as JSON (entries, both axes, verdicts, ranks, agreement)")
    board.add_argument("--figures", type=Path, default=None, metavar="DIR",
                       help="also write every plot of the HTML page to DIR as PNG and PDF")
    board.add_argument("--no-cache", action="store_true",
                       help="render afresh even when no result, code or option changed since the last render")
    board.add_argument("--verified-only", action="store_true",
                       help="leave out rows that fail the integrity checks (default: show them, unranked)")
    board.add_argument("--data-root", default=None, help="folder with the dataset files (for the integrity checks)")

    compare = sub.add_parser("compare", help="paired statistics of two methods (A - B): over seeds, or over "
                             "shadow models for per-method metrics")
    compare.add_argument("a", help="method, or method@hash when it has several configurations")
    compare.add_argument("b", help="method, or method@hash")
    compare.add_argument("--suite", default=None,
                         help="suite name or suite-file path (default: the only suite under --results)")
    compare.add_argument("--results", type=Path, default=Path("results"))
    compare.add_argument("--metric", type=_csv, default=[], help="comma-separated metrics (default: all)")
    compare.add_argument("--scenario", type=_csv, default=[], help="comma-separated scenarios (default: all)")
    compare.add_argument("--json", action="store_true", help="print JSON for scripts")
    compare.add_argument("--data-root", default=None, help="folder with the dataset files (for the integrity checks)")
    _add_verify(sub)
    _add_try(sub)
    doctor = sub.add_parser("doctor", help="check data roots, the sandbox, cgroups, GPUs and the cache, and say what "
                            "to fix")
    doctor.add_argument("--suite", default=None, help="check this suite's data (default: every built-in suite)")
    doctor.add_argument("--data-root", default=None, help="folder with the dataset files")
    doctor.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default ~/.cache/unlearn-bench)")
    doctor.add_argument("--results", type=Path, default=Path("results"), help="results folder (default ./results)")
    return parser


def _add_evaluator_plugin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--evaluator-plugin", dest="evaluator_plugins", action="append", default=[], metavar="FILE.py",
                        help="load your own evaluators (or dataset loaders, model builders) from a Python file, run "
                             "in this process, unsandboxed: your code, not a submission (repeatable)")


def _add_try(sub) -> None:
    """``unlearn-bench try``: a method author's quick look at one seed (harness/commands/quick.py); never a leaderboard row."""
    quick = sub.add_parser("try", help="run a plugin method on one seed with the cheap evaluators and print it next "
                           "to the stored floor, original and best baseline (seconds; not a leaderboard result)")
    quick.add_argument("plugins", nargs="+", type=Path, metavar="FILE.py", help="the plugin file(s)")
    quick.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite name or .toml path (default {DEFAULT_SUITE})")
    quick.add_argument("--methods", type=_csv, default=[], help="methods to try (default: all the plugins register)")
    _add_evaluator_plugin(quick)
    quick.add_argument("--seed", type=_non_negative, default=None, help="the seed (default: the suite's first)")
    quick.add_argument("--results", type=Path, default=Path("results"),
                       help="where the stored rows to compare with are (default ./results; never written)")
    quick.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default ~/.cache/unlearn-bench)")
    quick.add_argument("--keep", type=Path, default=None, metavar="DIR",
                       help="keep the quick rows in DIR (default: a temporary folder, removed)")
    quick.add_argument("--isolate", action="store_true", help="run the method sandboxed, as the leaderboard does")
    quick.add_argument("--data-root", default=None, help="folder with the dataset files")


def _add_verify(sub) -> None:
    """``unlearn-bench verify``: re-run stored rows and check they reproduce (harness/commands/verify.py)."""
    verify = sub.add_parser("verify", help="re-run a sample of stored rows from their provenance and check that "
                            "they reproduce (docs/submission.md)")
    verify.add_argument("source", type=Path, help="a results folder, one suite's results folder, or a Parquet file")
    verify.add_argument("--sample", type=_non_negative, default=5, metavar="N",
                        help="re-run N ok rows drawn at random with --seed (0: every ok row; default 5)")
    verify.add_argument("--run-ids", type=_csv, default=[], metavar="ID,...",
                        help="re-run exactly these rows instead of a sample")
    verify.add_argument("--seed", type=_non_negative, default=0, help="seed of the sample (default 0)")
    verify.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE.py",
                        help="load methods from a Python file (repeatable): the plugin the rows were run with")
    _add_evaluator_plugin(verify)
    verify.add_argument("--results", type=Path, default=None,
                        help="records go to <results>/<suite>/_verifications/ (default: the source's results "
                             "folder; ./results for a Parquet file)")
    verify.add_argument("--scratch", type=Path, default=None,
                        help="keep the re-run rows and recomputed artifacts here (default: a temporary folder)")
    verify.add_argument("--cache-dir", type=Path, default=None,
                        help="trained originals, oracles and shadow models are reused from here by key "
                             "(default ~/.cache/unlearn-bench)")
    verify.add_argument("--data-root", default=None, help="folder with the dataset files")
    verify.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    verify.add_argument("--threads", type=_positive_threads, default=None, metavar="T",
                        help="torch threads for the re-runs (default: the count each row records)")
    verify.add_argument("--timeout", type=_seconds, default=None, help="wall-clock seconds per method run")
    verify.add_argument("--no-isolation", action="store_true", help="run methods in this process")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit status 0 when every re-run row matched, 1 when one differed or could not be re-run."""
    from harness.commands.verify import MATCH, Settings, verify
    from harness.core.results import VERIFICATIONS_DIR

    settings = Settings(plugins=args.plugins, evaluator_plugins=args.evaluator_plugins, cache_dir=args.cache_dir, data_root=args.data_root,
                        device=args.device, threads=args.threads, isolate=not args.no_isolation,
                        timeout=args.timeout)
    outcomes, root = verify(args.source, settings, args.sample, args.run_ids, args.seed, args.results, args.scratch)
    for outcome in outcomes:
        print(outcome.line())
    matched = sum(o.outcome == MATCH for o in outcomes)
    print(f"{matched} of {len(outcomes)} re-run rows match; records in {root}/<suite>/{VERIFICATIONS_DIR}/")
    return 0 if matched == len(outcomes) else 1


def cmd_run(args: argparse.Namespace) -> int:
    from harness.pipeline.driver import RunOptions, run_suite
    from harness.protocol.hparams import parse_set_options
    from harness.protocol.suite import load_suite

    suite = load_suite(args.suite)
    options = RunOptions(methods=args.methods, seeds=args.seeds, scenarios=args.scenarios,
                         results_root=args.results, cache_dir=args.cache_dir, device=args.device, force=args.force,
                         retry_failed=args.retry_failed, overrides=parse_set_options(args.overrides),
                         plugins=args.plugins, evaluator_plugins=args.evaluator_plugins,
                         progress=not args.no_progress, data_root=args.data_root,
                         isolate=not args.no_isolation, timeout=args.timeout,
                         jobs=resolve_jobs(args.jobs, args.threads), threads=args.threads, executor=args.executor,
                         ray_address=args.ray_address, references=not args.no_references)
    if args.no_references:
        print("unlearn-bench: warning: --no-references: without stored original and retrain rows for each "
              "(scenario, seed) the leaderboard has no floor to test entries against", file=sys.stderr)
    start = time.perf_counter()
    summary = run_suite(suite, options)
    elapsed = time.perf_counter() - start
    print(f"{suite.name}: {summary.written} runs written ({summary.failed} not ok), {summary.skipped} already stored; "
          f"cache {summary.cache_hits} hits / {summary.cache_misses} trained; "
          f"{summary.cache_recomputed_corrupt} corrupt recomputed; "
          f"{elapsed:.1f}s -> {args.results / suite.name}")
    return 0


def cmd_suites(_: argparse.Namespace) -> int:
    from harness.protocol.suite import load_suite, suite_files

    for name in suite_files():
        suite = load_suite(name)
        print(f"{name:18s} v{suite.version}  {suite.description}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from harness.isolation.plugins import load_plugins
    from harness.protocol.methods import all_methods

    _, failures = load_plugins(args.plugins)
    for failure in failures:
        print(f"! {failure.error}", file=sys.stderr)
    suite_hp: dict = {}
    if getattr(args, "suite", None):
        from harness.protocol.suite import load_suite

        suite_hp = load_suite(args.suite).hparams
    for name, spec in sorted(all_methods().items(), key=lambda kv: (kv[1].kind, kv[0])):
        retain = "retain" if spec.needs_retain else "no-retain"
        print(f"{name:18s} {spec.kind:9s} {'/'.join(spec.scenarios):13s} {retain:9s} {spec.summary}")
        if spec.hparams:
            print(" " * 19 + ", ".join(f"{k}={v!r}" for k, v in spec.hparams.items()))
        if spec.source:
            print(" " * 19 + f"source: {spec.source}")
        by_source: dict[str, list[str]] = {}
        for key, where in spec.hparam_sources.items():
            by_source.setdefault(where, []).append(key)
        for where, keys in by_source.items():
            print(" " * 19 + f"{', '.join(keys)}: {where}")
        if spec.search_space:
            from harness.protocol.search_space import describe

            print(" " * 19 + f"tune searches: {describe(spec.search_space)}")
        for line in _suite_settings(suite_hp, name, spec.scenarios):
            print(" " * 19 + f"suite {args.suite} {line}")
    return 0


def _suite_settings(suite_hp: dict, name: str, kinds: tuple[str, ...]) -> list[str]:
    """``sets: ...`` for [method] and ``random: ... (tuned, budget 16)`` per kind (harness/protocol/hparams.py)."""
    from harness.protocol.hparams import method_table, tuning_record

    lines = []
    both = method_table(suite_hp, name)
    if both:
        lines.append("sets: " + ", ".join(f"{k}={v!r}" for k, v in both.items()))
    for kind in kinds:
        values, record = method_table(suite_hp, name, kind), tuning_record(suite_hp, name, kind)
        if values:
            note = f" (tuned: budget {record.get('budget')}, validation avg_gap {record.get('objective')}" + (
                f", at a bound: {', '.join(record['at_bound'])}" if record.get("at_bound") else "") + ")" \
                if record else ""
            lines.append(f"{kind}: " + ", ".join(f"{k}={v!r}" for k, v in values.items()) + note)
    return lines


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from leaderboard.outputs import Request, leaderboard_texts, write_outputs

    request = Request(args.results, args.out, args.suite, args.rank_by, args.verified_only, args.data_root,
                      args.figures, use_cache=not args.no_cache)
    texts, _ = leaderboard_texts(request)
    write_outputs(request, texts, (args.format,))
    if args.format != "summary" or not args.quiet:
        print(texts[args.format], end="" if args.format in ("latex", "csv") else "\n")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from leaderboard.compare import compare_entries, to_json, to_text
    from leaderboard.render import load_rows
    from leaderboard.suites import resolve_suite

    suite = resolve_suite(args.suite)
    if suite is None:
        found = sorted(p.name for p in args.results.iterdir() if p.is_dir()) if args.results.is_dir() else []
        if len(found) != 1:
            raise ValueError(f"name a suite with --suite (results for: {', '.join(found) or 'none'})")
        suite = resolve_suite(found[0])
    frame = load_rows(args.results, suite)
    results = compare_entries(frame, args.a, args.b, args.metric, args.scenario, data_root=args.data_root,
                              results=args.results, suite_file=suite.path)
    print(to_json(results) if args.json else to_text(results))
    return 0


def cmd_try(args: argparse.Namespace) -> int:
    from harness.commands.quick import QuickRequest, run_quick
    from harness.protocol.suite import load_suite

    suite = load_suite(args.suite)
    if args.keep is not None and args.keep.resolve() == args.results.resolve():
        raise ValueError("--keep must not be the results folder: quick rows are never mixed into real results")
    request = QuickRequest(suite=suite, plugins=tuple(str(p) for p in args.plugins), methods=tuple(args.methods),
                           seed=suite.seeds[0] if args.seed is None else args.seed, results=args.results,
                           cache_dir=args.cache_dir, keep=args.keep, isolate=args.isolate, data_root=args.data_root)
    print(run_quick(request))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from harness.commands.tune.command import request_from_args, run_tune

    run_tune(request_from_args(args))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.commands.doctor import report, run_checks

    text, status = report(run_checks(args.suite, args.data_root, args.cache_dir, args.results, DEFAULT_SUITE))
    print(text)
    return status


COMMANDS = {"tune": cmd_tune, "run": cmd_run, "suites": cmd_suites, "methods": cmd_methods, "leaderboard": cmd_leaderboard,
            "compare": cmd_compare, "verify": cmd_verify, "try": cmd_try,
            "doctor": cmd_doctor}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        for path in getattr(args, "evaluator_plugins", ()):  # before any suite is read: it may name what they add
            load_extension_file(path)
        return COMMANDS[args.command](args)
    except (KeyError, ValueError, PluginError, FileNotFoundError) as exc:  # DatasetNotFound is a FileNotFoundError
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"unlearn-bench: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of our output went away (`unlearn-bench leaderboard | head`): not an error of ours; stdout
        # is pointed at /dev/null so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
