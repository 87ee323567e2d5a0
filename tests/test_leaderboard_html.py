"""The HTML leaderboard: self-contained structure, and (in a real headless chromium) one row per method,
sorting by clicking a header, the matplotlib plots, the critical-difference diagram and the P(best) column,
and a screenshot under ``test-artifacts/``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_leaderboard_stats import SUITE, build_digits_results
from test_leaderboard_verdicts import SUITE as STATS_SUITE
from test_leaderboard_verdicts import SUITE_FILE, build_stats_results

from harness.core.results import row_hash
from leaderboard.render import build_boards, render_leaderboards

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def digits_site(tmp_path_factory, session_cache) -> tuple[Path, list, Path]:
    """(site folder, boards, results folder): the digits-smoke results shared with the statistics tests."""
    results = build_digits_results(tmp_path_factory.getbasetemp(), session_cache.root)
    out = tmp_path_factory.mktemp("site")
    render_leaderboards(results, out, SUITE)
    return out, build_boards(results, SUITE), results


@pytest.fixture(scope="session")
def stats_site(tmp_path_factory, session_cache) -> tuple[Path, list, Path]:
    """(site folder, boards, results folder) of the stats-digits run: several entries ranked across both
    scenarios."""
    results = build_stats_results(tmp_path_factory.getbasetemp(), session_cache.root)
    out = tmp_path_factory.mktemp("stats-site")
    render_leaderboards(results, out, str(SUITE_FILE))
    return out, build_boards(results, str(SUITE_FILE)), results


def test_page_is_self_contained(digits_site):
    out, boards, _ = digits_site
    page = (out / "index.html").read_text()
    # Nothing fetched: no external scripts, styles, images or fonts (the SVG namespace is not a request).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # only in-page references: url(#clip)
    assert page.count('class="plot plot-bars"') == 2 and page.count('class="plot plot-heatmap"') == 2
    # The privacy-vs-utility plot where a privacy axis exists; elsewhere a note says why there is none (on digits
    # with 2 seeds no attack can show that it detects the original).
    with_axis = sum(bool(s.axes.in_axis) for s in boards[0].scenarios)
    assert page.count('class="plot plot-scatter"') == with_axis
    assert page.count('class="note no-tradeoff"') == 2 - with_axis
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page  # inline SVG, not SVG documents
    assert "seeds</b> 0, 1" in page and "git sha" in page and "hardware" in page


def test_markdown_names_every_test(stats_site, tmp_path):
    out, _, results = stats_site
    text = (out / f"{STATS_SUITE}.md").read_text()
    for test in ("**Ranked by** Pareto fronts over (utility, privacy)", "two-sided paired t-test by seed",
                 "Holm-corrected", "TOST (two one-sided paired t-tests",
                 "paired bootstrap over the same resampled shadow models", "share of the original's exposure that remains", "one Holm family",
                 "Friedman test over 2 blocks (scenarios", "Iman–Davenport F", "post-hoc Nemenyi", "Nemenyi CD",
                 "P(best): share of 2000 bootstrap draws (seeds (per-seed quantities) and paired shadow draws",
                 "Kendall τ-b", "margin ±", "α = 0.05", "### Paper-comparable (not a verdict)"):
        assert test in text, test
    assert "| method | rank in class-3 | rank in random-10 | mean rank | P(best) |" in text
    # --rank-by avg_gap: the tests of the one-metric ranking, as before
    old = render_leaderboards(results, tmp_path / "site", str(SUITE_FILE), sort="avg_gap")
    for test in ("**Ranked by** avg_gap, lower is better", "two-sided paired t-test", "Holm-corrected",
                 "Friedman test over 12 blocks (scenario × seed)", "Iman–Davenport F", "post-hoc Nemenyi test",
                 "critical difference CD =", "P(best): share of 2000 bootstrap resamples (seeds within each scenario)",
                 "### Two axes (the default ranking, `--rank-by pareto`)"):
        assert test in old, test


def test_heatmap_shows_only_the_scenarios_metrics(stats_site):
    out, _, _ = stats_site
    page = (out / "index.html").read_text()
    # salun_mia is meaningful on random forgetting only (metric_meta "scenarios"): its column is in the
    # random-10 heatmap, not in class-3's.
    class_part = page.split('id="stats-digits-class-3"')[1].split('id="stats-digits-random-10"')[0]
    random_part = page.split('id="stats-digits-random-10"')[1]
    class_heat = class_part.split('class="plot plot-heatmap"')[1].split("</svg>")[0]
    random_heat = random_part.split('class="plot plot-heatmap"')[1].split("</svg>")[0]
    assert "salun_mia" in random_heat and "salun_mia" not in class_heat
    assert "forget_acc" in class_heat


def test_reconstructed_metrics_are_marked(digits_site, tmp_path):
    _, _, stored = digits_site
    results = tmp_path / "results"
    shutil.copytree(stored, results)
    for path in (results / SUITE).glob("*.parquet"):
        row = pq.read_table(path).to_pylist()[0]
        if row.get("metric_meta"):
            meta = json.loads(row["metric_meta"])
            meta["test_acc"]["reconstructed"] = True  # as an evaluator with a reconstructed definition declares
            row["metric_meta"] = json.dumps(meta, sort_keys=True)
            row["row_hash"] = row_hash(row)
            pq.write_table(pa.Table.from_pylist([row]), path)
    site = tmp_path / "site"
    text = render_leaderboards(results, site, SUITE)
    assert "| test_acc† |" in text and "reconstructed metric definition" in text
    assert "test_acc†" in (site / "index.html").read_text()


@pytest.mark.browser
def test_page_in_headless_chromium(stats_site):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs chromium and chromedriver on PATH (Debian: apt install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    out, boards, _ = stats_site
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get((out / "index.html").as_uri())
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        board = boards[0]
        sections = driver.find_elements(By.CSS_SELECTOR, "section.scenario")
        assert len(sections) == len(board.scenarios)
        for section, scenario in zip(sections, board.scenarios):
            rows = section.find_elements(By.CSS_SELECTOR, "table.board tbody tr")
            names = [r.find_element(By.CSS_SELECTOR, "td.method .name").text for r in rows]
            assert len(rows) == len(scenario.table)  # one row per method configuration
            assert names[0] == "retrain (floor)"
            assert any("(no-op)" in n for n in names)
            verdicts = [c.text for c in section.find_elements(By.CSS_SELECTOR, "td.verdict")]
            assert any(v.startswith(("worse", "equivalent", "better", "inconclusive")) for v in verdicts)
            # the privacy-vs-utility plot where the scenario has a privacy axis (digits class-3: RMIA detects
            # the original; random-10: no attack does, and a note says so instead)
            kinds = ("plot-bars", "plot-heatmap") + (("plot-scatter",) if scenario.axes.in_axis else ())
            for kind in kinds:
                plot = section.find_element(By.CSS_SELECTOR, f"svg.{kind}")
                assert plot.size["width"] > 100 and plot.size["height"] > 50
            if scenario.axes.in_axis:
                scatter = section.find_element(By.CSS_SELECTOR, "svg.plot-scatter").text
                assert "floor (retrain)" in scatter and "Pareto front 1" in scatter and "time_ratio" in scatter
            else:
                assert "No privacy-vs-utility plot" in section.find_element(By.CSS_SELECTOR, "p.no-tradeoff").text
            heads = [h.text for h in section.find_elements(By.CSS_SELECTOR, "table.board thead th")]
            assert heads[:3] == ["#", "front", "method"] and "privacy" in heads and "time_ratio" in heads
            bar_text = section.find_element(By.CSS_SELECTOR, "svg.plot-bars").text
            assert "floor (retrain)" in bar_text and "original" in bar_text  # references marked, not bars

        ranking = driver.find_element(By.CSS_SELECTOR, "section.ranking")
        cd = ranking.find_element(By.CSS_SELECTOR, "svg.plot-cd")
        assert cd.size["width"] > 200 and cd.size["height"] > 60
        assert "CD =" in cd.text and all(e.split(" [")[0] in cd.text for e in boards[0].overall.entries)
        heads = [h.text for h in ranking.find_elements(By.CSS_SELECTOR, "table.ranks thead th")]
        assert heads[-1] == "P(best)" and heads[-2] == "mean rank"
        p_best = [float(td.text) for td in ranking.find_elements(By.CSS_SELECTOR, "table.ranks td.pbest")]
        assert len(p_best) == len(boards[0].overall.entries) and abs(sum(p_best) - 1) < 0.02

        section = sections[0]
        headers = section.find_elements(By.CSS_SELECTOR, "table.board thead th")
        column = next(i for i, h in enumerate(headers) if h.text.strip().startswith("utility_gap"))

        def entry_order() -> tuple[list[str], list[str]]:
            rows = section.find_elements(By.CSS_SELECTOR, "table.board tbody.entries tr")
            return ([r.find_element(By.CSS_SELECTOR, "td.method .name").text for r in rows],
                    [r.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-v") for r in rows])

        before, _ = entry_order()
        headers[column].click()
        ascending, values_up = entry_order()
        headers[column].click()
        descending, values_down = entry_order()
        numbers_up = [float(v) for v in values_up if v]
        numbers_down = [float(v) for v in values_down if v]
        assert numbers_up == sorted(numbers_up) and numbers_down == sorted(numbers_down, reverse=True)
        assert ascending != descending  # clicking a header changes the order
        assert headers[column].get_attribute("aria-sort") == "descending"
        assert sorted(before) == sorted(ascending)  # sorting moves rows, never loses them
        refs = section.find_elements(By.CSS_SELECTOR, "table.board tbody.refs tr")
        assert refs[0].find_element(By.CSS_SELECTOR, "td.method .name").text == "retrain (floor)"

        ARTIFACTS.mkdir(exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1300, min(int(height) + 40, 6000))
        shot = ARTIFACTS / "leaderboard-stats-digits.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
