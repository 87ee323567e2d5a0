"""Command line: ``unlearn-bench run | suites | methods | leaderboard | compare``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from harness.data import DatasetNotFound
from harness.registry import PluginError

DEFAULT_SUITE = "fmnist-quick"


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
    run.add_argument("--results", type=Path, default=Path("results"), help="results folder (default ./results)")
    run.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default ~/.cache/unlearn-bench)")
    run.add_argument("--data-root", default=None, help="folder with the dataset files")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    run.add_argument("--force", action="store_true", help="rerun runs whose rows exist")
    run.add_argument("--retry-failed", action="store_true", help="rerun runs whose stored status is not ok")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                     help="run (scenario, seed) groups in N local worker processes (default 1: in-process)")
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

    board = sub.add_parser("leaderboard", help="render the leaderboard from stored results")
    board.add_argument("--suite", default=None, help="one suite (default: every suite with results)")
    board.add_argument("--results", type=Path, default=Path("results"))
    board.add_argument("--out", type=Path, default=Path("site"), help="output folder (default ./site)")
    board.add_argument("--sort", default="avg_gap", help="metric to rank by (default avg_gap)")
    board.add_argument("--quiet", action="store_true", help="write files without printing the table")
    board.add_argument("--verified-only", action="store_true",
                       help="leave out rows that fail the integrity checks (default: show them, unranked)")
    board.add_argument("--data-root", default=None, help="folder with the dataset files (for the integrity checks)")

    compare = sub.add_parser("compare", help="paired per-seed statistics of two methods (A - B)")
    compare.add_argument("a", help="method, or method@hash when it has several configurations")
    compare.add_argument("b", help="method, or method@hash")
    compare.add_argument("--suite", default=None, help="suite (default: the only suite under --results)")
    compare.add_argument("--results", type=Path, default=Path("results"))
    compare.add_argument("--metric", type=_csv, default=[], help="comma-separated metrics (default: all)")
    compare.add_argument("--scenario", type=_csv, default=[], help="comma-separated scenarios (default: all)")
    compare.add_argument("--json", action="store_true", help="print JSON for scripts")
    compare.add_argument("--data-root", default=None, help="folder with the dataset files (for the integrity checks)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from harness.hparams import parse_set_options
    from harness.runner import RunOptions, run_suite
    from harness.suite import load_suite

    suite = load_suite(args.suite)
    options = RunOptions(methods=args.methods, seeds=args.seeds, scenarios=args.scenarios,
                         results_root=args.results, cache_dir=args.cache_dir, device=args.device, force=args.force,
                         retry_failed=args.retry_failed, overrides=parse_set_options(args.overrides),
                         plugins=args.plugins, progress=not args.no_progress, data_root=args.data_root,
                         isolate=not args.no_isolation, timeout=args.timeout,
                         jobs=args.jobs, executor=args.executor, ray_address=args.ray_address)
    start = time.perf_counter()
    summary = run_suite(suite, options)
    elapsed = time.perf_counter() - start
    print(f"{suite.name}: {summary.written} runs written ({summary.failed} not ok), {summary.skipped} already stored; "
          f"cache {getattr(summary, 'cache_hits', 0)} hits / {getattr(summary, 'cache_misses', 0)} trained; "
          f"{getattr(summary, 'cache_recomputed_corrupt', 0)} corrupt recomputed; "
          f"{elapsed:.1f}s -> {args.results / suite.name}")
    return 0


def cmd_suites(_: argparse.Namespace) -> int:
    from harness.suite import load_suite, suite_files

    for name in suite_files():
        suite = load_suite(name)
        print(f"{name:18s} v{suite.version}  {suite.description}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from harness.plugins import load_plugins
    from harness.registry import all_methods

    _, failures = load_plugins(args.plugins)
    for failure in failures:
        print(f"! {failure.error}", file=sys.stderr)
    suite_hp: dict = {}
    if getattr(args, "suite", None):
        from harness.suite import load_suite

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
        if suite_hp.get(name):
            print(" " * 19 + f"suite {args.suite} sets: " + ", ".join(f"{k}={v!r}" for k, v in suite_hp[name].items()))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from leaderboard.render import render_leaderboards

    text = render_leaderboards(args.results, args.out, suite=args.suite, sort=args.sort,
                               verified_only=args.verified_only, data_root=args.data_root)
    if not args.quiet:
        print(text)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.results import read_results
    from leaderboard.compare import compare_entries, to_json, to_text

    suite = args.suite
    if suite is None:
        found = sorted(p.name for p in args.results.iterdir() if p.is_dir()) if args.results.is_dir() else []
        if len(found) != 1:
            raise ValueError(f"name a suite with --suite (results for: {', '.join(found) or 'none'})")
        suite = found[0]
    frame = read_results(args.results, suite)
    if frame.empty:
        raise FileNotFoundError(f"no results under {args.results / suite}")
    results = compare_entries(frame, args.a, args.b, args.metric, args.scenario, data_root=args.data_root)
    print(to_json(results) if args.json else to_text(results))
    return 0


COMMANDS = {"run": cmd_run, "suites": cmd_suites, "methods": cmd_methods, "leaderboard": cmd_leaderboard,
            "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (KeyError, ValueError, PluginError, DatasetNotFound, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"unlearn-bench: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
