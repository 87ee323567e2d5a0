"""The leaderboard in the formats papers use (CSV, booktabs LaTeX, figure files) and its render cache, through
the real CLI on the digits-smoke rows the statistics tests build."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_leaderboard_stats import SUITE, build_digits_results

from leaderboard.outputs import Request, leaderboard_texts
from leaderboard.paper import best_entries, latex_document


@pytest.fixture(scope="module")
def results(tmp_path_factory, session_cache) -> Path:
    return build_digits_results(tmp_path_factory.getbasetemp(), session_cache.root)


def _board(results: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "harness.commands.cli", "leaderboard", "--suite", SUITE, "--results", str(results),
           "--out", str(out), *extra]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", cell)]


def _axes_rows(markdown: str, scenario: str) -> dict[str, list[str]]:
    """method cell -> cells of the two-axes table of one scenario in the Markdown."""
    section = markdown.split(f"\n## {scenario}\n", 1)[1]
    lines = section.split("| # | front | method |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return {cells[2]: cells for cells in (line.strip("|").split(" | ") for line in lines)}


def test_csv_reads_back_to_the_markdown_numbers(results, tmp_path):
    proc = _board(results, tmp_path / "site", "--format", "csv")
    frame = pd.read_csv(tmp_path / "site" / f"{SUITE}.csv")
    assert frame.equals(pd.read_csv(__import__("io").StringIO(proc.stdout)))  # printed = written
    markdown = (tmp_path / "site" / f"{SUITE}.md").read_text()
    assert set(frame["role"]) >= {"floor", "original", "entry"}
    assert set(frame["scenario"]) == {"random-10", "class-3"}
    compared = 0
    for r in frame.to_dict("records"):
        cells = _axes_rows(markdown, r["scenario"])[r["label"].strip()]
        for column, at in (("utility_gap", 3), ("privacy", 5)):
            shown = _numbers(cells[at])
            mine = [r[column], r[f"{column}_lo"], r[f"{column}_hi"]]
            mine = [v for v in mine if isinstance(v, float) and math.isfinite(v)]
            assert len(shown) == len(mine), (r["label"], column, cells[at], mine)
            for value, text in zip(mine, shown):
                assert abs(value - text) <= (0.05 if abs(value) >= 10 else 0.005) + 1e-9, (r["label"], column)
                compared += 1
    assert compared >= 12


def test_latex_has_a_booktabs_table_per_scenario_and_compiles(results, tmp_path):
    proc = _board(results, tmp_path / "site", "--format", "latex")
    text = proc.stdout
    assert text == (tmp_path / "site" / f"{SUITE}.tex").read_text()
    assert text.count(r"\begin{table}") == 2 and text.count(r"\end{tabular}") == 2
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert text.count(rule) >= 2
    assert text.count("retrain (floor) &") == 2 and text.count("\noriginal &") == 2
    assert "suite version 3" in text and "seeds 0, 1" in text and "paired t-test" in text and "Holm" in text
    assert r"\textbf{" in text and r"$\pm$" in text
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (Debian: texlive-latex-base texlive-latex-recommended): "
                    "structure checked, compilation not")
    (tmp_path / "board.tex").write_text(latex_document(text))
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "board.tex"], check=False,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "board.pdf").stat().st_size > 1000


def test_best_entry_per_column_is_the_lowest_ranked_value():
    records = [{"entry": "a", "role": "entry", "rank": 1.0, "utility_gap": 2.0, "privacy": 0.5},
               {"entry": "b", "role": "entry", "rank": 2.0, "utility_gap": 1.0, "privacy": 0.5},
               {"entry": "c", "role": "entry", "rank": math.nan, "utility_gap": 0.1, "privacy": 0.1},  # unranked
               {"entry": "retrain", "role": "floor", "rank": math.nan, "utility_gap": 0.0, "privacy": 0.0}]
    assert best_entries(records) == {"utility_gap": {"b"}, "privacy": {"a", "b"}}


def test_figures_are_the_page_plots_as_png_and_pdf(results, tmp_path):
    _board(results, tmp_path / "site", "--figures", str(tmp_path / "fig"), "--quiet")
    pngs, pdfs = sorted((tmp_path / "fig").glob("*.png")), sorted((tmp_path / "fig").glob("*.pdf"))
    plots = (tmp_path / "site" / "index.html").read_text().count('<svg class="plot ')
    assert plots > 0 and len(pngs) == len(pdfs) == plots
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdfs)
    assert {p.stem for p in pngs} == {p.stem for p in pdfs}


def test_render_cache_serves_unchanged_inputs_and_notices_a_changed_row(results, tmp_path):
    mine = tmp_path / "results"
    shutil.copytree(results, mine)
    request = Request(mine, tmp_path / "site", SUITE)
    first, cached = leaderboard_texts(request)
    assert not cached
    again, cached = leaderboard_texts(request)
    assert cached and again == first
    fresh, cached = leaderboard_texts(Request(mine, tmp_path / "site", SUITE, use_cache=False))
    assert not cached and fresh["json"] == first["json"] and fresh["markdown"] == first["markdown"]
    # a row file removed: the inputs changed, so the board is rebuilt and shows one run fewer
    victim = next(p for p in sorted((mine / SUITE).glob("*.parquet"))
                  if pd.read_parquet(p)["method"].iloc[0] == "original")
    victim.unlink()
    changed, cached = leaderboard_texts(request)
    assert not cached and changed["csv"] != first["csv"]
    assert "original" in changed["csv"] and changed["json"] != first["json"]
