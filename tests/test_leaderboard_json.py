"""``leaderboard --json`` and ``--rank-by`` on real rows (the stats-digits run of test_leaderboard_verdicts.py):
the JSON reads back, no dominated entry is ranked above its dominator (per scenario and across scenarios), and
``--rank-by avg_gap`` (alias ``--sort``) gives the one-metric table of earlier versions."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from test_leaderboard_verdicts import SUITE, SUITE_FILE, stats_results  # noqa: F401 (a fixture)

from harness.commands.cli import main
from leaderboard.pareto import dominates
from leaderboard.render import build_boards
from leaderboard.stats import rank_values


def test_json_reads_back_with_both_axes_and_every_test(stats_results, tmp_path, capsys):  # noqa: F811
    assert main(["leaderboard", "--suite", str(SUITE_FILE), "--results", str(stats_results), "--out",
                 str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # strict JSON: non-finite numbers are null
    suite = doc["suites"][0]
    assert suite["suite"] == SUITE and suite["rank_by"] == "pareto" and "Pareto" in suite["rule"]
    assert (tmp_path / f"{SUITE}.md").is_file()  # the files are written as well
    seen_verdict = False
    for scenario in suite["scenarios"]:
        entries = {e["entry"]: e for e in scenario["entries"]}
        assert entries["retrain"]["role"] == "floor" and entries["original"]["role"] == "original"
        assert entries["stats-noop"]["marks"]["no_op"] and entries["stats-noop"]["rank"] is None
        for e in scenario["entries"]:
            assert set(e["marks"]) >= {"no_op", "over_budget", "inconsistent", "unverified"}
            v = e["utility"]["verdict"]
            if e["role"] == "entry" and v and v["state"] in ("worse", "inconclusive", "equivalent", "better"):
                assert v["test"] == "paired t" and v["unit"] == "seed" and v["n"] == 6 and 0 < v["p"] <= 1
                seen_verdict = True
        for attack in scenario["attacks"]:
            assert attack["metric"] in ("rmia_ft_auc", "salun_mia") and "note" in attack
        assert {"pairs", "rule", "interval"} <= set(scenario["agreement"])
    assert seen_verdict
    overall = suite["overall"]
    assert overall["blocks"] == "scenario" and overall["friedman"]["n_blocks"] == 2
    assert sum(e["p_best"] for e in overall["entries"]) == pytest.approx(1.0)


def test_json_no_dominated_entry_ranked_above_its_dominator(stats_results, tmp_path, capsys):  # noqa: F811
    assert main(["leaderboard", "--suite", str(SUITE_FILE), "--results", str(stats_results), "--out",
                 str(tmp_path), "--json"]) == 0
    suite = json.loads(capsys.readouterr().out)["suites"][0]
    points: dict[str, dict[str, tuple[float, ...]]] = {}
    pairs = 0
    for scenario in suite["scenarios"]:
        ranked = [e for e in scenario["entries"] if e["rank"] is not None]
        assert ranked and all(e["rule"] == suite["rule"] for e in ranked)
        for e in ranked:
            axes = [e["utility"]["value"]] + ([e["privacy"]["value"]] if e["privacy"]["value"] is not None else [])
            points.setdefault(e["entry"], {})[scenario["scenario"]] = tuple(axes)
        for a, b in itertools.permutations(ranked, 2):
            pa, pb = points[a["entry"]][scenario["scenario"]], points[b["entry"]][scenario["scenario"]]
            if len(pa) == len(pb) and dominates(pa, pb):
                pairs += 1
                assert a["rank"] < b["rank"], (scenario["scenario"], a["entry"], b["entry"])
    assert pairs > 0  # the check is not vacuous on these rows
    position = {e["entry"]: e["position"] for e in suite["overall"]["entries"]}
    for a, b in itertools.permutations(position, 2):
        if all(dominates(points[a][s], points[b][s]) for s in points[a]):
            assert position[a] < position[b]


def test_rank_by_avg_gap_reproduces_the_one_metric_table(stats_results, tmp_path, capsys):  # noqa: F811
    board = build_boards(stats_results, str(SUITE_FILE), sort="avg_gap")[0]
    assert board.rank_by == "avg_gap" and board.overall.blocks == "scenario × seed"
    for scenario in board.scenarios:
        t = scenario.table
        ranked = t[t["rank"].notna()]
        assert list(ranked["rank"]) == rank_values(ranked["avg_gap_mean"].tolist())  # by avg_gap, ascending
        assert list(ranked["rank"]) == sorted(ranked["rank"])  # and shown in that order
    args = ["leaderboard", "--suite", str(SUITE_FILE), "--results", str(stats_results), "--markdown"]
    assert main([*args, "--out", str(tmp_path / "a"), "--rank-by", "avg_gap"]) == 0
    by_rank = capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b"), "--sort", "avg_gap"]) == 0
    assert capsys.readouterr().out == by_rank  # --sort is an alias
    first = by_rank.split("## class-3")[1].split("\n\n")[2].splitlines()
    assert first[0].startswith("| # | method | avg_gap | vs floor | n | failed | avg_gap_rmia |")
    ranks = [line.split("|")[1].strip() for line in first[2:]]
    assert ranks[:2] == ["ref", "ref"] and ranks[2] == "1"
    assert "### Two axes (the default ranking, `--rank-by pareto`)" in by_rank


def test_default_ranks_every_competing_entry(stats_results):  # noqa: F811
    pareto = build_boards(stats_results, str(SUITE_FILE))[0]
    for scenario in pareto.scenarios:
        t = scenario.axes.table
        ranked = t[t["rank"].notna()]
        # every competing entry with both values is ranked; the marked one is not
        assert "stats-noop" not in ranked.index
        assert sorted(ranked["rank"]) == list(range(1, len(ranked) + 1))
        assert all(math.isfinite(f) for f in ranked["front"])
