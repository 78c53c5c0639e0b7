"""Inline SVG charts for the HTML report: drawn here as text, so the page opens offline with no script.
Labels, titles and the figures' format come from the caller (the report's language, creditbridge.i18n)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

BAR = "#3b6ea8"
WARN = "#c0392b"
AXIS = "#555"


def horizontal_bars(items: list[tuple[str, float]], *, maximum: float, unit: str = "", width: int = 640,
                    row: int = 22, label_width: int = 200, highlight_below: float | None = None,
                    title: str = "", empty: str = "no data", shown: Callable[[float], str] = "{:g}".format) -> str:
    """One bar per (label, value); values shown at the bar's end (as `shown` writes them, then `unit`).
    `highlight_below` colours low bars; `empty` is said instead of a chart without items."""
    if not items:
        return f'<p class="empty">{escape(empty)}</p>'
    plot = width - label_width - 70
    height = row * len(items) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">']
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        length = 0 if maximum <= 0 else max(0.0, min(1.0, value / maximum)) * plot
        colour = WARN if highlight_below is not None and value < highlight_below else BAR
        cut = label if len(label) <= 28 else label[:27] + "…"
        figure = escape(shown(value) + unit)
        out.append(f'<text x="{label_width - 6}" y="{y + row * 0.65:.1f}" text-anchor="end" font-size="12">'
                   f'{escape(cut)}</text>')
        out.append(f'<rect x="{label_width}" y="{y + 2}" width="{length:.1f}" height="{row - 6}" fill="{colour}">'
                   f'<title>{escape(label)}: {figure}</title></rect>')
        out.append(f'<text x="{label_width + length + 4:.1f}" y="{y + row * 0.65:.1f}" font-size="11" '
                   f'fill="{AXIS}">{figure}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(items: list[tuple[str, int]], *, width: int = 640, height: int = 220, title: str = "",
              empty: str = "no data", shown: Callable[[int], str] = str) -> str:
    """Vertical bars, one per bucket, with the count above each and the bucket label below."""
    if not items:
        return f'<p class="empty">{escape(empty)}</p>'
    top = max(v for _, v in items) or 1
    left, bottom, head = 40, 30, 18
    plot_w, plot_h = width - left - 10, height - bottom - head
    step = plot_w / len(items)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
           f'<line x1="{left}" y1="{head + plot_h}" x2="{width - 10}" y2="{head + plot_h}" stroke="{AXIS}"/>']
    for i, (label, value) in enumerate(items):
        h = value / top * plot_h
        x = left + i * step
        out.append(f'<rect x="{x + step * 0.1:.1f}" y="{head + plot_h - h:.1f}" width="{step * 0.8:.1f}" '
                   f'height="{h:.1f}" fill="{BAR}"><title>{escape(label)}: {escape(shown(value))}</title></rect>')
        if len(items) <= 40 or i % max(1, len(items) // 20) == 0:
            out.append(f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle" font-size="11">'
                       f'{escape(label)}</text>')
            out.append(f'<text x="{x + step / 2:.1f}" y="{head + plot_h - h - 4:.1f}" text-anchor="middle" '
                       f'font-size="10" fill="{AXIS}">{escape(shown(value))}</text>')
    out.append("</svg>")
    return "".join(out)
