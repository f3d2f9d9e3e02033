"""Charts drawn on the server as SVG: no script, readable by screen readers (a title, and the
page shows the same numbers as a table)."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 220, 36
SERIES = (("valid", "#1b6e3a", "valid rows"), ("rejected", "#b3261e", "rejected rows"))


def upload_history_svg(points: list[dict]) -> Markup:
    """Valid and rejected rows of each upload, oldest to newest: one point per upload and series."""
    title = f"Valid and rejected rows of the last {len(points)} uploads"
    if not points:
        return Markup(f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 60" aria-label="No uploads yet"><title>No uploads yet</title>'
                      f'<text x="{PAD}" y="35">No uploads yet</text></svg>')
    top = max(max(p["valid"], p["rejected"]) for p in points) or 1
    step = (WIDTH - 2 * PAD) / max(len(points) - 1, 1)

    def xy(i: int, value: int) -> tuple[float, float]:
        return round(PAD + i * step, 1), round(HEIGHT - PAD - value / top * (HEIGHT - 2 * PAD), 1)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#555"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#555"/>',
        f'<text x="4" y="{PAD + 4}" font-size="12">{top}</text><text x="4" y="{HEIGHT - PAD + 4}" font-size="12">0</text>',
    ]
    for key, colour, label in SERIES:
        coords = [xy(i, p[key]) for i, p in enumerate(points)]
        parts.append(f'<polyline class="series {key}" fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(f"{x},{y}" for x, y in coords)}"/>')
        for (x, y), p in zip(coords, points, strict=True):
            parts.append(
                f'<circle class="point {key}" cx="{x}" cy="{y}" r="4" fill="{colour}"><title>{escape(p["received_at"])}: {p[key]} {label}</title></circle>'
            )
    legend_y = HEIGHT - 8
    for n, (key, colour, label) in enumerate(SERIES):
        x = PAD + n * 140
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/><text x="{x + 18}" y="{legend_y}" font-size="12">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stability_svg(days: list[bool]) -> Markup:
    """One cell per day, oldest first: connected (filled) or not (hollow)."""
    connected = sum(days)
    title = f"Connected on {connected} of the last {len(days)} days"
    cell = 12
    parts = [f'<svg class="stability" role="img" viewBox="0 0 {len(days) * (cell + 2)} {cell}" aria-label="{title}"><title>{title}</title>']
    for i, up in enumerate(days):
        colour = "#1b6e3a" if up else "#fff"
        parts.append(f'<rect class="day {"up" if up else "down"}" x="{i * (cell + 2)}" y="0" width="{cell}" height="{cell}" fill="{colour}" stroke="#555"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
