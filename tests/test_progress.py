"""The run's progress estimate: per kind of work, a lower bound while a kind is untimed, nothing before any."""

from __future__ import annotations

from types import SimpleNamespace

from harness.pipeline.progress import MODEL, PREPARE, RUN, Estimate, Progress, clock, job_units


def _job(kind: str, runs: int = 0, indices: tuple = ()):
    return SimpleNamespace(kind=kind, runs=tuple(range(runs)), indices=indices)


def test_units_per_job_kind():
    assert job_units(_job("oracle")) == (MODEL, 1)
    assert job_units(_job("shadow-original", indices=(0, 1, 2))) == (MODEL, 3)  # a batched job trains three
    assert job_units(_job("prepare")) == (PREPARE, 1) == job_units(_job("audit"))
    assert job_units(_job("runs", runs=7)) == (RUN, 7)


def test_estimate_is_a_sum_per_kind_and_a_lower_bound_until_every_kind_is_timed():
    progress = Progress(enabled=False)
    progress.plan([_job("original"), _job("oracle"), _job("oracle"), _job("prepare"), _job("runs", runs=10)])
    e = progress.estimate
    assert e.remaining() == (None, [MODEL, PREPARE, RUN])
    assert e.postfix() == "ETA after the first model"  # nothing measured: no promise at all
    progress.finished(MODEL, 1, seconds=30.0)
    assert e.remaining() == (60.0, [PREPARE, RUN])  # two models left at 30 s; prepare and runs unknown
    assert e.postfix() == "ETA ≥ 1:00 (prepare, run not timed yet)"
    progress.skip(MODEL)  # stored: costs nothing and is not timed
    progress.finished(MODEL, 1, seconds=10.0)
    progress.finished(PREPARE, 1, seconds=5.0)
    progress.finished(RUN, 2, seconds=4.0)
    assert e.remaining() == (16.0, []) and e.postfix() == "ETA 0:16"  # 8 runs at 2 s
    assert e.phase() == RUN


def test_no_zero_promise_when_only_untimed_work_is_left():
    progress = Progress(enabled=False)
    progress.plan([_job("original"), _job("prepare")])
    progress.finished(MODEL, 1, seconds=3.0)
    assert progress.estimate.postfix() == "ETA after the first prepare"


def test_workers_divide_the_work_and_the_clock_reads_hours():
    e = Estimate(workers=4)
    e.total[MODEL], e.done[MODEL], e.seconds[MODEL] = 9, 1, 40.0
    assert e.remaining() == (80.0, [])
    assert clock(7322) == "2:02:02" and clock(75) == "1:15"
