"""Inline SVG plots (no plotting library, no scripts): bars with CI whiskers, a scatter, a heatmap."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family:inherit;font-size:11px"
COLORS = {"best": "#1a9850", "tied": "#66bd63", "method": "#4575b4", "reference": "#9e9e9e", "unverified": "#f46d43"}


@dataclass(frozen=True)
class Item:
    """One plotted entry: a label, its role (a COLORS key) and its values."""

    label: str
    role: str
    value: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    x: float = math.nan
    y: float = math.nan


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1 if math.isfinite(lo) else 1.0
        lo = lo if math.isfinite(lo) else 0.0
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 0.01 or v == 0 else f"{v:.1e}"


def _svg(width: int, height: int, css_class: str, label: str, body: list[str]) -> str:
    return (f'<svg class="plot {css_class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" style="{FONT}">'
            f"<title>{escape(label)}</title>" + "".join(body) + "</svg>")


def bar_chart(items: Sequence[Item], title: str, axis_label: str, width: int = 460) -> str:
    """Horizontal bars (mean) with 95% CI whiskers, one row per item, in the given order."""
    label_w, row_h, top, bottom = 150, 22, 28, 36
    height = top + bottom + row_h * max(len(items), 1)
    lo_end, hi_end = _axis_range(items)
    ticks = nice_ticks(lo_end, hi_end)
    x0, x1 = label_w, width - 16
    unclipped = lambda v: x0 + (v - ticks[0]) / (ticks[-1] - ticks[0]) * (x1 - x0)
    scale = lambda v: min(max(unclipped(v), x0), x1)  # whiskers past the axis end stop there
    body = [f'<text x="{x0}" y="16" font-weight="600" font-size="12">{escape(title)}</text>']
    for t in ticks:
        body.append(f'<line x1="{scale(t):.1f}" x2="{scale(t):.1f}" y1="{top - 4}" y2="{height - bottom + 4}" '
                    f'stroke="#e5e7eb"/><text x="{scale(t):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                    f'fill="#6b7280">{_fmt(t)}</text>')
    body.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#374151">'
                f'{escape(axis_label)}</text>')
    for i, it in enumerate(items):
        y = top + i * row_h
        body.append(f'<text x="{x0 - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
                    f'{escape(_short(it.label, 24))}</text>')
        if not math.isfinite(it.value):
            continue
        left, right = sorted((scale(0.0), scale(it.value)))
        tip = f"{it.label}: {it.value:.3g}" + (f" [{it.lo:.3g}, {it.hi:.3g}]" if math.isfinite(it.lo) else "")
        body.append(f'<rect class="bar" x="{left:.1f}" y="{y + 4}" width="{max(right - left, 1):.1f}" '
                    f'height="{row_h - 8}" rx="2" fill="{COLORS.get(it.role, COLORS["method"])}">'
                    f"<title>{escape(tip)}</title></rect>")
        if math.isfinite(it.lo) and math.isfinite(it.hi):
            cy = y + row_h / 2
            a, b = scale(it.lo), scale(it.hi)
            # A whisker cut at the axis end gets an arrowhead instead of a cap.
            cap_a = f"M{a + 5:.1f},{cy - 4:.1f}L{a:.1f},{cy:.1f}L{a + 5:.1f},{cy + 4:.1f}" if unclipped(it.lo) < x0 \
                else f"M{a:.1f},{cy - 5:.1f}v10"
            cap_b = f"M{b - 5:.1f},{cy - 4:.1f}L{b:.1f},{cy:.1f}L{b - 5:.1f},{cy + 4:.1f}" if unclipped(it.hi) > x1 \
                else f"M{b:.1f},{cy - 5:.1f}v10"
            body.append(f'<path d="M{a:.1f},{cy:.1f}H{b:.1f}{cap_a}{cap_b}" stroke="#111827" stroke-width="1.2" '
                        f'fill="none"/>')
    body.append(f'<line x1="{scale(0.0):.1f}" x2="{scale(0.0):.1f}" y1="{top - 4}" y2="{height - bottom + 4}" '
                f'stroke="#6b7280"/>')
    return _svg(width, height, "plot-bars", title, body)


def _axis_range(items: Sequence[Item]) -> tuple[float, float]:
    """Cover every mean and 0; CIs extend the axis only up to twice the means' span (few seeds give huge
    t-intervals that would flatten every bar), beyond that their whiskers are cut with an arrow."""
    means = [it.value for it in items if math.isfinite(it.value)]
    lo, hi = min([0.0, *means]), max([0.0, *means])
    span = (hi - lo) or 1.0
    los = [it.lo for it in items if math.isfinite(it.lo)]
    his = [it.hi for it in items if math.isfinite(it.hi)]
    return max(min([lo, *los]), lo - span), min(max([hi, *his]), hi + span)


def _place_labels(points: list[tuple[float, float, str]], width: int) -> list[tuple[float, float, str]]:
    """Greedy label placement: the first of four spots around each point that overlaps no earlier label."""
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for px, py, text in points:
        w, h = 6.2 * len(text), 12.0
        for dx, dy in ((8, -6), (8, 14), (-8 - w, -6), (-8 - w, 14)):
            x, y = px + dx, py + dy
            box = (x, y - h + 2, x + w, y + 2)
            if x >= 0 and x + w <= width and not any(_overlap(box, other) for other in placed):
                break
        else:
            x, y = px + 8, py - 6
            box = (x, y - h + 2, x + w, y + 2)
        placed.append(box)
        out.append((x, y, text))
    return out


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scatter(items: Sequence[Item], title: str, x_label: str, y_label: str, width: int = 460,
            height: int = 300) -> str:
    """Points (x, y) with labels; the origin is the oracle (both gaps 0), drawn as a star."""
    left, right, top, bottom = 52, 16, 28, 44
    pts = [it for it in items if math.isfinite(it.x) and math.isfinite(it.y)]
    xt = nice_ticks(0.0, max([it.x for it in pts] + [1e-9]) * 1.08)
    yt = nice_ticks(0.0, max([it.y for it in pts] + [1e-9]) * 1.08)
    sx = lambda v: left + (v - xt[0]) / (xt[-1] - xt[0]) * (width - left - right)
    sy = lambda v: height - bottom - (v - yt[0]) / (yt[-1] - yt[0]) * (height - top - bottom)
    body = [f'<text x="{left}" y="16" font-weight="600" font-size="12">{escape(title)}</text>']
    for t in xt:
        body.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{height - bottom}" stroke="#e5e7eb"/>'
                    f'<text x="{sx(t):.1f}" y="{height - bottom + 14}" text-anchor="middle" fill="#6b7280">'
                    f"{_fmt(t)}</text>")
    for t in yt:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e5e7eb"/>'
                    f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" fill="#6b7280">{_fmt(t)}</text>')
    body.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="#374151">'
                f"{escape(x_label)}</text>")
    body.append(f'<text transform="translate(13,{(top + height - bottom) / 2:.1f}) rotate(-90)" '
                f'text-anchor="middle" fill="#374151">{escape(y_label)}</text>')
    ox, oy = sx(0.0), sy(0.0)
    body.append(f'<path d="{_star(ox, oy, 7)}" fill="#111827"><title>oracle (retrain): both gaps 0</title></path>')
    ordered = sorted(pts, key=lambda it: it.role == "best")  # the best drawn last, on top
    labels = _place_labels([(sx(it.x), sy(it.y), _short(it.label, 22)) for it in ordered], width)
    for it, (lx, ly, text) in zip(ordered, labels):
        color = COLORS.get(it.role, COLORS["method"])
        body.append(f'<circle class="point" cx="{sx(it.x):.1f}" cy="{sy(it.y):.1f}" r="5" fill="{color}" '
                    f'stroke="white"><title>{escape(f"{it.label}: utility gap {it.x:.3g}, privacy gap {it.y:.3g}")}'
                    f'</title></circle><text x="{lx:.1f}" y="{ly:.1f}" fill="#374151">{escape(text)}</text>')
    return _svg(width, height, "plot-scatter", title, body)


def heatmap(row_labels: Sequence[str], col_labels: Sequence[str], values: Sequence[Sequence[float]], title: str,
            floors: Sequence[float] | None = None, width: int | None = None) -> str:
    """Cells coloured by value / max(column maximum, floor): white = 0 (the oracle's value), red = the column's
    largest gap. The floor keeps a column of negligible gaps (all below it) from turning red."""
    label_w, cell_w, cell_h, top = 140, 70, 22, 78
    width = width or label_w + cell_w * max(len(col_labels), 1) + 10
    height = top + cell_h * max(len(row_labels), 1) + 10
    body = [f'<text x="4" y="16" font-weight="600" font-size="12">{escape(title)}</text>']
    for j, col in enumerate(col_labels):
        cx = label_w + j * cell_w + cell_w / 2
        body.append(f'<text transform="translate({cx - 6:.1f},{top - 6}) rotate(-35)" fill="#374151">'
                    f"{escape(_short(col, 16))}</text>")
    col_max = []
    for j in range(len(col_labels)):
        finite = [abs(r[j]) for r in values if math.isfinite(r[j])]
        floor = floors[j] if floors else 0.0
        col_max.append(max([*finite, floor]) if max([*finite, floor], default=0) > 0 else 1.0)
    for i, label in enumerate(row_labels):
        y = top + i * cell_h
        body.append(f'<text x="{label_w - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">'
                    f"{escape(_short(label, 24))}</text>")
        for j, col in enumerate(col_labels):
            v = values[i][j]
            x = label_w + j * cell_w
            if not math.isfinite(v):
                body.append(f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="#f3f4f6"/>')
                continue
            level = min(abs(v) / col_max[j], 1.0)
            body.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                        f'fill="{_heat(level)}"><title>{escape(f"{label} · {col}: {v:.4g}")}</title></rect>'
                        f'<text x="{x + cell_w / 2 - 1:.1f}" y="{y + cell_h / 2 + 3:.1f}" text-anchor="middle" '
                        f'fill="{"white" if level > 0.6 else "#111827"}">{v:.2f}</text>')
    return _svg(width, height, "plot-heatmap", title, body)


def _heat(level: float) -> str:
    """White -> amber -> red."""
    stops = [(0.0, (255, 255, 255)), (0.5, (253, 174, 97)), (1.0, (215, 48, 39))]
    for (a, ca), (b, cb) in itertools.pairwise(stops):
        if level <= b:
            t = (level - a) / (b - a)
            r, g, bl = (round(ca[k] + t * (cb[k] - ca[k])) for k in range(3))
            return f"rgb({r},{g},{bl})"
    return "rgb(215,48,39)"


def _star(cx: float, cy: float, r: float) -> str:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + k * math.pi / 5
        points.append(f"{cx + radius * math.cos(angle):.1f},{cy + radius * math.sin(angle):.1f}")
    return "M" + "L".join(points) + "Z"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
