"""Charts as inline SVG, drawn on the server: no chart library, no CDN, nothing fetched by the browser."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def colour(key: str, keys: Sequence[str]) -> str:
    return PALETTE[list(keys).index(key) % len(PALETTE)] if key in keys else PALETTE[-1]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    return float(((int(value) // step) + 1) * step)


def line_chart(series: dict[str, Sequence[float]], labels: Sequence[str], title: str, width: int = 560,
               height: int = 180, unit: str = "") -> str:
    """One line per series over shared x labels (e.g. minutes); a legend under it."""
    left, right, top, bottom = 44, 10, 22, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max((len(v) for v in series.values()), default=0)
    top_value = _nice_max(max((max(v) for v in series.values() if v), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT}><title>{escape(title)}</title>',
             f'<text x="{left}" y="14" font-weight="600">{escape(title)}</text>']
    for i in range(3):
        y = top + plot_h * i / 2
        value = top_value * (1 - i / 2)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{value:g}{unit}</text>')
    if n > 1:
        for idx, anchor in ((0, "start"), (n // 2, "middle"), (n - 1, "end")):
            if idx < len(labels):
                x = left + plot_w * idx / (n - 1)
                parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 13}" text-anchor="{anchor}" fill="#6b7280">'
                             f'{escape(labels[idx])}</text>')
    keys = list(series)
    for key, values in series.items():
        if not values:
            continue
        step = plot_w / max(n - 1, 1)
        points = " ".join(f"{left + i * step:.1f},{top + plot_h * (1 - v / top_value):.1f}"
                          for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour(key, keys)}" stroke-width="2" points="{points}">'
                     f'<title>{escape(key)}</title></polyline>')
    x = left
    for key in keys:
        parts.append(f'<rect x="{x}" y="{height - 12}" width="10" height="10" fill="{colour(key, keys)}"/>'
                     f'<text x="{x + 14}" y="{height - 3}">{escape(key)}</text>')
        x += 24 + 7 * len(key)
    if not any(series.values()):
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#9ca3af">'
                     'no data yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, float]], title: str, width: int = 560, unit: str = "") -> str:
    """Horizontal bars, one per label, the value written at the end of each."""
    row_h, top, label_w = 20, 24, 230
    height = top + row_h * max(len(bars), 1) + 8
    top_value = _nice_max(max((v for _, v in bars), default=0))
    plot_w = width - label_w - 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT}><title>{escape(title)}</title>',
             f'<text x="0" y="14" font-weight="600">{escape(title)}</text>']
    for i, (label, value) in enumerate(bars):
        y = top + i * row_h
        w = plot_w * value / top_value
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{PALETTE[0]}"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{value:g}{unit}</text>')
    if not bars:
        parts.append(f'<text x="{label_w}" y="{top + 13}" fill="#9ca3af">nothing to show</text>')
    parts.append("</svg>")
    return "".join(parts)


def waterfall(rows: Sequence[tuple[str, str, float, float]], title: str, width: int = 900) -> str:
    """A trace's hops: (service, label, start_ms, duration_ms) rows, one bar each on a shared time axis."""
    row_h, top, label_w = 18, 26, 330
    total = max((start + dur for _, _, start, dur in rows), default=1.0) or 1.0
    height = top + row_h * max(len(rows), 1) + 20
    plot_w = width - label_w - 60
    services = sorted({service for service, *_ in rows})
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart waterfall" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" {FONT}><title>{escape(title)}</title>',
             f'<text x="0" y="14" font-weight="600">{escape(title)}</text>']
    for i in range(5):
        x = label_w + plot_w * i / 4
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{height - 16}" stroke="#e5e7eb"/>'
                     f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle" fill="#6b7280">'
                     f'{total * i / 4:.0f} ms</text>')
    for i, (service, label, start, dur) in enumerate(rows):
        y = top + i * row_h
        x = label_w + plot_w * start / total
        w = max(plot_w * dur / total, 2.0)
        text = label if len(label) <= 52 else label[:51] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(text)}</text>'
                     f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" rx="2" '
                     f'fill="{colour(service, services)}"><title>{escape(service)}: {escape(label)} '
                     f'(+{start:.1f} ms, {dur:.1f} ms)</title></rect>'
                     f'<text x="{x + w + 4:.1f}" y="{y + 12}" fill="#6b7280">{dur:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)
