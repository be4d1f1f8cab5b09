"""Small server-rendered SVG charts for the summary page: no JavaScript, no external library.

Every text that goes into the SVG is escaped; the result is marked safe for templates.
"""

import datetime as dt
import math
from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#b42318", "#2457d6", "#a45d00", "#1c7c47", "#7a3db8", "#0e7490", "#be185d", "#4d7c0f", "#57534e",
           "#c2410c", "#1e3a8a", "#854d0e", "#334155")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 44, 28, 10


def _scale(maximum: float, money: bool) -> float:
    """The top of the axis: whole counts divide into four ticks, money is shown as is."""
    if money:
        return maximum or 1
    return max(4, math.ceil(maximum / 4) * 4)


def _axis(maximum: float, money: bool) -> list[str]:
    parts = []
    plot_h = HEIGHT - BOTTOM - TOP
    for i in range(5):
        value = maximum * i / 4
        y = HEIGHT - BOTTOM - plot_h * i / 4
        label = f"${value:.3g}" if money else f"{value:.0f}"
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde1e8"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#5d6677">'
                     f'{label}</text>')
    return parts


def stacked_bars(days: list[dt.date], series: Mapping[str, Sequence[float]], labels: dict[str, str] | None = None,
                 title: str = "", money: bool = False) -> SafeString:
    """One bar per day, stacked by series, with a legend; `series` maps a key to one value per day."""
    labels = labels or {}
    keys = sorted(series, key=lambda k: -sum(series[k]))
    totals = [sum(series[k][i] for k in keys) for i in range(len(days))]
    maximum = _scale(max(totals, default=0), money)
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(days), 1)
    bar = max(step * 0.75, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 18 * ((len(keys) + 2) // 3)}" '
             f'role="img" aria-label="{escape(title)}" class="review-chart">', f"<title>{escape(title)}</title>"]
    parts += _axis(maximum, money)
    for i, day in enumerate(days):
        x = LEFT + i * step + (step - bar) / 2
        y: float = HEIGHT - BOTTOM
        for n, key in enumerate(keys):
            value = series[key][i]
            if not value:
                continue
            h = plot_h * value / maximum
            y -= h
            shown = f"${value:.4f}" if money else f"{value:g}"
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[n % len(PALETTE)]}"><title>{day:%Y-%m-%d} · '
                         f'{escape(labels.get(key, key))}: {shown}</title></rect>')
        if len(days) <= 14 or i % max(len(days) // 7, 1) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
                         f'font-size="10" fill="#5d6677">{day:%m-%d}</text>')
    for n, key in enumerate(keys):
        lx, ly = LEFT + (n % 3) * (plot_w / 3), HEIGHT + 6 + 18 * (n // 3)
        parts.append(f'<rect x="{lx:.1f}" y="{ly:.1f}" width="10" height="10" fill="{PALETTE[n % len(PALETTE)]}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly + 9:.1f}" font-size="11">{escape(labels.get(key, key))} '
                     f'({sum(series[key]):g})</text>')
    if not keys:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#5d6677">Nothing in this '
                     f'period</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text above is escaped


def horizontal_bars(rows: list[tuple[str, float]], title: str = "", money: bool = False) -> SafeString:
    """One labelled bar per row, e.g. failed cost per model."""
    maximum = max((v for _, v in rows), default=0) or 1
    width, label_w, bar_h = 400, 150, 18  # drawn half as wide as the day charts: it sits in half a page
    height = max(len(rows), 1) * (bar_h + 6) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" class="review-chart"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(rows):
        y = 5 + i * (bar_h + 6)
        w = (width - label_w - 60) * value / maximum
        shown = f"${value:.4f}" if money else f"{value:g}"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="11">{escape(label[:24])}'
                     f'</text><rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{PALETTE[0]}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 14}" font-size="11">{shown}</text>')
    if not rows:
        parts.append(f'<text x="{width / 2}" y="20" text-anchor="middle" fill="#5d6677">No runs</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text above is escaped
