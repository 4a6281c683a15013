"""Inline SVG charts for the HTML report: no script and no external file, with a legend, axis
labels and units, so that a chart reads the same on screen and on paper."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

WIDTH, HEIGHT = 760, 290
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 78  # the top margin holds the legend
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
AXIS, GRID, TEXT = "#555555", "#e3e3e3", "#222222"


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    values: tuple[float | None, ...]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _ticks(top: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values from 0 to at least `top`; `whole`: counts, so steps of 1 or more."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / count, 1.0) if whole else top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = math.ceil(step)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - value / top * PLOT_H


def _frame(
    label: str,
    ticks: Sequence[float],
    y_label: str,
    x_label: str,
    legend: Sequence[tuple[str, str]],
    body: str,
    y_format: Callable[[float], str],
    kind: str,
) -> str:
    """An svg with its title, grid, y axis, axis labels and legend around `body`."""
    top = ticks[-1] if ticks else 1.0
    parts = [
        f'<svg class="chart" data-chart="{_e(kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{_e(label)}">',
        f"<title>{_e(label)}</title>",
    ]
    for tick in ticks:
        y = _n(_y(tick, top))
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y}" y2="{y}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{y}" dy="4" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{_e(y_format(tick))}</text>'
        )
    parts.append(body)
    bottom = TOP + PLOT_H
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}" stroke="{AXIS}"/>'
        f'<text x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12" '
        f'fill="{TEXT}">{_e(x_label)}</text>'
        f'<text transform="translate(16 {TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="12" fill="{TEXT}">{_e(y_label)}</text>'
    )
    x = LEFT
    for name, color in legend:
        parts.append(
            f'<rect x="{x}" y="10" width="14" height="14" fill="{color}"/>'
            f'<text x="{x + 19}" y="21" font-size="12" fill="{TEXT}">{_e(name)}</text>'
        )
        x += 34 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _day_labels(days: Sequence[date]) -> str:
    """Dates under the bands of a day axis, at most about 16 of them."""
    band = PLOT_W / max(len(days), 1)
    step = max(1, math.ceil(len(days) / 16))
    parts = []
    for i, day in enumerate(days):
        if i % step:
            continue
        x, y = _n(LEFT + (i + 0.5) * band), TOP + PLOT_H + 12
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{y - 12}" y2="{y - 8}" stroke="{AXIS}"/>'
            f'<text transform="translate({x} {y}) rotate(-45)" text-anchor="end" '
            f'font-size="10" fill="{TEXT}">{day:%Y-%m-%d}</text>'
        )
    return "".join(parts)


def _empty(points: int) -> str:
    if points:
        return ""
    return (
        f'<text x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H / 2}" text-anchor="middle" '
        f'font-size="13" fill="{AXIS}">nothing in this period</text>'
    )


def _count(value: float) -> str:
    return f"{value:g}"


def bars(label: str, days: Sequence[date], series: Sequence[Series], y_label: str) -> str:
    """Stacked bars, one per day."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(days))]
    ticks = _ticks(max(totals, default=0), whole=True)
    top = ticks[-1]
    band = PLOT_W / max(len(days), 1)
    parts = []
    for i, day in enumerate(days):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if not value:
                continue
            y0, y1 = _y(base, top), _y(base + value, top)
            parts.append(
                f'<rect x="{_n(LEFT + i * band + band * 0.15)}" y="{_n(y1)}" '
                f'width="{_n(band * 0.7)}" height="{_n(y0 - y1)}" fill="{s.color}">'
                f"<title>{day:%Y-%m-%d}: {_e(_count(value))} {_e(s.label)}</title></rect>"
            )
            base += value
    body = "".join(parts) + _day_labels(days) + _empty(sum(1 for t in totals if t))
    legend = [(s.label, s.color) for s in series]
    return _frame(label, ticks, y_label, "day (UTC)", legend, body, _count, "bars")


def line(label: str, days: Sequence[date], series: Series, y_label: str) -> str:
    """A rate per day (0 to 1) as a line in percent; days without a value break the line."""
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    band = PLOT_W / max(len(days), 1)
    runs: list[list[tuple[float, float]]] = [[]]
    dots = []
    for i, value in enumerate(series.values):
        if value is None:
            runs.append([])
            continue
        x, y = LEFT + (i + 0.5) * band, _y(value, 1.0)
        runs[-1].append((x, y))
        dots.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4" fill="{series.color}">'
            f"<title>{days[i]:%Y-%m-%d}: {value * 100:.1f}%</title></circle>"
        )
    paths = [
        f'<polyline points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in run)}" fill="none" '
        f'stroke="{series.color}" stroke-width="2.5"/>'
        for run in runs
        if len(run) > 1
    ]
    body = "".join(paths) + "".join(dots) + _day_labels(days) + _empty(len(dots))
    return _frame(
        label,
        ticks,
        y_label,
        "day (UTC)",
        [(series.label, series.color)],
        body,
        lambda v: f"{v * 100:g}%",
        "line",
    )


def _time_axis(since: datetime, until: datetime) -> tuple[Callable[[datetime], float], str]:
    """x of a moment, and labels at midnight of every day or so."""
    span = max((until - since).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return LEFT + (moment - since).total_seconds() / span * PLOT_W

    first = datetime.combine(since.date(), datetime.min.time()) + timedelta(days=1)
    days = max(1, math.ceil(span / 86400))
    step = max(1, math.ceil(days / 16))
    parts = []
    moment = first
    while moment <= until:
        xm, y = _n(x(moment)), TOP + PLOT_H
        parts.append(
            f'<line x1="{xm}" x2="{xm}" y1="{y}" y2="{y + 4}" stroke="{AXIS}"/>'
            f'<text transform="translate({xm} {y + 12}) rotate(-45)" text-anchor="end" '
            f'font-size="10" fill="{TEXT}">{moment:%Y-%m-%d}</text>'
        )
        moment += timedelta(days=step)
    return x, "".join(parts)


def points(
    label: str,
    since: datetime,
    until: datetime,
    values: Sequence[tuple[datetime, float, str]],
    y_label: str,
    color: str,
    legend: str,
) -> str:
    """One dot per (moment, value, what it is)."""
    ticks = _ticks(max((v for _, v, _ in values), default=0))
    top = ticks[-1]
    x, axis = _time_axis(since, until)
    dots = [
        f'<circle cx="{_n(x(moment))}" cy="{_n(_y(max(value, 0), top))}" r="5" fill="{color}">'
        f"<title>{_e(what)}: {value:.1f} h</title></circle>"
        for moment, value, what in values
    ]
    body = "".join(dots) + axis + _empty(len(dots))
    return _frame(label, ticks, y_label, "time (UTC)", [(legend, color)], body, _count, "points")


def spans(
    label: str,
    since: datetime,
    until: datetime,
    items: Sequence[tuple[str, datetime, datetime, bool]],
    colors: tuple[str, str],
) -> str:
    """One horizontal bar per (name, start, end, still open), from start to end."""
    x, axis = _time_axis(since, until)
    rows = max(len(items), 1)
    height = min(22.0, PLOT_H / rows)
    parts = []
    for i, (name, start, end, still_open) in enumerate(items):
        x0, x1 = x(max(start, since)), x(min(end, until))
        y = TOP + i * height
        parts.append(
            f'<rect x="{_n(x0)}" y="{_n(y + 2)}" width="{_n(max(x1 - x0, 3))}" '
            f'height="{_n(height - 4)}" fill="{colors[0] if still_open else colors[1]}">'
            f"<title>{_e(name)}: {start:%Y-%m-%d %H:%M} to "
            f"{'now' if still_open else f'{end:%Y-%m-%d %H:%M}'}</title></rect>"
        )
        if height >= 12:  # the name right of the bar, or left of it near the right edge
            right = x1 + 4 < LEFT + PLOT_W - 160
            parts.append(
                f'<text x="{_n(x1 + 4 if right else x0 - 4)}" y="{_n(y + height / 2 + 4)}" '
                f'font-size="11" fill="{TEXT}" text-anchor="{"start" if right else "end"}">'
                f"{_e(name)}</text>"
            )
    body = "".join(parts) + axis + _empty(len(items))
    legend = [("still open", colors[0]), ("closed", colors[1])]
    return _frame(label, [], "incidents", "time (UTC)", legend, body, lambda v: "", "spans")
