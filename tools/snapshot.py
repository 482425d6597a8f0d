"""python -m tools.snapshot: a PNG of the Grafana dashboard, drawn from the dashboard's own queries.

Grafana cannot run everywhere the lab does, so this reads grafana/dashboards/lab.json, runs
each panel's queries against a Prometheus as Grafana 11 would send them, and draws every
panel where its gridPos puts it (timeseries, stat, text; other types are named, not drawn).
The picture says on its face that it is not a Grafana screenshot.

Grafana's built-in variables for a Prometheus datasource (Grafana 11: the frontend computes
the interval, pkg/promlib puts the variables into the query; `${__x}` is the same as `$__x`):

- interval = roundInterval(range / maxDataPoints), never below the min interval: the
  panel's `interval` if set, else the datasource's `jsonData.timeInterval` (the lab's: 2s).
  roundInterval is rangeutil.ts's table (< 15 ms: 10 ms, ... < 3.5 s: 2 s, < 7.5 s: 5 s, ...).
  maxDataPoints is the panel's own, else its width in pixels (here: its width in this picture;
  Grafana's fallback without a width is 500).
- step = max(interval, roundInterval(range / 11000)) (promlib's "safe" resolution); the
  query_range step, and start and end are floored to multiples of it.
- `$__interval` = step as Grafana's FormatInterval writes it (whole units: `2s`, `1m`);
  `$__interval_ms` = step in ms.
- `$__rate_interval` = max(interval + scrape interval, 4 x scrape interval), written as Go's
  time.Duration does (`8s`, `2m2s`); `$__rate_interval_ms` in ms.
- `$__range` = the range in whole seconds (rounded) with `s` (`900s`); `$__range_s` the
  number; `$__range_ms` the range in ms.
- Legends: every `{{ label }}` becomes that label's value, or nothing if the series lacks it;
  an empty legend names the series by its labels (`name{a="b"}`), `{}` by its query.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana" / "dashboards" / "lab.json"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

DEFAULT_MAX_DATA_POINTS = 500  # Grafana's when a panel has no width (SceneQueryRunner)
SAFE_RESOLUTION = 11000  # promlib: no more points than this per series
# Grafana's roundInterval (packages/grafana-data/src/datetime/rangeutil.ts): (below ms, becomes ms)
ROUND_INTERVAL: tuple[tuple[float, int], ...] = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
    (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
    (1814400000, 604800000), (3628800000, 2592000000),
)
YEAR_MS = 31536000000
VARIABLE_NAMES = ("__interval", "__interval_ms", "__rate_interval", "__rate_interval_ms", "__range", "__range_s",
                  "__range_ms")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
LEGEND = re.compile(r"\{\{\s*(.+?)\s*\}\}")  # promlib's legendFormatRegexp

# The picture: inches at DPI dots per inch; one gridPos row unit is ROW_IN tall.
DPI = 100
FIG_WIDTH_IN = 18.0
ROW_IN = 0.42
HEADER_IN = 0.62
MARGIN_IN = 0.15
GAP_IN = 0.08
TITLE_IN = 0.30
LEGEND_ROWS = 4  # a timeseries legend's rows at most; the rest are counted
PANEL_PADDING_PX = 8
BACKGROUND = "#f4f5f5"
CARD = "#ffffff"
BORDER = "#d8d9da"
INK = "#24292e"
MUTED = "#6e7780"
ERROR = "#c4162a"
# Grafana's classic palette, in its order
PALETTE = ("#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0", "#508642",
           "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477")
NAMED_COLORS = {"green": "#73BF69", "red": "#F2495C", "yellow": "#FADE2A", "orange": "#FF9830", "blue": "#5794F2",
                "purple": "#B877D9", "text": INK, "transparent": CARD}
# Characters the drawing font (DejaVu) lacks, and what stands in for them
GLYPH_FALLBACKS = {"ⓘ": "(i)"}
DEFAULT_THRESHOLDS: tuple[dict[str, Any], ...] = ({"color": "green", "value": None}, {"color": "red", "value": 80})


# ---- Grafana's variables ---------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration: `2s`, `500ms`, `1m30s`; a bare number is seconds."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def round_interval(interval_ms: float) -> int:
    """Grafana's roundInterval: a raw interval in ms to the nearest tidy one (2 s, 5 s, 1 m, ...)."""
    for below, rounded in ROUND_INTERVAL:
        if interval_ms < below:
            return rounded
    return YEAR_MS


def format_interval(ms: int) -> str:
    """Grafana's FormatInterval (gtime): the largest whole unit, truncated (`2s`, `1m`, `500ms`)."""
    for unit, size in (("y", YEAR_MS), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def go_duration(ms: int) -> str:
    """A duration of whole ms as Go's time.Duration.String() writes it: `8s`, `2m2s`, `1h0m0s`, `500ms`."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3600000)
    minutes, rest = divmod(rest, 60000)
    seconds = str(rest // 1000) if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def half_up(value: float) -> int:
    """Rounded half up, as Go's math.Round and JavaScript's Math.round (Python's round() goes to even)."""
    return math.floor(value + 0.5)


def variables(range_seconds: float, scrape_interval: float, max_data_points: int = DEFAULT_MAX_DATA_POINTS,
              min_interval: float | None = None) -> dict[str, str]:
    """Grafana 11's built-in variables for one panel's Prometheus queries, by name without `$`.

    min_interval: the lower limit of the interval (the datasource's timeInterval, or the
    panel's own `interval`); None: the scrape interval, as the lab's datasource says.
    """
    range_ms = half_up(range_seconds * 1000)
    scrape_ms = half_up(scrape_interval * 1000)
    lower_ms = max(1, half_up((scrape_interval if min_interval is None else min_interval) * 1000))
    interval_ms = max(round_interval(range_ms / max(1, max_data_points)), lower_ms)
    step_ms = max(interval_ms, round_interval(range_ms / SAFE_RESOLUTION))
    rate_ms = max(interval_ms + scrape_ms, 4 * scrape_ms)
    range_s = half_up(range_ms / 1000)
    return {
        "__interval": format_interval(step_ms),
        "__interval_ms": str(step_ms),
        "__rate_interval": go_duration(rate_ms),
        "__rate_interval_ms": str(rate_ms),
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__range_ms": str(range_ms),
    }


def interpolate(expr: str, values: Mapping[str, str]) -> str:
    """expr with each `$name` and `${name}` of values put in (longest names first: `$__range_s` before `$__range`)."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return expr


def step_seconds(values: Mapping[str, str]) -> float:
    """The query_range step of these variables (their `$__interval`), in seconds."""
    return int(values["__interval_ms"]) / 1000


def series_name(labels: Mapping[str, str]) -> str:
    """A series named by its labels as Prometheus writes it: `name{a="b", c="d"}`, `{}` for none."""
    name = labels.get("__name__", "")
    rest = sorted(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in labels.items()
                  if key != "__name__")
    if not rest:
        return name or "{}"
    return f"{name}{{{', '.join(rest)}}}"


def legend(legend_format: str, labels: Mapping[str, str], expr: str = "") -> str:
    """A series' display name from a target's legendFormat (Grafana's rule: a missing label becomes empty)."""
    if legend_format and legend_format != "__auto":
        name = LEGEND.sub(lambda match: labels.get(match[1], ""), legend_format)
    else:
        name = series_name(labels)
    return expr if name == "{}" and expr else name


# ---- Queries ---------------------------------------------------------------------------------------

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    """One series of a Prometheus answer: its labels and (unix time, value) points."""

    labels: Mapping[str, str]
    points: tuple[Point, ...]


class Source(Protocol):
    """Where queries go: a Prometheus, or anything that answers like one (tests)."""

    def instant(self, expr: str, at: float) -> list[Series]: ...

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]: ...


class QueryError(Exception):
    """Prometheus refused a query (bad_data, a timeout, ...)."""


def parse_result(data: Mapping[str, Any]) -> list[Series]:
    """The series of an /api/v1/query or /api/v1/query_range answer's data."""
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return [Series({}, ((float(result[0]), float(result[1])),))]
    if kind == "vector":
        return [Series(dict(s["metric"]), ((float(s["value"][0]), float(s["value"][1])),)) for s in result]
    if kind == "matrix":
        return [Series(dict(s["metric"]), tuple((float(t), float(v)) for t, v in s["values"])) for s in result]
    raise QueryError(f"cannot draw a {kind} result")


@dataclass(frozen=True)
class Prometheus:
    """A Source that asks a Prometheus's HTTP API."""

    url: str
    timeout: float = 10.0

    def _get(self, path: str, params: Mapping[str, str]) -> list[Series]:
        address = f"{self.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                answer = json.load(exc)
            except ValueError:
                raise QueryError(f"HTTP {exc.code}") from exc
        if answer.get("status") != "success":
            raise QueryError(f"{answer.get('errorType', 'error')}: {answer.get('error', answer)}")
        return parse_result(answer["data"])

    def instant(self, expr: str, at: float) -> list[Series]:
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}"})


@dataclass(frozen=True)
class Window:
    """The dashboard's time range and the intervals its variables come from."""

    start: float
    end: float
    scrape_interval: float
    min_interval: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Drawn:
    """One series as a panel shows it: its display name and points."""

    name: str
    points: tuple[Point, ...]

    def finite(self) -> list[Point]:
        return [(t, v) for t, v in self.points if math.isfinite(v)]


@dataclass
class PanelData:
    """What a panel's queries returned, and what it needs."""

    panel: Mapping[str, Any]
    values: dict[str, str] = field(default_factory=dict)
    series: list[Drawn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return any(s.finite() for s in self.series)

    @property
    def no_value(self) -> str | None:
        value = self.panel.get("fieldConfig", {}).get("defaults", {}).get("noValue")
        return None if value is None else str(value)

    @property
    def needs_data(self) -> bool:
        """A panel with queries must show data unless it declares a fallback (noValue); text never does."""
        return bool(targets(self.panel)) and self.panel.get("type") not in ("text", "row") and self.no_value is None


def targets(panel: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The panel's queries that Grafana runs (not hidden, not empty)."""
    return [t for t in panel.get("targets", []) if t.get("expr") and not t.get("hide")]


def panel_width_px(panel: Mapping[str, Any]) -> int:
    """The panel's width in pixels in this picture: what Grafana takes for maxDataPoints."""
    width = panel.get("gridPos", {}).get("w", 24) / 24 * (FIG_WIDTH_IN - 2 * MARGIN_IN) * DPI
    return max(1, round(width) - 2 * PANEL_PADDING_PX)


def panel_variables(panel: Mapping[str, Any], window: Window) -> dict[str, str]:
    """The variables Grafana puts into this panel's queries over window."""
    own = panel.get("interval")
    lower = parse_duration(own) if own and not str(own).startswith("$") else window.min_interval
    points = int(panel.get("maxDataPoints") or panel_width_px(panel))
    return variables(window.seconds, window.scrape_interval, points, lower)


def align(at: float, step: float) -> float:
    """A time floored to a multiple of step, as promlib aligns a range query."""
    return math.floor(at / step) * step


def fetch_target(target: Mapping[str, Any], source: Source, window: Window, values: Mapping[str, str]) -> list[Drawn]:
    """One target's series: an instant query at the end, or a range query over the window."""
    expr = interpolate(str(target["expr"]), values)
    if target.get("instant") and not target.get("range"):
        found = source.instant(expr, window.end)
    else:
        step = step_seconds(values)
        found = source.range(expr, align(window.start, step), align(window.end, step), step)
    return [Drawn(legend(str(target.get("legendFormat", "")), s.labels, expr), s.points) for s in found]


def fetch(panel: Mapping[str, Any], source: Source, window: Window) -> PanelData:
    """Every query of one panel, run; a refused query is recorded, not raised."""
    data = PanelData(panel, panel_variables(panel, window))
    for target in targets(panel):
        try:
            data.series.extend(fetch_target(target, source, window, data.values))
        except QueryError as exc:
            data.errors.append(f"{target.get('refId', '?')}: {exc}")
    return data


# ---- Values as Grafana writes them -----------------------------------------------------------------


def fixed(value: float, decimals: int | None = None) -> str:
    """A number with about two significant digits (Grafana's automatic decimals), no trailing zeros."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if decimals is None:
        decimals = 0 if value == int(value) else min(6, max(0, 1 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def scaled(value: float, factor: float, suffixes: Sequence[str]) -> str:
    """value divided by factor until it fits, with the matching suffix (Grafana's scaledUnits)."""
    index = 0
    while abs(value) >= factor and index < len(suffixes) - 1:
        value /= factor
        index += 1
    return fixed(value) + suffixes[index]


def seconds_text(value: float) -> str:
    """Grafana's `s` unit: ns, µs, ms, s, min, hour, day, week, year."""
    size = abs(value)
    if size == 0:
        return "0 s"
    for below, factor, suffix in ((1e-6, 1e9, " ns"), (1e-3, 1e6, " µs"), (1, 1e3, " ms"), (60, 1, " s"),
                                  (3600, 1 / 60, " min"), (86400, 1 / 3600, " hour"), (604800, 1 / 86400, " day"),
                                  (31536000, 1 / 604800, " week")):
        if size < below:
            return fixed(value * factor) + suffix
    return fixed(value / 31536000) + " year"


def format_value(value: float, unit: str | None) -> str:
    """A value in a panel's unit (s, ms, reqps, short, percent, percentunit, bytes, none; others as a suffix)."""
    if not math.isfinite(value):
        return fixed(value)
    unit = unit or "none"
    if unit == "s":
        return seconds_text(value)
    if unit == "ms":
        return seconds_text(value / 1000)
    if unit in ("reqps", "rps"):
        return scaled(value, 1000, (" req/s", "K req/s", "M req/s", "B req/s"))
    if unit == "short":
        return scaled(value, 1000, ("", " K", " Mil", " Bil", " Tri"))
    if unit == "percentunit":
        return fixed(value * 100) + "%"
    if unit == "percent":
        return fixed(value) + "%"
    if unit in ("bytes", "decbytes"):
        return scaled(value, 1024, (" B", " KiB", " MiB", " GiB", " TiB"))
    return fixed(value) if unit == "none" else f"{fixed(value)} {unit}"


def threshold_color(panel: Mapping[str, Any], value: float) -> str:
    """The colour of value by the panel's thresholds (Grafana's default: green, red from 80)."""
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps") or DEFAULT_THRESHOLDS
    color = steps[0].get("color", "green")
    for step in steps[1:]:
        if step.get("value") is not None and math.isfinite(value) and value >= step["value"]:
            color = step.get("color", color)
    return NAMED_COLORS.get(color, color if str(color).startswith("#") else NAMED_COLORS["green"])


# ---- Markdown, simply ------------------------------------------------------------------------------


def inline(text: str) -> str:
    """Markdown inline marks removed: bold, code, links; headings' #."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    for glyph, fallback in GLYPH_FALLBACKS.items():
        text = text.replace(glyph, fallback)
    return re.sub(r"^#+\s*", "", text.replace("**", "").replace("`", "")).strip()


def markdown_blocks(content: str) -> list[tuple[str, list[str]]]:
    """("para", [lines]) and ("table", [rows]) blocks of a markdown text, in order."""
    blocks: list[tuple[str, list[str]]] = []
    for line in content.splitlines():
        stripped = line.strip()
        kind = "table" if stripped.startswith("|") else "para"
        if not stripped:
            blocks.append(("break", []))
        elif blocks and blocks[-1][0] == kind and not stripped.startswith("#"):
            blocks[-1][1].append(stripped)
        else:
            blocks.append((kind, [stripped]))
    return [(kind, lines) for kind, lines in blocks if kind != "break"]


def table_lines(rows: Sequence[str]) -> list[str]:
    """A markdown table as aligned monospace rows, a rule under the header, separator rows dropped."""
    cells = [[inline(cell) for cell in row.strip().strip("|").split("|")] for row in rows]
    cells = [row for row in cells if not all(re.fullmatch(r":?-+:?", cell) for cell in row)]
    if not cells:
        return []
    columns = max(len(row) for row in cells)
    cells = [row + [""] * (columns - len(row)) for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(columns)]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    return [lines[0], "─" * max(len(line) for line in lines), *lines[1:]]


@dataclass(frozen=True)
class TextLine:
    text: str
    mono: bool = False
    gap_before: bool = False


def text_layout(content: str, width_in: float, fontsize: float) -> list[TextLine]:
    """The lines of a markdown text at fontsize, wrapped to width_in (tables kept whole, monospace)."""
    chars = max(10, int(width_in * 72 / (fontsize * 0.55)))
    lines: list[TextLine] = []
    for kind, block in markdown_blocks(content):
        if kind == "table":
            body = table_lines(block)
        else:
            body = textwrap.wrap(" ".join(inline(line) for line in block), chars) or [""]
        lines.extend(TextLine(text, kind == "table", i == 0 and bool(lines)) for i, text in enumerate(body))
    return lines


def fit_text(content: str, width_in: float, height_in: float) -> tuple[float, list[TextLine]]:
    """The largest font size (10 pt down to 5) at which the text fits the box, and its lines."""
    fontsize, lines = 5.0, text_layout(content, width_in, 5.0)
    for size in (10, 9.5, 9, 8.5, 8, 7.5, 7, 6.5, 6, 5.5, 5):
        laid = text_layout(content, width_in, size)
        height = line_height(size) * (len(laid) + 0.5 * sum(line.gap_before for line in laid))
        widest = max((len(line.text) * size * 0.62 / 72 for line in laid if line.mono), default=0)
        if height <= height_in and widest <= width_in:
            return size, laid
    return fontsize, lines


def line_height(fontsize: float) -> float:
    return fontsize * 1.4 / 72


# ---- Drawing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A rectangle in inches from the figure's top-left corner."""

    left: float
    top: float
    width: float
    height: float

    def inset(self, left: float = 0, top: float = 0, right: float = 0, bottom: float = 0) -> Box:
        return Box(self.left + left, self.top + top, max(0.05, self.width - left - right),
                   max(0.05, self.height - top - bottom))

    def rect(self, fig_width: float, fig_height: float) -> tuple[float, float, float, float]:
        """(left, bottom, width, height) in figure fractions, for add_axes."""
        return (self.left / fig_width, 1 - (self.top + self.height) / fig_height, self.width / fig_width,
                self.height / fig_height)


def panel_box(panel: Mapping[str, Any]) -> Box:
    """Where gridPos puts a panel: x/24 of the width, ROW_IN inches per row unit."""
    grid = panel.get("gridPos", {})
    column = (FIG_WIDTH_IN - 2 * MARGIN_IN) / 24
    return Box(MARGIN_IN + grid.get("x", 0) * column + GAP_IN / 2, HEADER_IN + grid.get("y", 0) * ROW_IN + GAP_IN / 2,
               grid.get("w", 24) * column - GAP_IN, grid.get("h", 8) * ROW_IN - GAP_IN)


class Canvas:
    """The figure, with axes placed by Box in inches."""

    def __init__(self, height_in: float) -> None:
        from matplotlib.figure import Figure

        self.height = height_in
        self.figure = Figure(figsize=(FIG_WIDTH_IN, height_in), dpi=DPI, facecolor=BACKGROUND)

    def axes(self, box: Box, card: bool = True) -> Any:
        """Axes over box; card: a blank panel whose data coordinates are inches from its top-left."""
        ax = self.figure.add_axes(box.rect(FIG_WIDTH_IN, self.height))
        if card:
            ax.set_xlim(0, box.width)
            ax.set_ylim(box.height, 0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor(CARD)
            for spine in ax.spines.values():
                spine.set_color(BORDER)
        return ax


def card(canvas: Canvas, panel: Mapping[str, Any], note: str = "") -> tuple[Any, Box]:
    """A panel's card with its title; the box below the title, relative to the card."""
    box = panel_box(panel)
    ax = canvas.axes(box)
    title = str(panel.get("title") or "")
    if title:
        ax.text(0.1, 0.07, title, fontsize=9.5, fontweight="bold", color=INK, va="top", ha="left", clip_on=True)
    if note:
        ax.text(box.width - 0.1, 0.08, note, fontsize=7, color=ERROR, va="top", ha="right")
    return ax, Box(0, TITLE_IN if title else 0.04, box.width, box.height - (TITLE_IN if title else 0.04))


def centered(ax: Any, inner: Box, text: str, color: str = MUTED, fontsize: float = 11) -> None:
    lines = textwrap.wrap(text, max(12, int(inner.width * 72 / (fontsize * 0.55)))) or [text]
    ax.text(inner.left + inner.width / 2, inner.top + inner.height / 2, "\n".join(lines[:6]), fontsize=fontsize,
            color=color, ha="center", va="center")


def empty_text(data: PanelData) -> tuple[str, str]:
    """What a panel without data shows: its noValue, else Grafana's "No data" (and any query error)."""
    if data.errors and data.no_value is None:
        return "No data — " + "; ".join(data.errors), ERROR
    return (data.no_value, INK) if data.no_value is not None else ("No data", MUTED)


def error_note(data: PanelData) -> str:
    """The title line's warning when a query failed (the progress line names the error)."""
    if not data.errors:
        return ""
    return f"⚠ {len(data.errors)} {'query' if len(data.errors) == 1 else 'queries'} failed"


def legend_layout(names: Sequence[str], width_in: float, fontsize: float = 7) -> tuple[list[tuple[float, int]], int]:
    """Where each legend entry goes, flowing left to right and wrapping: (x inches, row), and the rows."""
    places, x, row = [], 0.0, 0
    for name in names:
        entry = 0.3 + len(name) * fontsize * 0.56 / 72 + 0.2
        if x > 0 and x + entry > width_in:
            x, row = 0.0, row + 1
        places.append((x, row))
        x += entry
    return places, (row + 1 if names else 0)


def with_gaps(points: Sequence[Point], step: float) -> tuple[list[datetime], list[float]]:
    """Times and values to plot, NaN between points further apart than a step (Grafana breaks the line)."""
    times, values = [], []
    for i, (t, v) in enumerate(points):
        if i and t - points[i - 1][0] > step * 1.5:
            times.append(datetime.fromtimestamp((t + points[i - 1][0]) / 2, UTC))
            values.append(math.nan)
        times.append(datetime.fromtimestamp(t, UTC))
        values.append(v if math.isfinite(v) else math.nan)
    return times, values


def style_time_axes(ax: Any, window: Window, unit: str | None) -> None:
    from matplotlib import dates, ticker

    ax.set_xlim(datetime.fromtimestamp(window.start, UTC), datetime.fromtimestamp(window.end, UTC))
    ax.xaxis.set_major_locator(dates.AutoDateLocator(tz=UTC, minticks=3, maxticks=7))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M" if window.seconds <= 86400 else "%m-%d %H:%M",
                                                     tz=UTC))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: format_value(value, unit)))
    ax.tick_params(labelsize=7, colors=MUTED, length=2)
    ax.grid(True, color="#ebebec", linewidth=0.6)
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_timeseries(canvas: Canvas, data: PanelData, window: Window) -> None:
    panel = data.panel
    ax, inner = card(canvas, panel, error_note(data))
    if not data.has_data:
        centered(ax, inner, *empty_text(data))
        return
    drawn = [s for s in data.series if s.finite()]
    places, rows = legend_layout([s.name for s in drawn], inner.width - 0.3)
    rows = min(rows, LEGEND_ROWS)
    legend_in = rows * 0.16 + 0.06
    plot = canvas.axes(panel_box(panel).inset(0.72, inner.top + 0.04, 0.15, 0.24 + legend_in), card=False)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    step = step_seconds(data.values)
    for i, series in enumerate(drawn):
        color = PALETTE[i % len(PALETTE)]
        times, values = with_gaps(series.points, step)
        plot.plot(times, values, color=color, linewidth=max(0.8, custom.get("lineWidth", 1) * 0.7))
        if custom.get("fillOpacity"):
            plot.fill_between(times, values, 0, color=color, alpha=custom["fillOpacity"] / 100, linewidth=0)
        x, row = places[i]
        y = inner.top + inner.height - legend_in + 0.09 + row * 0.16
        if row < LEGEND_ROWS:
            ax.plot([0.15 + x, 0.35 + x], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
            ax.text(0.4 + x, y, series.name, fontsize=7, color=INK, va="center", ha="left")
    if hidden := sum(row >= LEGEND_ROWS for _, row in places):
        ax.text(inner.width - 0.1, 0.22 if data.errors else 0.08, f"legend: {hidden} more series not listed",
                fontsize=7, color=MUTED, va="top", ha="right")
    style_time_axes(plot, window, unit)
    finite = [v for s in drawn for _, v in s.finite()]
    if min(finite) >= 0:
        plot.set_ylim(0, max(finite) * 1.1 or 1)


def stat_cells(n: int, inner: Box) -> list[Box]:
    """n cells over the box: side by side or stacked, whichever keeps each cell about twice as wide as tall."""
    def misfit(cols: int) -> float:
        return abs(math.log((inner.width / cols) / (inner.height / math.ceil(n / cols)) / 2))

    best = min(range(1, n + 1), key=misfit)
    rows = math.ceil(n / best)
    width, height = inner.width / best, inner.height / rows
    return [Box(inner.left + (i % best) * width, inner.top + (i // best) * height, width, height) for i in range(n)]


def fitted(text: str, width_in: float, height_in: float, largest: float) -> float:
    """A font size at which text fills about the box's width without overflowing its height."""
    by_width = width_in * 72 / (max(1, len(text)) * 0.6)
    return max(6.0, min(largest, by_width, height_in * 72 * 0.6))


def stat_values(data: PanelData) -> list[tuple[str, float]]:
    """(name, value) of each series: the last non-null value (reduceOptions lastNotNull)."""
    found = []
    for series in data.series:
        finite = series.finite()
        if finite:
            found.append((series.name, finite[-1][1]))
    return found


def draw_stat(canvas: Canvas, data: PanelData) -> None:
    panel = data.panel
    ax, inner = card(canvas, panel, error_note(data))
    values = stat_values(data)
    if not values:
        text, color = empty_text(data)
        centered(ax, inner, text, color, fitted(text, inner.width - 0.2, inner.height, 20))
        return
    mode = panel.get("options", {}).get("textMode", "auto")
    if mode == "auto":  # Grafana: the name too when there are several values
        mode = "value_and_name" if len(values) > 1 else "value"
    for cell, (name, value) in zip(stat_cells(len(values), inner.inset(0.08, 0.02, 0.08, 0.08)), values):
        stat_cell(ax, panel, cell.inset(0.03, 0.03, 0.03, 0.03), name, value, mode)


def stat_cell(ax: Any, panel: Mapping[str, Any], box: Box, name: str, value: float, mode: str) -> None:
    """One value of a stat panel: a rounded box in its threshold colour, the name and/or the value in it."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((box.left, box.top), box.width, box.height, boxstyle="round,pad=0,rounding_size=0.05",
                                facecolor=threshold_color(panel, value), edgecolor="none"))
    shown = format_value(value, panel.get("fieldConfig", {}).get("defaults", {}).get("unit"))
    middle, width = box.left + box.width / 2, box.width - 0.1
    style = {"color": "white", "ha": "center", "va": "center"}
    if mode == "value_and_name":
        ax.text(middle, box.top + box.height * 0.3, name, fontsize=fitted(name, width, box.height / 3, 11), **style)
        ax.text(middle, box.top + box.height * 0.66, shown, fontsize=fitted(shown, width, box.height / 2, 28),
                fontweight="bold", **style)
    else:
        text = name if mode == "name" else shown
        largest = 20 if mode == "name" else 30
        lines = wrapped(text, width)
        size = min(fitted(line, width, box.height / len(lines), largest) for line in lines)
        ax.text(middle, box.top + box.height / 2, "\n".join(lines), fontsize=size, fontweight="bold", **style)


def wrapped(text: str, width_in: float, smallest: float = 6.0) -> list[str]:
    """text in as few lines as keep it within width_in at the smallest font (a long culprit's name)."""
    chars = max(8, int(width_in * 72 / (smallest * 0.6)))
    return textwrap.wrap(text, chars, break_long_words=True) or [text]


def draw_text(canvas: Canvas, panel: Mapping[str, Any]) -> None:
    ax, inner = card(canvas, panel)
    box = inner.inset(0.12, 0.06, 0.12, 0.04)
    content = str(panel.get("options", {}).get("content", ""))
    fontsize, lines = fit_text(content, box.width, box.height)
    y = box.top
    for line in lines:
        if line.gap_before:
            y += line_height(fontsize) * 0.5
        ax.text(box.left, y, line.text, fontsize=fontsize, color=INK, va="top", ha="left",
                family="monospace" if line.mono else "sans-serif", clip_on=True)
        y += line_height(fontsize)


def draw_row(canvas: Canvas, panel: Mapping[str, Any]) -> None:
    box = panel_box(panel)
    ax = canvas.axes(box, card=False)
    ax.axis("off")
    title = str(panel.get("title") or "")
    if panel.get("collapsed"):
        title += f"  (collapsed: {len(panel.get('panels', []))} panels not shown)"
    ax.text(0, 0.5, title, fontsize=12, fontweight="bold", color=INK, va="center", ha="left")


def draw_other(canvas: Canvas, data: PanelData) -> None:
    ax, inner = card(canvas, data.panel)
    centered(ax, inner, f"panel type {data.panel.get('type')} is not drawn", MUTED, 9)


def draw_panel(canvas: Canvas, data: PanelData, window: Window) -> None:
    kind = data.panel.get("type")
    if kind == "timeseries":
        draw_timeseries(canvas, data, window)
    elif kind == "stat":
        draw_stat(canvas, data)
    elif kind == "text":
        draw_text(canvas, data.panel)
    elif kind == "row":
        draw_row(canvas, data.panel)
    else:
        draw_other(canvas, data)


def utc(at: float, fmt: str) -> str:
    return datetime.fromtimestamp(at, UTC).strftime(fmt)


def header(title: str, prometheus: str, window: Window) -> str:
    """The figure's first line: what it is drawn from, over which time, and that it is not Grafana's."""
    start = utc(window.start, "%Y-%m-%d %H:%M:%S")
    end = utc(window.end, "%H:%M:%S" if utc(window.start, "%F") == utc(window.end, "%F") else "%Y-%m-%d %H:%M:%S")
    return (f"{title} — drawn from the dashboard's own queries against {prometheus}, {start}–{end} UTC; "
            "not a Grafana screenshot")


def variables_note(results: Sequence[PanelData]) -> str:
    """The second header line: the variables the queries got (per panel width where they differ)."""
    seen: dict[tuple[str, ...], None] = {}
    for data in results:
        if targets(data.panel):
            names = ("__interval", "__rate_interval", "__range")
            seen[tuple(f"${name}={data.values[name]}" for name in names)] = None
    sets = ["  ".join(values) for values in seen]
    return ("Grafana 11's variables, as put into the queries: " + " | ".join(sets) if sets else "") + \
        "   ·   query_range step = $__interval; stat panels: instant queries at the end of the range"


def draw(dashboard: Mapping[str, Any], results: Sequence[PanelData], window: Window, prometheus: str,
         out: Path) -> Path:
    """The whole dashboard into one PNG at out."""
    from matplotlib import rc_context

    with rc_context({"text.parse_math": False, "font.family": "DejaVu Sans", "axes.unicode_minus": False}):
        return render(dashboard, results, window, prometheus, out)


def render(dashboard: Mapping[str, Any], results: Sequence[PanelData], window: Window, prometheus: str,
           out: Path) -> Path:
    bottom = max((p.get("gridPos", {}).get("y", 0) + p.get("gridPos", {}).get("h", 8) for p in dashboard["panels"]),
                 default=1)
    canvas = Canvas(HEADER_IN + bottom * ROW_IN + MARGIN_IN)
    canvas.figure.text(MARGIN_IN / FIG_WIDTH_IN, 1 - 0.1 / canvas.height, header(str(dashboard.get("title", "")),
                       prometheus, window), fontsize=12.5, fontweight="bold", color=INK, va="top", ha="left")
    canvas.figure.text(MARGIN_IN / FIG_WIDTH_IN, 1 - 0.38 / canvas.height, variables_note(results), fontsize=8.5,
                       color=MUTED, va="top", ha="left")
    for data in results:
        draw_panel(canvas, data, window)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.figure.savefig(out, dpi=DPI, facecolor=BACKGROUND)
    return out


# ---- The command -----------------------------------------------------------------------------------


def lab_intervals(prometheus_config: Path = PROMETHEUS_CONFIG,
                  datasources: Path = DATASOURCES) -> tuple[float, float]:
    """(scrape interval from prometheus.yml, min interval: the Prometheus datasource's jsonData.timeInterval)."""
    config = yaml.safe_load(prometheus_config.read_text())
    scrape = parse_duration(config.get("global", {}).get("scrape_interval", "1m"))  # Prometheus's default
    sources = yaml.safe_load(datasources.read_text()).get("datasources", [])
    source: dict[str, Any] = next((s for s in sources if s.get("type") == "prometheus"), {})
    interval = (source.get("jsonData") or {}).get("timeInterval")
    return scrape, parse_duration(interval) if interval else 0.001  # unset: Grafana's 1 ms low limit


def summary(data: PanelData) -> str:
    """One progress line's verdict on a panel."""
    kind = data.panel.get("type")
    if kind == "text":
        return "text"
    if kind == "row":
        return "heading"
    if not targets(data.panel):
        return "no queries"
    if data.has_data:
        verdict = f"{sum(bool(s.finite()) for s in data.series)} series"
    else:
        verdict = f"no data, shows {data.no_value!r} (noValue)" if data.no_value is not None else "NO DATA"
    extra = "" if kind in ("timeseries", "stat") else f"; panel type {kind} is not drawn"
    return verdict + "".join(f"; error {e}" for e in data.errors) + extra


def panel_name(panel: Mapping[str, Any]) -> str:
    return str(panel.get("title") or f"panel {panel.get('id', '?')} ({panel.get('type')})")


def snapshot(dashboard: Mapping[str, Any], source: Source, window: Window, prometheus: str, out: Path,
             progress: Callable[[str], None] = print) -> list[PanelData]:
    """Run every panel's queries (reporting each through progress), draw the PNG; the panels' data."""
    panels = list(dashboard.get("panels", []))
    results = []
    for i, panel in enumerate(panels, 1):
        data = fetch(panel, source, window) if panel.get("type") not in ("text", "row") else PanelData(panel)
        results.append(data)
        progress(f"[{i:>2}/{len(panels)}] {str(panel.get('type')):<10} {panel_name(panel)}: {summary(data)}")
    draw(dashboard, results, window, prometheus, out)
    return results


def missing(results: Sequence[PanelData]) -> list[str]:
    """The panels that must have data and drew none."""
    return [panel_name(data.panel) for data in results if data.needs_data and not data.has_data]


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.snapshot", description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="the Prometheus to query")
    parser.add_argument("--minutes", type=float, default=15,
                        help="the time range in minutes, ending at --end (the dashboard's own: 15)")
    parser.add_argument("--end", type=float, default=None, help="end of the range, unix seconds (default: now)")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD, help="the dashboard JSON")
    parser.add_argument("--out", type=Path, default=Path("dashboard.png"), help="the PNG to write")
    parser.add_argument("--require-data", action="store_true",
                        help="exit 1 if a panel without a noValue fallback drew no data")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, source: Source | None = None) -> int:
    """The command; source: where queries go instead of --prometheus (tests)."""
    args = arguments(argv)
    dashboard = json.loads(args.dashboard.read_text())
    scrape, min_interval = lab_intervals()
    end = time.time() if args.end is None else args.end
    window = Window(end - args.minutes * 60, end, scrape, min_interval)
    try:
        results = snapshot(dashboard, source or Prometheus(args.prometheus), window, args.prometheus, args.out,
                           lambda line: print(line, flush=True))
    except OSError as exc:  # refused, unreachable, timed out: nothing to draw from
        print(f"cannot query Prometheus at {args.prometheus}: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    lacking = missing(results)
    if args.require_data and lacking:
        for name in lacking:
            print(f"no data: {name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
