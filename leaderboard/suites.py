"""``--suite`` for the leaderboard and ``compare``: a suite name, or the path of a suite file.

Results live under ``<results>/<suite name>/``; a suite file names its suite (its ``name``, or the one it
inherits through ``extends``), so a path is loaded for that name (and kept: the integrity checks verify the
rows against that very file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SuiteRef:
    name: str
    path: str | None = None  # the suite file, when one was named


def resolve_suite(arg: str | None) -> SuiteRef | None:
    """A suite name stays a name; ``*.toml`` (an existing file) is loaded (and validated) for its name."""
    if arg is None:
        return None
    path = Path(arg)
    if path.suffix != ".toml":
        return SuiteRef(arg)
    if not path.is_file():
        raise FileNotFoundError(f"suite file {arg} does not exist")
    from harness.protocol.suite import load_suite  # SuiteError is a ValueError: the CLI prints it

    return SuiteRef(load_suite(str(path)).name, str(path))

