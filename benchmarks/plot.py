"""A small line plot written with PIL only (no matplotlib), for the figures beside benchmarks/RESULTS.md.

    line_plot("benchmarks/mmvg-scaling.png", {"decoder step": [(8, 25.4), (16, 44.1)]},
              x_label="frames", y_label="ms", title="MMVG cost", log_x=True, log_y=True)

Axes with labelled ticks (1-2-5 steps on a linear axis; powers of ten, and 2 and 5 times them when the range spans
few decades, on a log axis), one coloured line with point markers per series, and a legend.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 720, 460
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 24, 44, 60
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
GRID, AXIS, TEXT = (225, 225, 225), (60, 60, 60), (20, 20, 20)


def _linear_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round ticks (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    count = int(math.ceil((high - first) / step - 1e-9)) + 1
    return [first + index * step for index in range(count)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten covering [low, high]; with 1, 2 and 5 times them when the range spans at most two decades."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multipliers = (1, 2, 5) if last - first <= 2 else (1,)
    ticks = [m * 10**power for power in range(first, last + 1) for m in multipliers]
    inside = [tick for tick in ticks if low <= tick <= high]
    # keep the first tick below and above the data, so the axis ends on a labelled value
    below = [tick for tick in ticks if tick < low][-1:]
    above = [tick for tick in ticks if tick > high][:1]
    return below + inside + above


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.0e}"
    return f"{value:g}"


class _Axis:
    """Maps data values to pixels along one axis (linear or log)."""

    def __init__(self, values: list[float], log: bool, pixel_start: float, pixel_end: float):
        if log and min(values) <= 0:
            raise ValueError("a log axis needs positive values")
        low, high = min(values), max(values)
        if low == high:
            low, high = (low / 2, high * 2) if log else (low - 1, high + 1)
        self.log = log
        self.ticks = _log_ticks(low, high) if log else _linear_ticks(low, high)
        self.low, self.high = self._scale(self.ticks[0]), self._scale(self.ticks[-1])
        self.pixel_start, self.pixel_end = pixel_start, pixel_end

    def _scale(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        share = (self._scale(value) - self.low) / (self.high - self.low)
        return self.pixel_start + share * (self.pixel_end - self.pixel_start)


def line_plot(
    path: str | Path,
    series: dict[str, list[tuple[float, float]]],
    x_label: str,
    y_label: str,
    title: str,
    log_x: bool = False,
    log_y: bool = False,
) -> Path:
    """Draw `series` (name -> [(x, y), ...], points joined in the given order) and save a PNG at `path`."""
    points = [point for values in series.values() for point in values]
    if not points:
        raise ValueError("nothing to plot")
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = ImageFont.load_default(size=12), ImageFont.load_default(size=15)
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    x_axis = _Axis([x for x, _ in points], log_x, left, right)
    y_axis = _Axis([y for _, y in points], log_y, bottom, top)

    for tick in x_axis.ticks:
        x = x_axis(tick)
        draw.line([(x, top), (x, bottom)], fill=GRID)
        draw.line([(x, bottom), (x, bottom + 5)], fill=AXIS)
        draw.text((x, bottom + 8), _label(tick), fill=TEXT, font=font, anchor="mt")
    for tick in y_axis.ticks:
        y = y_axis(tick)
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.line([(left - 5, y), (left, y)], fill=AXIS)
        draw.text((left - 8, y), _label(tick), fill=TEXT, font=font, anchor="rm")
    draw.rectangle([(left, top), (right, bottom)], outline=AXIS)

    draw.text(((left + right) / 2, 12), title, fill=TEXT, font=title_font, anchor="mt")
    draw.text(((left + right) / 2, HEIGHT - 14), x_label + (" (log scale)" if log_x else ""), fill=TEXT, font=font,
              anchor="mb")
    y_text = y_label + (" (log scale)" if log_y else "")
    box = draw.textbbox((0, 0), y_text, font=font)
    label = Image.new("RGB", (box[2] + 4, box[3] + 4), "white")
    ImageDraw.Draw(label).text((2, 2), y_text, fill=TEXT, font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (6, int((top + bottom - label.height) / 2)))

    colors = {name: COLORS[index % len(COLORS)] for index, name in enumerate(series)}
    for name, values in series.items():
        pixels = [(x_axis(x), y_axis(y)) for x, y in values]
        if len(pixels) > 1:
            draw.line(pixels, fill=colors[name], width=2)
        for x, y in pixels:
            draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=colors[name])

    # legend: top left inside the axes, on white
    text_width = max(draw.textlength(name, font=font) for name in series)
    draw.rectangle([(left + 6, top + 6), (left + 46 + text_width, top + 14 + 18 * len(series))], fill="white",
                   outline=GRID)
    for index, (name, color) in enumerate(colors.items()):
        legend_y = top + 16 + 18 * index
        draw.line([(left + 12, legend_y), (left + 36, legend_y)], fill=color, width=2)
        draw.ellipse([(left + 21, legend_y - 3), (left + 27, legend_y + 3)], fill=color)
        draw.text((left + 42, legend_y), name, fill=TEXT, font=font, anchor="lm")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
