"""Everything ``unlearn-bench leaderboard`` writes and prints, rendered once per state of its inputs.

Building the boards (statistics, bootstraps, integrity checks against the dataset) and drawing the plots is what a
warm ``make demo`` spends its time on, and a rerun that stored no new row would redo all of it for the same
text. So the texts (Markdown, HTML, summary, JSON, LaTeX, CSV) are kept in ``<out>/.leaderboard-cache.json``
under a key of everything they are computed from:

* every file under the results folder read (path, size, modification time): rows, per-example tables and
  ``unlearn-bench verify`` records;
* the code and data that compute them: every ``.py`` and suite file of ``harness/`` and ``leaderboard/`` (path,
  size, modification time), and a suite file named with ``--suite``;
* the options (suite, ranking rule, ``--verified-only``, data root, output folder) and the environment variables
  that choose the data and cache (``UNLEARN_BENCH_DATA``, ``UNLEARN_BENCH_CACHE``).

Not in the key: the dataset files' contents (the integrity checks recompute split hashes from them); after
replacing a dataset in place under the same path, pass ``--no-cache``. ``--figures`` always renders afresh (it
writes the figure files as the HTML is drawn).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.core.files import atomic_write_bytes

CACHE_FILE = ".leaderboard-cache.json"
CACHE_FORMAT = 1  # bump when the stored layout changes
_CODE_ROOTS = (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "harness")
_ENV = ("UNLEARN_BENCH_DATA", "UNLEARN_BENCH_CACHE")


@dataclass(frozen=True)
class Request:
    """What to render: the ``leaderboard`` command's options."""

    results: Path
    out: Path
    suite: str | None = None
    rank_by: str = "pareto"
    verified_only: bool = False
    data_root: str | None = None
    figures: Path | None = None  # write every plot as PNG and PDF here
    use_cache: bool = True


def _tree(root: Path, suffixes: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file under ``root`` (only ``suffixes``, when given), sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if suffixes and not name.endswith(suffixes):
                continue
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue  # removed while we looked: the key then differs from the next look anyway
            found.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return found


def inputs_key(request: Request) -> str:
    """A hash of everything the rendered texts depend on (see the module docstring)."""
    results = Path(request.results)
    suite_path = Path(request.suite) if request.suite and request.suite.endswith(".toml") else None
    state = {
        "format": CACHE_FORMAT,
        "options": [request.suite, request.rank_by, request.verified_only, request.data_root,
                    str(Path(request.out).resolve()), str(results.resolve())],
        "env": [os.environ.get(name) for name in _ENV],
        "results": _tree(results),
        "code": [_tree(root, (".py", ".toml")) for root in _CODE_ROOTS],
        "suite_file": _tree(suite_path.parent, (suite_path.name,)) if suite_path and suite_path.is_file() else None,
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def render_texts(request: Request) -> dict[str, str]:
    """Build the boards and render every text: ``md:<suite>``, ``latex:<suite>``, ``csv:<suite>``, ``html``,
    ``summary``, ``json``, ``markdown``, ``latex``, ``csv``."""
    from leaderboard.html import render_html
    from leaderboard.json_out import to_json
    from leaderboard.markdown import render_markdown
    from leaderboard.paper import render_csv, render_latex
    from leaderboard.plots import export_figures
    from leaderboard.render import build_boards
    from leaderboard.terminal import summary

    boards = build_boards(request.results, request.suite, sort=request.rank_by,
                          verified_only=request.verified_only, data_root=request.data_root)
    texts: dict[str, str] = {}
    for board in boards:
        texts[f"md:{board.suite}"] = render_markdown(board)
        texts[f"latex:{board.suite}"] = _two_axes_text(render_latex, [board])
        texts[f"csv:{board.suite}"] = _two_axes_text(render_csv, [board])
    with export_figures(request.figures):
        texts["html"] = render_html(boards)
    texts["summary"] = summary(boards, output_paths(request.out, [b.suite for b in boards]))
    texts["json"] = _two_axes_text(to_json, boards)
    texts["markdown"] = "\n".join(texts[f"md:{b.suite}"] for b in boards)
    texts["latex"] = _two_axes_text(render_latex, boards)
    texts["csv"] = _two_axes_text(render_csv, boards)
    return texts


def _two_axes_text(render, boards) -> str:
    """A machine-readable output (LaTeX, CSV, JSON), or a one-line note where the boards were ranked without the
    two-axes table it reads (``--rank-by avg_gap``, ``--sort``): every text is rendered up front for the cache,
    and these are defined on the two-axes verdicts only."""
    try:
        return render(boards)
    except KeyError as exc:
        return f"% not available for this ranking: the paper formats need the two-axes table (no column {exc})\n"


def output_paths(out: Path, suites: list[str]) -> dict[str, Path]:
    """Where the Markdown of each suite and the HTML page go (the summary names them)."""
    return {**{s: Path(out) / f"{s}.md" for s in suites}, "html": Path(out) / "index.html"}


def leaderboard_texts(request: Request) -> tuple[dict[str, str], bool]:
    """(the texts, whether they came from the cache): rendered only when an input changed."""
    key = inputs_key(request) if request.use_cache and request.figures is None else None
    cache = Path(request.out) / CACHE_FILE
    if key is not None:
        try:
            stored = json.loads(cache.read_text())
            if stored.get("key") == key:
                return stored["texts"], True
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # no cache yet, or an unreadable one: render
    texts = render_texts(request)
    if request.use_cache:
        atomic_write_bytes(cache, json.dumps({"key": key or inputs_key(request), "texts": texts}).encode())
    return texts, False


def write_outputs(request: Request, texts: dict[str, str], formats: tuple[str, ...] = ()) -> dict[str, Path]:
    """Write ``<out>/<suite>.md`` per suite and ``<out>/index.html`` (and ``<suite>.tex`` / ``<suite>.csv`` for
    the ``formats`` asked for); returns what was written."""
    suites = [k.split(":", 1)[1] for k in texts if k.startswith("md:")]
    written = output_paths(request.out, suites)
    for suite in suites:
        atomic_write_bytes(written[suite], texts[f"md:{suite}"].encode())
        for fmt, suffix in (("latex", "tex"), ("csv", "csv")):
            if fmt in formats:
                written[f"{fmt}:{suite}"] = Path(request.out) / f"{suite}.{suffix}"
                atomic_write_bytes(written[f"{fmt}:{suite}"], texts[f"{fmt}:{suite}"].encode())
    atomic_write_bytes(written["html"], texts["html"].encode())
    return written
