"""Plots for the HTML page, drawn with matplotlib (Agg) and inlined as SVG: no scripts, no network.

Each function returns one ``<svg>`` element (text kept as text, so it is searchable and small) with a
``class="plot plot-<kind>"`` attribute the page and its tests can find.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

STYLE = {"svg.fonttype": "none", "svg.hashsalt": "unlearn-bench", "font.size": 9, "axes.titlesize": 10,
         "axes.spines.top": False, "axes.spines.right": False, "font.family": "sans-serif"}
COLORS = {"better": "#1a9850", "equivalent": "#66bd63", "worse": "#4575b4", "inconclusive": "#9ecae1",
          "no-op": "#bdbdbd", "unverified": "#f46d43", "method": "#4575b4", "floor": "#111827", "reference": "#6b7280"}


@dataclass(frozen=True)
class Item:
    """One plotted entry: label, role (a COLORS key) and values."""

    label: str
    role: str
    value: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    x: float = math.nan
    y: float = math.nan


# Where ``to_svg`` also saves each figure as PNG and PDF (``unlearn-bench leaderboard --figures DIR``), and the
# names given so far (two plots with one title get -2, -3, ...).
_EXPORT: contextvars.ContextVar[tuple[Path, dict[str, int]] | None] = contextvars.ContextVar("export", default=None)


@contextlib.contextmanager
def export_figures(folder: Path | None):
    """While active, every plot drawn for the page is also written to ``folder`` as ``<kind>-<title>.png`` and
    ``.pdf`` (the same figure, so the files show what the page shows); ``None``: nothing is written."""
    if folder is None:
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    token = _EXPORT.set((Path(folder), {}))
    try:
        yield
    finally:
        _EXPORT.reset(token)


def _export(fig: plt.Figure, kind: str, label: str) -> None:
    target = _EXPORT.get()
    if target is None:
        return
    folder, seen = target
    stem = f"{kind}-" + (re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()[:80] or "plot")
    seen[stem] = seen.get(stem, 0) + 1
    if seen[stem] > 1:
        stem += f"-{seen[stem]}"
    for fmt in ("png", "pdf"):
        fig.savefig(folder / f"{stem}.{fmt}", format=fmt, bbox_inches="tight", dpi=200,
                    metadata={"CreationDate": None} if fmt == "pdf" else None)


def to_svg(fig: plt.Figure, kind: str, label: str) -> str:
    """The figure as an inline ``<svg>`` element, tagged for the page; the figure is closed (and, under
    ``export_figures``, first saved as PNG and PDF)."""
    _export(fig, kind, label)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: not allowed inside HTML
    label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return re.sub(r"^<svg", f'<svg class="plot plot-{kind}" role="img" aria-label="{label}"', text, count=1)


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _axis_range(items: Sequence[Item]) -> tuple[float, float]:
    """Cover every mean and 0; CIs extend the axis only up to the means' span again (few seeds give huge
    t-intervals that would flatten every bar); whiskers beyond are clipped and marked."""
    means = [it.value for it in items if math.isfinite(it.value)]
    lo, hi = min([0.0, *means]), max([0.0, *means])
    span = (hi - lo) or 1.0
    los = [it.lo for it in items if math.isfinite(it.lo)]
    his = [it.hi for it in items if math.isfinite(it.hi)]
    return max(min([lo, *los]), lo - span), min(max([hi, *his]), hi + span) * 1.04


def bar_chart(items: Sequence[Item], title: str, axis_label: str,
              references: Sequence[tuple[str, float, float, float]] = ()) -> str:
    """Horizontal bars (mean) with 95% CI whiskers, top to bottom in the given order. ``references`` are
    (label, value, lo, hi): drawn as vertical lines (with their CI as a band) when inside the methods' own
    range, else named at the axis edge with an arrow, so a far-off reference never squeezes the bars."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.28 * max(len(items), 1)))
        lo_end, hi_end = _axis_range(items)
        ys = np.arange(len(items))[::-1]
        for y, it in zip(ys, items):
            if not math.isfinite(it.value):
                continue
            ax.barh(y, it.value, height=0.62, color=COLORS.get(it.role, COLORS["method"]), zorder=2)
            if math.isfinite(it.lo) and math.isfinite(it.hi):
                a, b = max(it.lo, lo_end), min(it.hi, hi_end)
                ax.plot([a, b], [y, y], color="#111827", lw=1.1, zorder=3)
                for end, clipped, marker in ((a, it.lo < lo_end, "<"), (b, it.hi > hi_end, ">")):
                    ax.plot([end], [y], marker=marker if clipped else "|", color="#111827", ms=6 if clipped else 8,
                            zorder=3)
        ax.set_yticks(ys, [_short(it.label) for it in items])
        ax.set_xlim(lo_end, hi_end)
        for k, (label, value, lo, hi) in enumerate(references):
            if not math.isfinite(value):
                continue
            lift = 2 + 11 * k  # stack the reference labels: two references close together stay readable
            style = {"color": COLORS["floor"] if label.startswith("floor") else COLORS["reference"], "lw": 1.2}
            if lo_end <= value <= hi_end:
                ax.axvline(value, ls="--", zorder=4, **style)
                if math.isfinite(lo) and math.isfinite(hi):
                    ax.axvspan(max(lo, lo_end), min(hi, hi_end), color=style["color"], alpha=0.08, zorder=1)
                ax.annotate(f"{label} {value:.3g}", (value, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(3, lift), textcoords="offset points", fontsize=8, color=style["color"])
            else:
                edge = hi_end if value > hi_end else lo_end
                arrow = "→" if value > hi_end else "←"
                ax.annotate(f"{label} {value:.3g} {arrow}" if arrow == "→" else f"{arrow} {label} {value:.3g}",
                            (edge, 1.0), xycoords=("data", "axes fraction"), xytext=(0, lift),
                            textcoords="offset points", ha="right" if arrow == "→" else "left", fontsize=8,
                            color=style["color"])
        ax.axvline(0, color="#9ca3af", lw=0.8)
        roles = list(dict.fromkeys(it.role for it in items if math.isfinite(it.value)))
        if roles:  # what the bar colours mean: the verdict against the floor
            handles = [Patch(color=COLORS.get(r, COLORS["method"]), label=r) for r in roles]
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        ax.set_xlabel(axis_label)
        ax.set_title(title, loc="left", pad=6 + 11 * max(len(references), 1))
        ax.grid(axis="x", color="#e5e7eb", zorder=0)
        return to_svg(fig, "bars", title)


def heatmap(row_labels: Sequence[str], col_labels: Sequence[str], values: np.ndarray, title: str,
            floors: Sequence[float] | None = None) -> str:
    """Cells coloured by value / max(column maximum, floor): white = 0, red = the column's largest gap; the
    floor keeps a column of negligible gaps from turning red. Missing values are grey."""
    values = np.asarray(values, dtype=float)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(1.4 + 0.62 * max(len(col_labels), 1), 0.7 + 0.27 * max(len(row_labels), 1)))
        scale = np.nanmax(np.abs(values), axis=0, initial=0.0) if values.size else np.zeros(len(col_labels))
        if floors is not None:
            scale = np.maximum(scale, np.asarray(floors, dtype=float))
        scale = np.where(scale > 0, scale, 1.0)
        level = np.clip(np.abs(values) / scale, 0, 1)
        cmap = matplotlib.colormaps["OrRd"].with_extremes(bad="#f3f4f6")
        ax.imshow(np.ma.masked_invalid(level), cmap=cmap, vmin=0, vmax=1.25, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if math.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if level[i, j] > 0.75 else "#111827")
        ax.set_xticks(range(len(col_labels)), [_short(c, 16) for c in col_labels], rotation=35, ha="right")
        ax.set_yticks(range(len(row_labels)), [_short(r) for r in row_labels])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title, loc="left")
        return to_svg(fig, "heatmap", title)


def cd_diagram(mean_ranks: pd.Series, p_values: pd.DataFrame, cd: float, alpha: float, title: str) -> str:
    """Demšar's critical-difference diagram: mean ranks on an axis, entries that the post-hoc test cannot tell
    apart joined by a bar (scikit-posthocs), and the critical difference drawn to scale."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.18 * len(mean_ranks)))
        ranks = mean_ranks.rename(index=lambda e: _short(str(e)))
        sig = p_values.rename(index=lambda e: _short(str(e)), columns=lambda e: _short(str(e)))
        sp.critical_difference_diagram(ranks, sig, alpha=alpha, ax=ax, label_fmt_left="{label} ({rank:.2f})",
                                       label_fmt_right="({rank:.2f}) {label}",
                                       label_props={"fontsize": 8}, color_palette=["#111827"] * len(ranks))
        if math.isfinite(cd):
            # Above the rank axis and its tick labels, starting at the best mean rank.
            start = float(ranks.min())
            y = ax.get_ylim()[1] + 0.9
            ax.set_ylim(top=y + 0.6)
            ax.plot([start, start + cd], [y, y], color="#b91c1c", lw=2, clip_on=False)
            ax.plot([start, start], [y - 0.15, y + 0.15], [start + cd] * 2, [y - 0.15, y + 0.15], color="#b91c1c",
                    lw=1.5, clip_on=False)
            ax.annotate(f"CD = {cd:.2f}", (start + cd / 2, y), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=8, color="#b91c1c", annotation_clip=False)
        ax.set_title(title, loc="left", pad=8)
        return to_svg(fig, "cd", title)


@dataclass(frozen=True)
class Point:
    """One entry on the privacy-vs-utility plane: values with their 95% intervals, cost and Pareto front."""

    label: str
    role: str  # a COLORS key: the entry's privacy verdict, or its mark
    x: float
    x_lo: float
    x_hi: float
    y: float
    y_lo: float
    y_hi: float
    cost: float = math.nan  # time_ratio: marker area grows with it
    front: int = 0  # 1 = the Pareto front (0: not ranked)


def _marker_area(cost: float) -> float:
    """Marker area from the cost (time over an oracle's training time): 20 at 0, 60 at 0.25, 140 at 1 (sqrt)."""
    return 20.0 + 120.0 * math.sqrt(min(max(cost, 0.0), 4.0)) if math.isfinite(cost) else 20.0


def tradeoff(points: Sequence[Point], title: str, x_label: str, y_label: str,
             floor: Point | None = None, original: Point | None = None, caption: str = "") -> str:
    """Privacy (y) against utility (x), lower-left is better: each entry with its 95% intervals as whiskers and
    a marker whose area shows its cost; the Pareto front joined by a step line; the floor row's box (its
    intervals on both axes) with a star; the original marked, or named at the edge when far off scale."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
        xs = [p.x for p in pts] + ([floor.x] if floor and math.isfinite(floor.x) else [])
        ys = [p.y for p in pts] + ([floor.y] if floor and math.isfinite(floor.y) else []) + [1.0]
        x_hi = max(xs, default=1.0) * 1.15 or 1.0
        far = original is not None and math.isfinite(original.x) and original.x > 1.5 * max(xs, default=0.0)
        if original is not None and not far and math.isfinite(original.x):
            x_hi = max(x_hi, original.x * 1.1)
        y_top = max(ys) * 1.12
        if floor is not None and all(math.isfinite(v) for v in (floor.x_lo, floor.x_hi, floor.y_lo, floor.y_hi)):
            ax.add_patch(Rectangle((floor.x_lo, floor.y_lo), floor.x_hi - floor.x_lo, floor.y_hi - floor.y_lo,
                                   facecolor=COLORS["floor"], alpha=0.15, edgecolor=COLORS["floor"], lw=1.0,
                                   zorder=1))
        if floor is not None and math.isfinite(floor.x) and math.isfinite(floor.y):
            ax.scatter([floor.x], [floor.y], marker="*", s=150, color=COLORS["floor"], zorder=5)
            ax.annotate("floor (retrain)", (floor.x, floor.y), xytext=(6, -10), textcoords="offset points",
                        fontsize=7)
        for p in pts:
            for lo, hi, horizontal in ((p.x_lo, p.x_hi, True), (p.y_lo, p.y_hi, False)):
                if math.isfinite(lo) and math.isfinite(hi):
                    args = ([lo, hi], [p.y, p.y]) if horizontal else ([p.x, p.x], [lo, hi])
                    ax.plot(*args, color="#9ca3af", lw=0.7, zorder=2)
        front = sorted((p for p in pts if p.front == 1), key=lambda p: p.x)
        if front:
            ax.step([p.x for p in front], [p.y for p in front], where="post", color="#111827", lw=1.0, ls=":",
                    zorder=2)
        for p in pts:
            ax.scatter(p.x, p.y, s=_marker_area(p.cost), color=COLORS.get(p.role, COLORS["method"]), zorder=3,
                       edgecolor="#111827" if p.front == 1 else "white", linewidth=1.3 if p.front == 1 else 0.6)
            cost = f" ({p.cost:.2g}×)" if math.isfinite(p.cost) else ""
            ax.annotate(_short(p.label, 18) + cost, (p.x, p.y), xytext=(5, 3), textcoords="offset points",
                        fontsize=6.5, color="#374151")
        if original is not None and math.isfinite(original.x) and math.isfinite(original.y):
            if far:
                ax.annotate(f"original ({original.x:.3g}, {original.y:.2f}) →", (x_hi, original.y),
                            xytext=(-4, 0), textcoords="offset points", ha="right", va="center", fontsize=7,
                            color=COLORS["reference"])
            else:
                ax.scatter([original.x], [original.y], marker="X", s=60, color=COLORS["reference"], zorder=4)
                ax.annotate("original", (original.x, original.y), xytext=(5, 3), textcoords="offset points",
                            fontsize=7, color=COLORS["reference"])
        ax.set_xlim(0, x_hi)
        ax.set_ylim(0.0, y_top)  # gaps are >= 0: a t-interval reaching below 0 is clipped at the axis
        roles = list(dict.fromkeys(p.role for p in pts))
        names = {"no-op": "marked, not ranked", "equivalent": "privacy equivalent", "unverified": "unverified"}
        handles = [Patch(color=COLORS.get(r, COLORS["method"]), label=names.get(r, f"privacy {r}")) for r in roles]
        handles += [Line2D([], [], marker="o", ls="", color="#9ca3af", markersize=math.sqrt(_marker_area(c)),
                           label=f"time_ratio {c:g}") for c in (0.1, 1.0)]
        handles += [Line2D([], [], marker="o", ls=":", color="#111827", markerfacecolor="white",
                           label="Pareto front 1")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                  labelspacing=1.0)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left")
        ax.grid(color="#e5e7eb", zorder=0)
        if caption:
            fig.text(0.01, -0.02, "\n".join(textwrap.wrap(caption, 100)), fontsize=7, color="#6b7280", va="top")
        return to_svg(fig, "scatter", title)


def step_lines(series: dict[str, Sequence[float]], title: str, y_label: str, floor: str | None = None) -> str:
    """One line per entry over the steps 1..S (a sequential scenario's gap to the floor per step); ``floor``
    names the entry drawn as the dashed floor line."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
        for label, values in series.items():
            steps = np.arange(1, len(values) + 1)
            style = ({"color": COLORS["floor"], "ls": "--", "lw": 1.2} if label == floor
                     else {"marker": "o", "ms": 3.5, "lw": 1.4})
            ax.plot(steps, np.asarray(values, dtype=float), label=_short(label), **style)
        ax.axhline(0, color="#9ca3af", lw=0.8)
        ax.set_xticks(np.arange(1, max((len(v) for v in series.values()), default=1) + 1))
        ax.set_xlabel("step (request)")
        ax.set_ylabel(y_label)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        ax.set_title(title, loc="left")
        ax.grid(color="#e5e7eb", zorder=0)
        return to_svg(fig, "steps", title)

