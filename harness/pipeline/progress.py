"""The run's progress bar: every model to train, every ``prepare`` step and every run is counted, the phase is
named, and the time left is estimated per kind of work from what that kind has measurably cost so far.

A cold run spends most of its first minutes training models before the first row lands; a bar that counts rows
alone divides those minutes by one row and promises hours. Here each kind (``model``, ``prepare``, ``run``) has
its own mean duration, and the estimate is the sum over kinds of (units left x mean) divided by the workers.
While a kind with work left has not finished a unit yet, the estimate covers only the timed kinds and is shown as
a lower bound (``≥``) naming what is not timed; before anything is timed no estimate is shown at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MODEL, PREPARE, RUN = "model", "prepare", "run"
KINDS = (MODEL, PREPARE, RUN)  # the order work happens in: training first, a method's runs last
PHASE = {MODEL: "training models", PREPARE: "audit runs (prepare)", RUN: "runs"}
TRAINING_JOBS = ("original", "oracle", "shadow-original", "shadow-retrained")


def job_units(job) -> tuple[str, int]:
    """(kind, units) of a job of :mod:`harness.pipeline.graph`: a batched shadow job trains several models."""
    if job.kind in TRAINING_JOBS:
        return MODEL, max(len(job.indices), 1)
    if job.kind in ("audit", "prepare"):  # a part of a method's audit runs, or the evaluators on all of them
        return PREPARE, 1
    return RUN, len(job.runs)


def clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Estimate:
    """Units of work per kind, and what the finished ones cost (worker seconds)."""

    workers: int = 1
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    done: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))

    def left(self, kind: str) -> int:
        return max(self.total[kind] - self.done[kind] - self.skipped[kind], 0)

    def phase(self) -> str:
        """The first kind with work left (the graph runs training before prepare steps before runs)."""
        return next((k for k in KINDS if self.left(k)), RUN)

    def remaining(self) -> tuple[float | None, list[str]]:
        """(seconds left over the timed kinds, or None when nothing is timed; the kinds with work left that are
        not timed yet: the seconds are then a lower bound)."""
        untimed = [k for k in KINDS if self.left(k) and not self.done[k]]
        timed = [k for k in KINDS if self.done[k]]
        if not timed:
            return None, untimed
        work = sum(self.left(k) * self.seconds[k] / self.done[k] for k in timed)
        return work / max(self.workers, 1), untimed

    def postfix(self) -> str:
        seconds, untimed = self.remaining()
        if seconds is None or (untimed and seconds < 1):  # nothing measured covers the work left
            return f"ETA after the first {untimed[0] if untimed else RUN}"
        if untimed:
            return f"ETA ≥ {clock(seconds)} ({', '.join(untimed)} not timed yet)"
        return f"ETA {clock(seconds)}"


class Progress:
    """A tqdm bar over every unit of work (or nothing, when disabled); tqdm's own rate-based ETA is not shown."""

    BAR = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, enabled: bool, workers: int = 1):
        self.estimate = Estimate(workers=workers)
        self.enabled = enabled
        self.bar = None
        self.detail = ""
        self._mark = time.perf_counter()

    def plan(self, jobs: list) -> None:
        """Count the units of the job graph; call once, before any job runs."""
        for job in jobs:
            kind, units = job_units(job)
            self.estimate.total[kind] += units
        total = sum(self.estimate.total.values())
        if self.enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="unit", dynamic_ncols=True, leave=True, bar_format=self.BAR,
                            desc=self._desc(), postfix=self.estimate.postfix())
        self._mark = time.perf_counter()

    def skip(self, kind: str, units: int = 1) -> None:
        """Units that need no work (stored already, or taken by another process)."""
        self.estimate.skipped[kind] += units
        self._advance(units)

    def finished(self, kind: str, units: int, seconds: float | None = None, detail: str = "") -> None:
        """``units`` of ``kind`` done, costing ``seconds`` of one worker (None: the wall time since the previous
        event, which is what they cost when work runs one unit at a time in this process)."""
        now = time.perf_counter()
        self.estimate.done[kind] += units
        self.estimate.seconds[kind] += now - self._mark if seconds is None else seconds
        self._mark = now
        if detail:
            self.detail = detail
        self._advance(units)

    def _advance(self, units: int) -> None:
        if self.bar is not None:
            self._show(refresh=False)
            self.bar.update(units)

    def _show(self, refresh: bool = True) -> None:
        if self.bar is None:
            return
        self.bar.set_description_str(self._desc(), refresh=False)
        self.bar.set_postfix_str(self.estimate.postfix(), refresh=refresh)

    def _desc(self) -> str:
        """The phase, its units done of its total, and (in the runs phase) the last run finished."""
        e = self.estimate
        kind = e.phase()
        desc = f"{PHASE[kind]} {e.done[kind] + e.skipped[kind]}/{e.total[kind]}"
        return desc + (f" · {self.detail}" if kind == RUN and self.detail else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
