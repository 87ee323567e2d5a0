"""The results store: one Parquet file per run under ``<root>/<suite>/``, written atomically.

The folder is a Parquet dataset (pandas, pyarrow, DuckDB read it directly). Each row carries a content
hash of its own values (``row_hash``) so an edited file is detected when the leaderboard reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.files import atomic_write_bytes

SCHEMA_VERSION = 1
# Side folders beside the run rows (per-example attack tables, verification records). The leading "_" makes
# Parquet dataset readers (pandas/pyarrow on the folder) skip them, so reading results/<suite> gives runs only.
EXAMPLES_DIR = "_examples"
VERIFICATIONS_DIR = "_verifications"
STATUSES = ("ok", "failed", "timeout", "invalid", "skipped")


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else repr(value)
    if hasattr(value, "item"):
        return _canonical(value.item())
    return value


def row_hash(row: dict[str, Any]) -> str:
    """sha256 over every column except ``row_hash`` itself, in a canonical form."""
    body = {k: _canonical(v) for k, v in sorted(row.items()) if k != "row_hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]


class ResultsStore:
    """Rows of one suite; ``run_id`` names the file, so a run is stored at most once."""

    def __init__(self, root: str | Path, suite: str):
        self.folder = Path(root) / suite
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.parquet"

    def exists(self, run_id: str) -> bool:
        return self.path(run_id).is_file()

    def write(self, row: dict[str, Any]) -> Path:
        row = dict(row)
        row["schema_version"] = SCHEMA_VERSION
        row["row_hash"] = row_hash(row)
        table = pa.Table.from_pylist([row])
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        path = self.path(row["run_id"])
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @contextlib.contextmanager
    def claim(self, run_id: str) -> Iterator[bool]:
        """Try to claim a run for this process; yields False if another process is running it now."""
        lock_dir = self.folder / ".locks"
        lock_dir.mkdir(exist_ok=True)
        with open(lock_dir / f"{run_id}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_results(root: str | Path, suite: str | None = None, verify: bool = True) -> pd.DataFrame:
    """All rows (of one suite, or every suite) as a DataFrame; ``tampered`` is True where a row's hash fails.

    Files are read as Arrow tables and converted to pandas once, together (converting each one-row file alone
    cost most of the time of reading a results folder)."""
    root = Path(root)
    if suite:
        folders = [root / suite]
    else:
        folders = [p for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
    tables, tampered, unreadable = [], [], []
    for folder in folders:
        for path in sorted(folder.glob("*.parquet")):
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowInvalid) as exc:
                unreadable.append({"run_id": path.stem, "status": "unreadable", "error": str(exc)})
                continue
            if verify:  # per file, on the row as written (before other files' columns join it)
                tampered += [r.get("row_hash") != row_hash(r) for r in table.to_pylist()]
            tables.append(table)
    frames = []
    if tables:
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
        if verify:
            frame["tampered"] = tampered
        frames.append(frame)
    if unreadable:
        frames.append(pd.DataFrame(unreadable).assign(**({"tampered": True} if verify else {})))  # no hash to match
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def examples_path(results_root: str | Path, suite: str, name: str) -> Path:
    return Path(results_root) / suite / EXAMPLES_DIR / f"{name}.parquet"


def record_path(results_root: str | Path, suite: str, run_id: str) -> Path:
    """Where ``unlearn-bench verify`` keeps its record of re-running a row (the leaderboard reads it back)."""
    return Path(results_root) / suite / VERIFICATIONS_DIR / f"{run_id}.json"


def write_examples(results_root: str | Path, suite: str, name: str, frame: pd.DataFrame) -> Path:
    """A per-example table (e.g. ``ulira-<scenario>-<method>-<config>``) beside the run rows, written atomically."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    path = examples_path(results_root, suite, name)
    atomic_write_bytes(path, buffer.getvalue())
    return path
