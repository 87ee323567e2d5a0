"""The artifact cache: hits, misses, checksum-detected corruption, and two concurrent processes."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import torch

from harness.training.cache import ArtifactCache, cache_key


def test_hit_and_miss(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []
    compute = lambda: calls.append(1) or {"w": torch.ones(3)}
    key = cache_key(a=1)
    first = cache.get_or_compute("oracle", key, compute)
    second = cache.get_or_compute("oracle", key, compute)
    assert torch.equal(first["w"], second["w"]) and len(calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache_key(a=1) != cache_key(a=2)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_bit_flip_and_truncation_are_recomputed(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = cache_key(b=1)
    cache.get_or_compute("oracle", key, lambda: {"w": torch.arange(100.0)})
    payload, _ = cache.paths("oracle", key)
    _flip_byte(payload, len(payload.read_bytes()) // 2)
    calls = []
    value = cache.get_or_compute("oracle", key, lambda: calls.append(1) or {"w": torch.arange(100.0)})
    assert calls == [1] and cache.recomputed_corrupt == 1 and torch.equal(value["w"], torch.arange(100.0))
    payload.write_bytes(payload.read_bytes()[:50])
    cache.get_or_compute("oracle", key, lambda: calls.append(2) or {"w": torch.arange(100.0)})
    assert calls == [1, 2] and cache.recomputed_corrupt == 2
    # after recomputation the artifact loads cleanly again
    assert torch.equal(cache.load("oracle", key)["w"], torch.arange(100.0))


def test_payload_without_metadata_is_ignored(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = cache_key(c=1)
    payload, meta = cache.paths("oracle", key)
    payload.parent.mkdir(parents=True)
    payload.write_bytes(b"partial")
    assert not cache.exists("oracle", key)
    assert cache.get_or_compute("oracle", key, lambda: 7) == 7


def _worker(root: str, counter: str, barrier) -> None:
    import time

    cache = ArtifactCache(root)
    barrier.wait()

    def compute():
        with open(counter, "a") as handle:
            handle.write("x")
        time.sleep(0.5)  # a slow training: the other process must wait, not train too
        return {"w": torch.ones(2)}

    assert torch.equal(cache.get_or_compute("oracle", cache_key(d=1), compute)["w"], torch.ones(2))


def test_two_processes_compute_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    counter = tmp_path / "count"
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "c"), str(counter), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "x"
