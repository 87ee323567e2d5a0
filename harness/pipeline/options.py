"""How runs execute: one frozen base of options, which every path that runs methods extends.

:class:`Options` holds what all of them share -- the plugin files to load, the artifact cache, the data root, the
device, torch's thread count, and whether methods run isolated and under which limits. Each path adds its own:

* :class:`RunOptions`: what ``unlearn-bench run`` runs (methods, seeds, scenarios, results, executor);
* :class:`harness.pipeline.graph.JobEnv`: what a worker needs to rebuild the suite's world (absolute paths);
* :class:`harness.commands.verify.Settings`: how stored rows are re-run;
* :class:`harness.commands.tune.command.TuneRequest`: what ``unlearn-bench tune`` tunes;
* :class:`harness.commands.quick.QuickRequest`: what ``unlearn-bench try`` looks at.

One path starts another with :meth:`Options.shared` (verify and tune build RunOptions from their own options).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Options:
    """What every path that runs methods shares."""

    plugins: Sequence[str] = ()  # plugin files (--plugin); entry points are found by themselves
    # driver-side plugin files (--evaluator-plugin): the user's own evaluators, datasets, models; unsandboxed
    evaluator_plugins: Sequence[str] = ()
    cache_dir: Path | str | None = None  # the artifact cache; None: $UNLEARN_BENCH_CACHE or ~/.cache/unlearn-bench
    data_root: str | None = None  # the dataset files; None: the suite's root, then $UNLEARN_BENCH_DATA
    device: str = "auto"  # auto | cpu | cuda[:N]
    threads: int | None = 1  # torch intra-op threads, the same in every mode (results depend on it)
    isolate: bool = False  # run methods in sandboxed worker processes (harness/isolation/workers.py)
    timeout: float | None = None  # seconds per method run (isolated only); None: the suite's [run] timeout
    memory_mb: int | None = None  # an isolated worker's memory limit (isolation/limits.py); None: the suite's

    def shared(self) -> dict[str, Any]:
        """The shared fields, by name: to start another path with the same settings."""
        return {f.name: getattr(self, f.name) for f in fields(Options)}


@dataclass(frozen=True, kw_only=True)
class RunOptions(Options):
    """What to run; empty selections mean 'everything the suite declares'."""

    methods: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    results_root: Path = Path("results")
    force: bool = False
    retry_failed: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set method.key=value
    progress: bool = True
    jobs: int = 1  # > 1: a local process pool (harness/pipeline/executors.py)
    executor: str = "local"  # local | ray
    ray_address: str | None = None  # None: start (or join) a local Ray instance
    # also plan the reference rows (original, retrain) the selection lacks; the command line sets it unless
    # --no-references (library callers ask for exactly what they list)
    references: bool = False

    @property
    def job_processes(self) -> int:
        """How many job processes share one machine (their method workers share its memory): a local pool's
        size; 0 for Ray, which places up to one per CPU."""
        return 0 if self.executor == "ray" else max(int(self.jobs or 1), 1)
