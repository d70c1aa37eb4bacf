"""Inline SVG charts for the HTML report: axes, ticks, lines, dots, reference lines and sparklines.

Every text and attribute written is escaped: labels and titles carry names from the run (candidate ids,
reward components), which are untrusted. The charts need no script and no network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from markupsafe import Markup

__all__ = ["Plot", "default_ticks", "empty_chart", "escape", "finite", "fmt_number", "nice_range", "sparkline",
           "swatch", "tick_label", "ticks"]


def fmt_number(value: Any, digits: int = 4) -> str:
    """Numbers as people read them: 4 significant digits, ``–`` for missing or NaN."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value.is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def escape(value: Any) -> str:
    """``value`` as text safe in SVG text and attribute values."""
    return html.escape(str(value), quote=True)


def nice_range(values: Iterable[float | None]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-12:
        pad = max(abs(hi) * 0.1, 1.0)
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2, 2.5, 5 times a power of ten) from ``lo`` to ``hi``."""
    raw = (hi - lo) / max(count, 1)
    if raw <= 0 or not math.isfinite(raw):
        return [lo]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    found, n = [], 0
    while first + n * step <= hi + step * 1e-9 and n < 50:
        found.append(round(first + n * step, 12))
        n += 1
    return found


def tick_label(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def default_ticks(rng: tuple[float, float]) -> list[tuple[float, str]]:
    """Round ticks across ``rng``, each labelled with its value."""
    return [(t, tick_label(t)) for t in ticks(*rng)]


class Plot:
    """A chart drawn as SVG: data ranges mapped onto a box with axes, lines, dots and reference lines."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float],
                 y2: tuple[float, float] | None = None) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = 56, (56 if y2 else 16), 14, 38
        self.xr, self.yr, self.y2r = x, y, y2
        self.parts: list[str] = []

    def px(self, value: float) -> float:
        lo, hi = self.xr
        return self.left + (value - lo) / ((hi - lo) or 1.0) * (self.width - self.left - self.right)

    def py(self, value: float, secondary: bool = False) -> float:
        lo, hi = self.y2r if secondary and self.y2r else self.yr
        return self.top + (1 - (value - lo) / ((hi - lo) or 1.0)) * (self.height - self.top - self.bottom)

    def frame(self, x_label: str, y_label: str, y2_label: str | None = None,
              x_ticks: Sequence[tuple[float, str]] | None = None,
              y_ticks: Sequence[tuple[float, str]] | None = None) -> None:
        right, bottom = self.width - self.right, self.height - self.bottom
        y_ticks = y_ticks if y_ticks is not None else default_ticks(self.yr)
        for value, label in y_ticks:
            y = self.py(value)
            self.parts.append(f'<line class="grid" x1="{self.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
            self.parts.append(f'<text class="tick" x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                              f"{escape(label)}</text>")
        if self.y2r:
            for tick in ticks(*self.y2r):
                y = self.py(tick, secondary=True)
                self.parts.append(f'<text class="tick alt" x="{right + 6}" y="{y + 4:.1f}">'
                                  f"{escape(tick_label(tick))}</text>")
        x_ticks = x_ticks if x_ticks is not None else default_ticks(self.xr)
        for value, label in x_ticks:
            x = self.px(value)
            self.parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}"/>')
            self.parts.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
                              f"{escape(label)}</text>")
        self.parts.append(f'<line class="axis" x1="{self.left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
        self.parts.append(f'<line class="axis" x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{bottom}"/>')
        self.parts.append(f'<text class="label" x="{(self.left + right) / 2:.1f}" y="{self.height - 4}" '
                          f'text-anchor="middle">{escape(x_label)}</text>')
        mid = (self.top + bottom) / 2
        self.parts.append(f'<text class="label" x="12" y="{mid:.1f}" text-anchor="middle" '
                          f'transform="rotate(-90 12 {mid:.1f})">{escape(y_label)}</text>')
        if y2_label:
            x = self.width - 8
            self.parts.append(f'<text class="label alt" x="{x}" y="{mid:.1f}" text-anchor="middle" '
                              f'transform="rotate(90 {x} {mid:.1f})">{escape(y2_label)}</text>')

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float = 2.0,
                 dash: str | None = None, secondary: bool = False, title: str | None = None,
                 step: bool = False) -> None:
        coords: list[tuple[float, float]] = []
        for n, (x, y) in enumerate(points):
            if step and n:
                coords.append((self.px(x), coords[-1][1]))
            coords.append((self.px(x), self.py(y, secondary)))
        if not coords:
            return
        if len(coords) == 1:
            self.circle(points[0][0], points[0][1], 3, colour, secondary=secondary, title=title)
            return
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        dashed = f' stroke-dasharray="{escape(dash)}"' if dash else ""
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(f'<polyline points="{text}" fill="none" stroke="{escape(colour)}" stroke-width="{width}"'
                          f' stroke-linejoin="round"{dashed}>{tip}</polyline>')

    def circle(self, x: float, y: float, r: float, fill: str, stroke: str | None = None, secondary: bool = False,
               title: str | None = None, cls: str = "dot") -> None:
        outline = f' stroke="{escape(stroke)}" stroke-width="2"' if stroke else ""
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(f'<circle class="{escape(cls)}" cx="{self.px(x):.1f}" cy="{self.py(y, secondary):.1f}" r="{r}" '
                          f'fill="{escape(fill)}"{outline}>{tip}</circle>')

    def cross(self, x: float, y: float, colour: str, title: str) -> None:
        cx, cy, s = self.px(x), self.py(y), 4
        self.parts.append(f'<path class="cross" d="M{cx - s:.1f},{cy - s:.1f}L{cx + s:.1f},{cy + s:.1f}'
                          f'M{cx - s:.1f},{cy + s:.1f}L{cx + s:.1f},{cy - s:.1f}" stroke="{escape(colour)}" '
                          f'stroke-width="2"><title>{escape(title)}</title></path>')

    def hline(self, value: float, colour: str, label: str) -> None:
        y = self.py(value)
        right = self.width - self.right
        self.parts.append(f'<line x1="{self.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{escape(colour)}" '
                          f'stroke-width="1.5" stroke-dasharray="6 4"/>')
        self.parts.append(f'<text class="ref" x="{right - 4}" y="{y - 4:.1f}" text-anchor="end" '
                          f'fill="{escape(colour)}">{escape(label)}</text>')

    def segment(self, x1: float, y1: float, x2: float, y2: float, colour: str) -> None:
        self.parts.append(f'<line x1="{self.px(x1):.1f}" x2="{self.px(x2):.1f}" y1="{self.py(y1):.1f}" '
                          f'y2="{self.py(y2):.1f}" stroke="{escape(colour)}" stroke-width="2"/>')

    def svg(self, label: str, cls: str = "chart") -> Markup:
        return Markup(
            f'<svg class="{escape(cls)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(self.parts)}</svg>"
        )


def empty_chart(message: str) -> Markup:
    return Markup(f'<p class="empty">{escape(message)}</p>')


def swatch(colour: str) -> Markup:
    return Markup(f'<svg class="swatch" width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
                  f'rx="2" fill="{escape(colour)}"/></svg>')


def sparkline(series: Sequence[Any], name: str) -> Markup:
    values = [finite(v) for v in series]
    points = [(n, v) for n, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return Markup("")
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span = (hi - lo) or 1.0
    width, height, last = 110, 24, len(values) - 1 or 1
    coords = " ".join(f"{2 + n / last * (width - 4):.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}"
                      for n, v in points)
    return Markup(f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
                  f'aria-label="{escape(name)} per checkpoint"><title>{escape(name)}: {escape(fmt_number(lo))} … {escape(fmt_number(hi))}</title>'
                  f'<polyline points="{coords}" fill="none" stroke="#4e79a7" stroke-width="1.5"/></svg>')
