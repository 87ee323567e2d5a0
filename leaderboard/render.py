"""Render leaderboards from stored results: ``<out>/<suite>.md`` per suite and one ``<out>/index.html``."""

from __future__ import annotations

from pathlib import Path

from harness.cache import atomic_write_bytes
from harness.results import read_results
from leaderboard.aggregate import SuiteBoard, build_suite_board
from leaderboard.html import render_html
from leaderboard.markdown import render_markdown


def build_boards(results: Path, suite: str | None = None, sort: str = "avg_gap", verified_only: bool = False,
                 data_root: str | None = None) -> list[SuiteBoard]:
    frame = read_results(results, suite)
    if frame.empty or "suite" not in frame:
        raise FileNotFoundError(f"no results under {results}" + (f"/{suite}" if suite else ""))
    if suite:  # unreadable files carry no suite column; they are counted under the suite asked for
        frame["suite"] = frame["suite"].fillna(suite)
    return [build_suite_board(rows, sort, verified_only, data_root)
            for _, rows in frame[frame["suite"].notna()].groupby("suite", sort=True)]


def render_leaderboards(results: Path, out: Path, suite: str | None = None, sort: str = "avg_gap",
                        verified_only: bool = False, data_root: str | None = None) -> str:
    """Write the Markdown and HTML leaderboards; returns the Markdown text of every suite."""
    boards = build_boards(Path(results), suite, sort, verified_only, data_root)
    texts = []
    for board in boards:
        text = render_markdown(board)
        atomic_write_bytes(Path(out) / f"{board.suite}.md", text.encode())
        texts.append(text)
    atomic_write_bytes(Path(out) / "index.html", render_html(boards).encode())
    return "\n".join(texts)
