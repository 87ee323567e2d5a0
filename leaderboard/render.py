"""Render leaderboards from stored results: ``<out>/<suite>.md`` per suite and one ``<out>/index.html``."""

from __future__ import annotations

from pathlib import Path

from harness.core.files import atomic_write_bytes
from harness.core.registry import did_you_mean

QUICK_GRADE = "quick"  # harness.commands.quick.QUICK_GRADE (not imported: the leaderboard stays torch-free)
from harness.core.results import read_results
from leaderboard.board import SuiteBoard, build_suite_board
from leaderboard.html import render_html
from leaderboard.markdown import render_markdown
from leaderboard.suites import SuiteRef, resolve_suite


def load_rows(results: Path, suite: SuiteRef | None):
    """The rows of one suite (or of every suite); a clear error, with the suites that do have results, if none."""
    frame = read_results(results, suite.name if suite else None)
    if frame.empty or "suite" not in frame:
        have = sorted(p.name for p in Path(results).iterdir() if p.is_dir()) if Path(results).is_dir() else []
        where = f"{Path(results) / suite.name}" if suite else str(results)
        named = f" (suite file {suite.path} names suite {suite.name!r})" if suite and suite.path else ""
        hint = did_you_mean(suite.name, have) if suite and have else ""
        raise FileNotFoundError(f"no results under {where}{named}{hint}")
    if "grade" in frame:  # `unlearn-bench try` rows (harness/commands/quick.py): one seed, cheap evaluators, never ranked
        quick = frame["grade"].fillna("leaderboard") == QUICK_GRADE
        if quick.all():
            raise FileNotFoundError(f"only quick-look rows (unlearn-bench try) under {results}: they are not "
                                    "leaderboard results; run `unlearn-bench run` for those")
        frame = frame[~quick].reset_index(drop=True)
    if suite:  # unreadable files carry no suite column; they are counted under the suite asked for
        frame["suite"] = frame["suite"].fillna(suite.name)
    return frame


def build_boards(results: Path, suite: str | SuiteRef | None = None, sort: str = "pareto",
                 verified_only: bool = False, data_root: str | None = None) -> list[SuiteBoard]:
    ref = resolve_suite(suite) if isinstance(suite, str) else suite
    frame = load_rows(Path(results), ref)
    return [build_suite_board(rows, sort, verified_only, data_root, results=Path(results),
                              suite_file=ref.path if ref else None)
            for _, rows in frame[frame["suite"].notna()].groupby("suite", sort=True)]


def write_leaderboards(boards: list[SuiteBoard], out: Path) -> dict[str, Path]:
    """Write ``<out>/<suite>.md`` per suite and ``<out>/index.html``; returns the paths written."""
    written = {}
    for board in boards:
        path = Path(out) / f"{board.suite}.md"
        atomic_write_bytes(path, render_markdown(board).encode())
        written[board.suite] = path
    written["html"] = Path(out) / "index.html"
    atomic_write_bytes(written["html"], render_html(boards).encode())
    return written


def render_leaderboards(results: Path, out: Path, suite: str | SuiteRef | None = None, sort: str = "pareto",
                        verified_only: bool = False, data_root: str | None = None) -> str:
    """Write the Markdown and HTML leaderboards; returns the Markdown text of every suite."""
    boards = build_boards(Path(results), suite, sort, verified_only, data_root)
    write_leaderboards(boards, out)
    return "\n".join(render_markdown(b) for b in boards)
