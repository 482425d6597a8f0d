"""The benchmark's charts: PNGs drawn with matplotlib from a results dict.

    write_charts(results, out_dir) -> the paths written, of:
      makespan.png     makespan vs N per burst label, measured and model (log-log)
      rate.png         achieved vs offered rate, both as fractions of each mode's model capacity
      latency.png      p50 and p99 latency vs offered rate, one panel per mode
      passthrough.png  req/s per configuration at zero upstream delay
      loadgen.png      req/s per load generator

A chart without data is not drawn (and not returned). Nothing drawn depends on anything but
the results (no dates, no host names read here): the same results give the same PNGs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from bench.goals import relative, rounds as round_rates  # noqa: E402
from bench.report import (  # noqa: E402
    LOADGEN_REFERENCES,
    PASSTHROUGH_REFERENCES,
    _burst_grid,
    _dict,
    _entries,
    _fraction,
    _g,
    _num,
    _rates_by_mode,
    whole_rate,
)

DPI = 110
STYLE = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.7,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.hashsalt": "bench",  # deterministic output, should anyone save SVG
}
# One color and marker per mode, the same in every chart; other burst labels take the rest.
MODE_COLORS = {"sync": "#d62728", "async": "#2ca02c", "mixed": "#ff7f0e", "threaded": "#1f77b4", "def": "#9467bd"}
MODE_MARKERS = {"sync": "o", "async": "s", "mixed": "^", "threaded": "D", "def": "v"}
SPARE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
SPARE_MARKERS = ("v", "P", "X", "<", ">", "h", "*", "p")
P50_COLOR, P99_COLOR = "#1f77b4", "#d62728"
REFERENCE_COLOR, SUBJECT_COLOR = "#9e9e9e", "#3a6ea5"


def _plain(value: float, _position: Any = None) -> str:
    """Tick labels as plain numbers (0.5, 1, 20, 1000), not powers of ten."""
    return f"{value:g}" if value >= 1e-3 else f"{value:.0e}"


def _footnote(results: dict, extra: str = "", delay: bool = True) -> str:
    machine, knobs = _dict(results.get("machine")), _dict(results.get("knobs"))
    parts = []
    if machine.get("cpus") is not None:
        parts.append(f"{machine['cpus']} cores")
    if machine.get("cpu_model"):
        parts.append(str(machine["cpu_model"])[:60])
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if delay and _num(knobs.get("delay")) is not None:
        parts.append(f"D = {_g(knobs['delay'])} s")
    caps = _dict(knobs.get("caps"))
    if delay and caps:
        parts.append(f"L = {caps.get('pool_limit', '?')}, T = {caps.get('threads', '?')}")
    if extra:
        parts.append(extra)
    if results.get("profile"):
        parts.append(f"{results['profile']} profile")
    return "  ·  ".join(parts)


def _save(fig: Figure, results: dict, path: Path, extra: str = "", delay: bool = True) -> Path:
    fig.text(0.01, 0.01, _footnote(results, extra, delay), fontsize=8.5, color="#666666", ha="left", va="bottom")
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def _label_styles(labels: Sequence[str], modes: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A (color, marker) per burst label: a mode's own for a label that is just the mode."""
    styles: dict[str, tuple[str, str]] = {}
    spare = 0
    for label in labels:
        if label in MODE_COLORS:
            styles[label] = (MODE_COLORS[label], MODE_MARKERS[label])
        else:
            mode = modes.get(label)
            styles[label] = (SPARE_COLORS[spare % len(SPARE_COLORS)],
                             MODE_MARKERS.get(mode, SPARE_MARKERS[spare % len(SPARE_MARKERS)]))
            spare += 1
    return styles


def _style_legend(ax: Any, handles: list[Line2D], **kwargs: Any) -> None:
    handles = handles + [
        Line2D([], [], color="#444444", marker="o", linestyle="-", label="measured"),
        Line2D([], [], color="#444444", linestyle="--", label="model"),
    ]
    ax.legend(handles=handles, frameon=False, **kwargs)


def makespan_chart(results: dict, path: Path) -> Path | None:
    labels, sizes, cells = _burst_grid(results)
    if not cells:
        return None
    modes = {label: b.get("mode") for (label, _), b in cells.items()}
    styles = _label_styles(labels, modes)
    fig, ax = plt.subplots(figsize=(9, 6))
    handles = []
    drawn = False
    for label in labels:
        color, marker = styles[label]
        model = [(n, _num(cells[label, n].get("model"))) for n in sizes if (label, n) in cells]
        model = [(n, y) for n, y in model if y is not None and y > 0]
        measured = [(n, _num(b.get("makespan"))) for n in sizes if (b := cells.get((label, n)))
                    and (b.get("status") or "ok") == "ok"]
        measured = [(n, y) for n, y in measured if y is not None and y > 0]
        if model:
            ax.plot(*zip(*model), color=color, linestyle="--", linewidth=1.4, alpha=0.8)
            drawn = True
        if measured:
            ax.plot(*zip(*measured), color=color, marker=marker, markersize=6, linewidth=1.6)
            drawn = True
        handles.append(Line2D([], [], color=color, marker=marker, linestyle="-", label=label))
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.grid(True, which="major")
    ax.set_xlabel("N, requests sent at the same moment")
    ax.set_ylabel("makespan, s (first send to last answer)")
    ax.set_title("Burst makespan vs N: measured and model")
    _style_legend(ax, handles, loc="upper left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, results, path, "skipped bursts: model only")


def rate_chart(results: dict, path: Path) -> Path | None:
    by_mode = _rates_by_mode(results)
    fig, ax = plt.subplots(figsize=(9, 6))
    handles: list[Line2D] = []
    xs_all: list[float] = []
    for i, (mode, rows) in enumerate(by_mode.items()):
        color = MODE_COLORS.get(mode, SPARE_COLORS[i % len(SPARE_COLORS)])
        marker = MODE_MARKERS.get(mode, SPARE_MARKERS[i % len(SPARE_MARKERS)])
        measured, model = [], []
        for r in rows:
            x, capacity = _fraction(r), _num(r.get("capacity"))
            if x is None or not capacity:
                continue
            achieved, expected = _num(r.get("achieved")), _num(_dict(r.get("model")).get("achieved"))
            if achieved is not None:
                measured.append((x, achieved / capacity))
            if expected is not None:
                model.append((x, expected / capacity))
        if not measured and not model:
            continue
        if model:
            ax.plot(*zip(*model), color=color, linestyle="--", linewidth=1.4, alpha=0.8)
        size = max(5.0, 11.0 - 2.0 * len(handles))  # hollow, each smaller: coinciding modes stay visible
        if measured:
            ax.plot(*zip(*measured), color=color, marker=marker, markersize=size, markerfacecolor="none",
                    markeredgewidth=1.8, linestyle="none")
        xs_all += [x for x, _ in measured + model]
        handles.append(Line2D([], [], color=color, marker=marker, markersize=size, markerfacecolor="none",
                              markeredgewidth=1.8, linestyle="none", label=f"{mode} measured"))
    if not handles:
        plt.close(fig)
        return None
    top = max(xs_all) * 1.05
    ax.plot([0, 1, max(top, 1.05)], [0, 1, 1], color="#999999", linewidth=1, zorder=0)
    ax.set_xlim(0, max(top, 1.05))
    ax.set_ylim(0, None)
    ax.set_xlabel("offered rate, × the mode's model capacity")
    ax.set_ylabel("achieved rate, × the mode's model capacity")
    ax.set_title("Achieved vs offered rate")
    handles.append(Line2D([], [], color="#999999", linewidth=1, label="ideal: min(offered, capacity)"))
    ax.legend(handles=handles + [Line2D([], [], color="#444444", linestyle="--", label="model")],
              frameon=False, loc="upper left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, results, path, "capacity: the model's, per mode")


def latency_chart(results: dict, path: Path) -> Path | None:
    panels = []
    for mode, rows in _rates_by_mode(results).items():
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in rows:
            x = _fraction(r)
            if x is None:
                continue
            model = _dict(r.get("model"))
            for key in ("p50", "p99"):
                for source, value in (("measured", r.get(key)), ("model", model.get(key))):
                    y = _num(value)
                    if y is not None and y > 0:
                        series.setdefault((key, source), []).append((x, y))
        if series:
            panels.append((mode, series))
    if not panels:
        return None
    columns = 1 if len(panels) == 1 else 2
    rows_n = (len(panels) + 1) // 2 if columns == 2 else 1
    fig, axes = plt.subplots(rows_n, columns, figsize=(10, 3.6 * rows_n + 1.2), sharex=True, sharey=True,
                             squeeze=False)
    delay = _num(_dict(results.get("knobs")).get("delay"))
    for ax, (mode, series) in zip(axes.flat, panels):
        for key, color, marker in (("p50", P50_COLOR, "o"), ("p99", P99_COLOR, "s")):
            if model := series.get((key, "model")):
                ax.plot(*zip(*model), color=color, linestyle="--", linewidth=1.4, alpha=0.8)
            if measured := series.get((key, "measured")):
                ax.plot(*zip(*measured), color=color, marker=marker, markersize=6, linewidth=1.2)
        ax.axvline(1.0, color="#999999", linestyle=":", linewidth=1)
        if delay:
            ax.axhline(delay, color="#999999", linestyle=":", linewidth=1)
            ax.annotate("D", (1.0, delay), xycoords=("axes fraction", "data"), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=9, color="#777777")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        ax.set_title(mode, color=MODE_COLORS.get(mode, "black"))
        ax.grid(True, which="major")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("offered rate, × model capacity")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("latency, s")
    handles = [
        Line2D([], [], color=P50_COLOR, marker="o", label="p50 measured"),
        Line2D([], [], color=P50_COLOR, linestyle="--", label="p50 model"),
        Line2D([], [], color=P99_COLOR, marker="s", label="p99 measured"),
        Line2D([], [], color=P99_COLOR, linestyle="--", label="p99 model"),
        Line2D([], [], color="#999999", linestyle=":", label="capacity; D"),
    ]
    height = fig.get_figheight()  # title and legend placed in inches from the top; tight_layout fits the rest
    fig.text(0.5, 1 - 0.12 / height, "Latency from intended send time vs offered rate", ha="center", va="top",
             fontsize=13, fontweight="bold")
    fig.legend(handles=handles, loc="upper center", ncol=5, frameon=False, bbox_to_anchor=(0.5, 1 - 0.38 / height))
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1 - 0.72 / height))
    return _save(fig, results, path)


def _bars_chart(results: dict, path: Path, entries: dict[str, dict], references: Sequence[str],
                title: str, extra: str) -> Path | None:
    bars = [(label, _num(e.get("rps"))) for label, e in entries.items()]
    bars = [(label, rps) for label, rps in bars if rps is not None]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(9.5, 1.5 + 0.6 * len(bars)))
    labels = [label for label, _ in bars]
    positions = list(range(len(bars)))
    colors = [REFERENCE_COLOR if label in references else SUBJECT_COLOR for label in labels]
    ax.barh(positions, [rps for _, rps in bars], color=colors, height=0.62)
    rounds = {label: round_rates(entries[label]) for label in labels}
    for y, label in zip(positions, labels):  # every round as a tick: how much the median hides
        if len(rounds[label]) > 1:
            ax.plot(rounds[label], [y] * len(rounds[label]), linestyle="none", marker="|", markersize=14,
                    color="black", alpha=0.6)
    ends = [max([rps, *rounds[label]]) for label, rps in bars]
    top = max(ends)
    reference = next((r for r in references if r in entries), None)
    for y, (label, rps), end in zip(positions, bars, ends):
        note = whole_rate(rps)
        times = relative(entries, label, reference) if reference and label != reference else None
        if times is not None:
            note += f"   {times:.2f}× {reference}"
        ax.text(end + top * 0.015, y, note, va="center", fontsize=10)
    ax.set_yticks(positions, labels)
    for tick, color in zip(ax.get_yticklabels(), colors):
        tick.set_color("#555555" if color == REFERENCE_COLOR else "black")
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.45)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_axisbelow(True)
    ax.grid(True, axis="x")
    ax.grid(False, axis="y")
    several = any(len(r) > 1 for r in rounds.values())
    ax.set_xlabel("requests per second" + (" (bar: median; ticks: each round)" if several else ""))
    ax.set_title(title, loc="left")
    ax.legend(handles=[Line2D([], [], color=SUBJECT_COLOR, linewidth=8, label="measured"),
                       Line2D([], [], color=REFERENCE_COLOR, linewidth=8, label="reference")],
              frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, borderaxespad=0.2)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))
    return _save(fig, results, path, extra, delay=False)


def passthrough_chart(results: dict, path: Path) -> Path | None:
    block = _dict(results.get("passthrough"))
    cores = _dict(block.get("cores"))
    extra = (f"server on core {cores.get('server')}, upstream and wrk on core {cores.get('load')}"
             if cores else "")
    return _bars_chart(results, path, _entries(block, "configs"), PASSTHROUGH_REFERENCES,
                       "Pass-through at zero upstream delay (wrk)", extra)


def loadgen_chart(results: dict, path: Path) -> Path | None:
    block = _dict(results.get("loadgen"))
    extra = f"against {block['endpoint']}" if block.get("endpoint") else ""
    return _bars_chart(results, path, _entries(block, "results"), LOADGEN_REFERENCES,
                       "Load generators: how fast each can send", extra)


CHARTS = {
    "makespan.png": makespan_chart,
    "rate.png": rate_chart,
    "latency.png": latency_chart,
    "passthrough.png": passthrough_chart,
    "loadgen.png": loadgen_chart,
}


def write_charts(results: dict, out_dir: Path) -> list[Path]:
    """Draw every chart the results have data for into out_dir; the paths written, in CHARTS order.

    A chart without data is neither written nor returned; a file of that name from an
    earlier run is left as it was.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = _dict(results)
    written = []
    with plt.rc_context(STYLE):
        for name, draw in CHARTS.items():
            path = draw(results, out_dir / name)
            if path is not None:
                written.append(path)
    return written
