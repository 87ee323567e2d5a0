"""Content-addressed artifact cache (originals, oracles, shadow models, adversarial sets).

Layout: ``<root>/<kind>/<key>.pt`` plus ``<key>.json`` holding the payload's sha256, size and key parts.
The JSON is written last, so an artifact without it is incomplete and ignored. Every load verifies the
checksum; a corrupt or truncated file is reported, removed and recomputed. A per-key file lock makes two
processes that need the same artifact compute it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from harness.core.files import atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_ENV = "UNLEARN_BENCH_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "unlearn-bench")


def cache_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of everything that determines an artifact."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class CorruptArtifact(RuntimeError):
    """A cached file failed its checksum or could not be decoded."""


class ArtifactCache:
    """Stores torch-serialisable objects by (kind, key)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.recomputed_corrupt = 0

    def paths(self, kind: str, key: str) -> tuple[Path, Path]:
        folder = self.root / kind
        return folder / f"{key}.pt", folder / f"{key}.json"

    def exists(self, kind: str, key: str) -> bool:
        return all(p.is_file() for p in self.paths(kind, key))

    def load(self, kind: str, key: str) -> Any:
        """Load and verify; raises KeyError when absent, CorruptArtifact when damaged."""
        payload_path, meta_path = self.paths(kind, key)
        if not meta_path.is_file() or not payload_path.is_file():
            raise KeyError(f"{kind}/{key}")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise CorruptArtifact(f"{meta_path}: unreadable metadata ({exc})") from exc
        data = payload_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != meta.get("size") or digest != meta.get("sha256"):
            raise CorruptArtifact(f"{payload_path}: checksum mismatch (size {len(data)} vs {meta.get('size')})")
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CorruptArtifact(f"{payload_path}: cannot be decoded ({exc})") from exc

    def save(self, kind: str, key: str, obj: Any, parts: dict | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getvalue()
        payload_path, meta_path = self.paths(kind, key)
        meta = {"kind": kind, "key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "parts": parts or {}}
        # Invalidate first so a crash between the two writes never pairs new metadata with an old payload.
        with contextlib.suppress(FileNotFoundError):
            meta_path.unlink()
        atomic_write_bytes(payload_path, data)
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1, default=str).encode())

    def discard(self, kind: str, key: str) -> None:
        for path in reversed(self.paths(kind, key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @contextlib.contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        lock_path = self.root / kind / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get_or_compute(self, kind: str, key: str, compute: Callable[[], Any], parts: dict | None = None,
                       tally: bool = True) -> Any:
        """Return the cached object, computing (once, under a lock) when missing or corrupt.

        ``tally=False`` for derived numbers (metrics of cached models): hits and misses count trained models."""
        with self.lock(kind, key):
            try:
                value = self.load(kind, key)
                self.hits += tally
                return value
            except KeyError:
                pass
            except CorruptArtifact as exc:
                log.warning("corrupt cache artifact, recomputing: %s", exc)
                self.recomputed_corrupt += 1
                self.discard(kind, key)
            value = compute()
            self.save(kind, key, value, parts)
            self.misses += tally  # counted once stored: a compute that raised trained nothing
            return value
