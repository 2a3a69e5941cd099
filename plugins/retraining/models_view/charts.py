"""Small self-contained SVG line charts (no JavaScript, no asset fetched from anywhere)."""

from __future__ import annotations

from html import escape

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def line_chart(series: dict[str, list[float]], *, title: str, y_label: str, width: int = 640, height: int = 320) -> str:
    """One polyline per series over its index (epoch 1..n), with axes, ticks and a legend."""
    left, right, top, bottom = 56, 150, 28, 40
    values = [v for points in series.values() for v in points if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    longest = max((len(points) for points in series.values()), default=1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / max(longest - 1, 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'font-family="sans-serif" font-size="11" role="img" aria-label="{escape(title)}">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
           f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">epoch</text>',
           f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" text-anchor="middle">'
           f'{escape(y_label)}</text>']
    for k in range(5):
        v = low + (high - low) * k / 4
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>'
                   f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="#eee"/>')
    for i in sorted({0, longest - 1, (longest - 1) // 2}):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{i + 1}</text>')
    for n, (label, points) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(points) if v is not None)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        ly = top + 14 * n + 6
        out.append(f'<line x1="{left + plot_w + 12}" y1="{ly}" x2="{left + plot_w + 30}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="3"/><text x="{left + plot_w + 34}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
