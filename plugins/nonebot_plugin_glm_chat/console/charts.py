"""Bar charts drawn on the server: geometry here, SVG in the ``chart`` template macro (which
escapes every label), no JavaScript charting library."""

from __future__ import annotations

import math
from dataclasses import dataclass

PALETTE = 7  # series colours in the style sheet: .s0 ... .s6
DANGER = 7  # .s7: failures


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # colour index
    title: str  # the tooltip: label, series, value


@dataclass(frozen=True)
class Tick:
    at: float  # x for a label, y for a gridline
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int  # where the plot starts (room for the y labels)
    bottom: int  # the plot's baseline
    bars: list[Bar]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    legend: list[tuple[int, str]]  # (colour index, name)
    empty: bool


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def short_number(value: float) -> str:
    """``950``, ``1.2k``, ``3.4M``: a tick label that fits."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if value % 1 else str(int(value))


def stacked_bars(
    labels: list[str],
    series: list[tuple[str, list[int]]],
    *,
    width: int = 1100,
    height: int = 240,
    max_labels: int = 12,
    colours: list[int] | None = None,
) -> Chart:
    """One bar per label, each series stacked on the ones before it; ``colours``: each
    series' colour index (default: the palette in order)."""
    colours = colours or [number % PALETTE for number in range(len(series))]
    left, top, bottom_room = 48, 10, 24
    bottom = height - bottom_room
    plot_height = bottom - top
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    ceiling = nice_ceiling(max(totals, default=0))
    slot = (width - left - 4) / max(1, len(labels))
    bar_width = max(1.0, slot * 0.72)
    bars: list[Bar] = []
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - bar_width) / 2
        stacked = 0
        for number, (name, values) in enumerate(series):
            value = values[index]
            if value <= 0:
                continue
            y_top = bottom - (stacked + value) / ceiling * plot_height
            bar_height = value / ceiling * plot_height
            title = f"{label} · {name}：{value:,}" if len(series) > 1 else f"{label}：{value:,}"
            bars.append(Bar(x, y_top, bar_width, bar_height, colours[number], title))
            stacked += value
    every = max(1, math.ceil(len(labels) / max_labels))
    x_labels = [
        Tick(left + index * slot + slot / 2, label)
        for index, label in enumerate(labels)
        if index % every == (len(labels) - 1) % every
    ]
    y_ticks = [  # gridlines at whole counts only
        Tick(bottom - fraction * plot_height, short_number(ceiling * fraction))
        for fraction in (0, 0.25, 0.5, 0.75, 1)
        if (ceiling * fraction) % 1 == 0
    ]
    legend = [(colours[number], name) for number, (name, _) in enumerate(series)]
    return Chart(width, height, left, bottom, bars, x_labels, y_ticks, legend, not any(totals))
