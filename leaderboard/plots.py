"""Plots for the HTML page, drawn with matplotlib (Agg) and inlined as SVG: no scripts, no network.

Each function returns one ``<svg>`` element (text kept as text, so it is searchable and small) with a
``class="plot plot-<kind>"`` attribute the page and its tests can find.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.patches import Patch

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


def to_svg(fig: plt.Figure, kind: str, label: str) -> str:
    """The figure as an inline ``<svg>`` element, tagged for the page; the figure is closed."""
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


def scatter(items: Sequence[Item], title: str, x_label: str, y_label: str,
            floor: tuple[float, float] | None = None, caption: str = "") -> str:
    """Points (x, y) with labels; ``floor`` (the retrain floor row's gaps) is drawn as a star; ``caption`` is
    printed under the axes (small), for what an axis averages."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 4.0))
        pts = [it for it in items if math.isfinite(it.x) and math.isfinite(it.y)]
        for it in sorted(pts, key=lambda it: it.role == "equivalent"):
            ax.scatter(it.x, it.y, s=36, color=COLORS.get(it.role, COLORS["method"]), edgecolor="white", zorder=3)
            ax.annotate(_short(it.label, 20), (it.x, it.y), xytext=(5, 3), textcoords="offset points", fontsize=7,
                        color="#374151")
        if floor is not None and all(math.isfinite(v) for v in floor):
            ax.scatter(*floor, marker="*", s=140, color=COLORS["floor"], zorder=4)
            ax.annotate("floor (retrain)", floor, xytext=(6, -10), textcoords="offset points", fontsize=7)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left")
        ax.grid(color="#e5e7eb", zorder=0)
        if caption:
            fig.text(0.01, -0.02, "\n".join(textwrap.wrap(caption, 90)), fontsize=7, color="#6b7280", va="top")
        return to_svg(fig, "scatter", title)


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
