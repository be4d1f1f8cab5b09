"""Server-rendered SVG plots of an evaluation's matrix: no JavaScript (a strict CSP is coming), only
SVG presentation attributes, every text escaped.

- accuracy_by_size: accuracy against context length (log scale), one line per model · mode;
- accuracy_by_cost: accuracy against mean $/query (log scale), one point per cell; unpriced cells
  are left out and counted in the caption.
"""

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.review.charts import PALETTE

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 260, 48, 16, 12, 40


def _log_x(values: list[float]):
    low, high = math.log10(min(values)), math.log10(max(values))
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    width = WIDTH - LEFT - RIGHT
    return lambda v: LEFT + width * (math.log10(v) - low) / (high - low), (low, high)


def _y(accuracy: float) -> float:
    return HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * accuracy


def _frame(title: str, x_label: str, legend_rows: int) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 18 * legend_rows}" '
             f'role="img" aria-label="{escape(title)}" class="eval-chart">', f"<title>{escape(title)}</title>"]
    for i in range(5):
        y = _y(i / 4)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde1e8"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#5d6677">'
                     f"{25 * i}%</text>")
    parts.append(f'<text x="{(LEFT + WIDTH) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11" '
                 f'fill="#5d6677">{escape(x_label)}</text>')
    return parts


def _ticks(to_x, span: tuple[float, float], fmt) -> list[str]:
    parts = []
    for exponent in range(math.floor(span[0]), math.ceil(span[1]) + 1):
        if span[0] - 1e-9 <= exponent <= span[1] + 1e-9:
            x = to_x(10 ** exponent)
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" font-size="10" '
                         f'fill="#5d6677">{escape(fmt(10 ** exponent))}</text>')
    return parts


def _legend(keys: list[str]) -> list[str]:
    parts = []
    for n, key in enumerate(keys):
        x, y = LEFT + (n % 3) * 200, HEIGHT + 6 + 18 * (n // 3)
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{PALETTE[n % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="{y + 9}" font-size="11" fill="#1f2430">{escape(key)}</text>')
    return parts


def chars(value: float) -> str:
    for unit, size in (("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def accuracy_by_size(cells: list[dict]) -> SafeString | None:
    """Accuracy vs context length per model · mode; None when fewer than two sizes were measured."""
    scored = [c for c in cells if c["accuracy"] is not None and c["size"] > 0]
    if len({c["size"] for c in scored}) < 2:
        return None
    to_x, span = _log_x([c["size"] for c in scored])
    series: dict[str, list[dict]] = {}
    for c in scored:
        series.setdefault(f"{c['model']} · {c['mode']}", []).append(c)
    keys = list(series)
    parts = _frame("Accuracy vs context length", "context length (characters, log scale)", (len(keys) + 2) // 3)
    parts += _ticks(to_x, span, chars)
    for n, key in enumerate(keys):
        colour = PALETTE[n % len(PALETTE)]
        points = sorted(series[key], key=lambda c: c["size"])
        path = " ".join(f"{to_x(c['size']):.1f},{_y(c['accuracy']):.1f}" for c in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for c in points:
            parts.append(f'<circle cx="{to_x(c["size"]):.1f}" cy="{_y(c["accuracy"]):.1f}" r="3.5" fill="{colour}">'
                         f"<title>{escape(key)} at {chars(c['size'])}: {100 * c['accuracy']:.0f}% "
                         f"({c['cases']} cases)</title></circle>")
    parts += _legend(keys)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  every text above is escaped


def accuracy_by_cost(cells: list[dict]) -> tuple[SafeString | None, int]:
    """Accuracy vs mean $/query, one point per cell; (svg or None, cells left out for unknown or zero cost)."""
    priced = [c for c in cells if c["accuracy"] is not None and c["cost_usd_mean"]]
    left_out = sum(1 for c in cells if c["accuracy"] is not None and not c["cost_usd_mean"])
    if not priced:
        return None, left_out
    to_x, span = _log_x([c["cost_usd_mean"] for c in priced])
    keys = list(dict.fromkeys(f"{c['model']} · {c['mode']}" for c in priced))
    parts = _frame("Accuracy vs cost", "mean cost per query (USD, log scale)", (len(keys) + 2) // 3)
    parts += _ticks(to_x, span, lambda v: f"${v:g}")
    for c in priced:
        key = f"{c['model']} · {c['mode']}"
        colour = PALETTE[keys.index(key) % len(PALETTE)]
        parts.append(f'<circle cx="{to_x(c["cost_usd_mean"]):.1f}" cy="{_y(c["accuracy"]):.1f}" r="5" '
                     f'fill="{colour}"><title>{escape(key)} at {chars(c["size"])}: {100 * c["accuracy"]:.0f}% for '
                     f"${c['cost_usd_mean']:.4f}/query</title></circle>")
    parts += _legend(keys)
    parts.append("</svg>")
    return mark_safe("".join(parts)), left_out  # noqa: S308  every text above is escaped
