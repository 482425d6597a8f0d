"""The benchmark's charts: PNGs drawn with matplotlib from a Results (bench/results.py).

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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

from bench.format import knob, whole_rate
from bench.goals import LOADGEN_REFERENCES, PASSTHROUGH_REFERENCES, relative, rounds
from bench.results import Loadgen, Passthrough, Results, Server, Summary, Tool

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

DPI = 110
STYLE: dict[RcKeyType, Any] = {
    "font.size": 11, "axes.titlesize": 13, "axes.titleweight": "bold", "axes.labelsize": 11, "legend.fontsize": 10,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "#dddddd", "grid.linewidth": 0.7, "figure.facecolor": "white",
    "savefig.facecolor": "white", "svg.hashsalt": "bench",  # hashsalt: deterministic output, should anyone save SVG
}
# One color and marker per mode, the same in every chart; other burst labels take the rest.
MODE_COLORS = {"sync": "#d62728", "async": "#2ca02c", "mixed": "#ff7f0e", "threaded": "#1f77b4", "def": "#9467bd"}
MODE_MARKERS = {"sync": "o", "async": "s", "mixed": "^", "threaded": "D", "def": "v"}
SPARE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
SPARE_MARKERS = ("v", "P", "X", "<", ">", "h", "*", "p")
QUANTILES = (("p50", "#1f77b4", "o"), ("p99", "#d62728", "s"))  # the latency chart's: color and marker of each
REFERENCE_COLOR, SUBJECT_COLOR = "#9e9e9e", "#3a6ea5"
MODEL_LINE: dict[str, Any] = {"linestyle": "--", "linewidth": 1.4, "alpha": 0.8}


def _plain(value: float, _position: Any = None) -> str:
    """Tick labels as plain numbers (0.5, 1, 20, 1000), not powers of ten."""
    return f"{value:g}" if value >= 1e-3 else f"{value:.0e}"


def _footnote(results: Results, extra: str = "", delay: bool = True) -> str:
    machine, knobs = results.machine, results.knobs
    parts = [f"{machine.cpus} cores" if machine.cpus is not None else "", (machine.cpu_model or "")[:60],
             f"Python {machine.python}" if machine.python else ""]
    if delay:
        parts.append(f"D = {knob(knobs.delay)} s" if knobs.delay is not None else "")
        caps = knobs.caps
        parts.append(f"L = {'?' if caps.pool_limit is None else caps.pool_limit}, "
                     f"T = {'?' if caps.threads is None else caps.threads}" if caps else "")
    parts += [extra, f"{results.profile} profile" if results.profile else ""]
    return "  ·  ".join(p for p in parts if p)


def _save(fig: Figure, results: Results, path: Path, extra: str = "", delay: bool = True) -> Path:
    fig.text(0.01, 0.01, _footnote(results, extra, delay), fontsize=8.5, color="#666666", ha="left", va="bottom")
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def _style(label: str, mode: str | None, spare: int) -> tuple[str, str]:
    """A (color, marker) for a line: a mode's own for a label that is just the mode, else the spare-th spare."""
    if label in MODE_COLORS:
        return MODE_COLORS[label], MODE_MARKERS[label]
    marker = MODE_MARKERS.get(mode or "", SPARE_MARKERS[spare % len(SPARE_MARKERS)])
    return SPARE_COLORS[spare % len(SPARE_COLORS)], marker


def _log_axes(ax: Any, xticks: Sequence[int] | None = None) -> None:
    if xticks is not None:
        ax.set_xscale("log")
        ax.set_xticks(xticks)
        ax.xaxis.set_major_formatter(FuncFormatter(_plain))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.grid(True, which="major")


def makespan_chart(results: Results, path: Path) -> Path | None:
    labels, sizes, cells = results.burst_grid()
    modes = results.label_modes()
    fig, ax = plt.subplots(figsize=(9, 6))
    handles, drawn, spare = [], False, 0
    for label in labels:
        mine = [(n, cells[label, n]) for n in sizes if (label, n) in cells]
        color, marker = _style(label, modes[label], spare)
        spare += label not in MODE_COLORS
        model = [(n, b.model) for n, b in mine if b.model is not None and b.model > 0]
        measured = [(n, b.makespan) for n, b in mine
                    if (b.status or "ok") == "ok" and b.makespan is not None and b.makespan > 0]
        if model:
            ax.plot(*zip(*model), color=color, **MODEL_LINE)
        if measured:
            ax.plot(*zip(*measured), color=color, marker=marker, markersize=6, linewidth=1.6)
        drawn = drawn or bool(model or measured)
        handles.append(Line2D([], [], color=color, marker=marker, linestyle="-", label=label))
    if not drawn:
        plt.close(fig)
        return None
    _log_axes(ax, sizes)
    ax.set(xlabel="N, requests sent at the same moment", ylabel="makespan, s (first send to last answer)",
           title="Burst makespan vs N: measured and model")
    ax.legend(handles=handles + [Line2D([], [], color="#444444", marker="o", linestyle="-", label="measured"),
                                 Line2D([], [], color="#444444", linestyle="--", label="model")],
              frameon=False, loc="upper left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, results, path, "skipped bursts: model only")


def rate_chart(results: Results, path: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(9, 6))
    handles: list[Line2D] = []
    xs_all: list[float] = []
    for i, (mode, rows) in enumerate(results.rates_by_mode().items()):
        color = MODE_COLORS.get(mode, SPARE_COLORS[i % len(SPARE_COLORS)])
        marker = MODE_MARKERS.get(mode, SPARE_MARKERS[i % len(SPARE_MARKERS)])
        points = [(r.fraction_of_capacity, r.achieved, (r.model or Summary()).achieved, r.capacity) for r in rows
                  if r.fraction_of_capacity is not None and r.capacity]
        measured = [(x, got / capacity) for x, got, _, capacity in points if got is not None]
        model = [(x, expected / capacity) for x, _, expected, capacity in points if expected is not None]
        if not measured and not model:
            continue
        if model:
            ax.plot(*zip(*model), color=color, **MODEL_LINE)
        hollow: dict[str, Any] = {"marker": marker, "markersize": max(5.0, 11.0 - 2.0 * len(handles)),
                                  "markerfacecolor": "none", "markeredgewidth": 1.8, "linestyle": "none"}
        # hollow, each smaller: coinciding modes stay visible
        if measured:
            ax.plot(*zip(*measured), color=color, **hollow)
        xs_all += [x for x, _ in measured + model]
        handles.append(Line2D([], [], color=color, label=f"{mode} measured", **hollow))
    if not handles:
        plt.close(fig)
        return None
    top = max(max(xs_all) * 1.05, 1.05)
    ax.plot([0, 1, top], [0, 1, 1], color="#999999", linewidth=1, zorder=0)
    ax.set_xlim(0, top)
    ax.set_ylim(0, None)
    ax.set(xlabel="offered rate, × the mode's model capacity", ylabel="achieved rate, × the mode's model capacity",
           title="Achieved vs offered rate")
    handles.append(Line2D([], [], color="#999999", linewidth=1, label="ideal: min(offered, capacity)"))
    ax.legend(handles=handles + [Line2D([], [], color="#444444", linestyle="--", label="model")],
              frameon=False, loc="upper left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, results, path, "capacity: the model's, per mode")


def _latency_series(results: Results) -> list[tuple[str, dict[tuple[str, str], list[tuple[float, float]]]]]:
    """Per mode, its (p50 or p99, measured or model) points: (× capacity, seconds), positive ones only."""
    panels = []
    for mode, rows in results.rates_by_mode().items():
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in rows:
            x, model = r.fraction_of_capacity, r.model or Summary()
            for key, source, y in (("p50", "measured", r.p50), ("p50", "model", model.p50),
                                   ("p99", "measured", r.p99), ("p99", "model", model.p99)):
                if x is not None and y is not None and y > 0:
                    series.setdefault((key, source), []).append((x, y))
        if series:
            panels.append((mode, series))
    return panels


def latency_chart(results: Results, path: Path) -> Path | None:
    panels = _latency_series(results)
    if not panels:
        return None
    columns = 1 if len(panels) == 1 else 2
    rows_n = (len(panels) + 1) // 2 if columns == 2 else 1
    fig, axes = plt.subplots(rows_n, columns, figsize=(10, 3.6 * rows_n + 1.2), sharex=True, sharey=True,
                             squeeze=False)
    delay = results.knobs.delay
    for ax, (mode, series) in zip(axes.flat, panels):
        for key, color, marker in QUANTILES:
            if model := series.get((key, "model")):
                ax.plot(*zip(*model), color=color, **MODEL_LINE)
            if measured := series.get((key, "measured")):
                ax.plot(*zip(*measured), color=color, marker=marker, markersize=6, linewidth=1.2)
        ax.axvline(1.0, color="#999999", linestyle=":", linewidth=1)
        if delay:
            ax.axhline(delay, color="#999999", linestyle=":", linewidth=1)
            ax.annotate("D", (1.0, delay), xycoords=("axes fraction", "data"), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=9, color="#777777")
        _log_axes(ax)
        ax.set_title(mode, color=MODE_COLORS.get(mode, "black"))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("offered rate, × model capacity")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("latency, s")
    handles = [Line2D([], [], color=color, marker=marker if measured else None, linestyle=None if measured else "--",
                      label=f"{key} {'measured' if measured else 'model'}")
               for key, color, marker in QUANTILES for measured in (True, False)]
    handles.append(Line2D([], [], color="#999999", linestyle=":", label="capacity; D"))
    height = fig.get_figheight()  # title and legend placed in inches from the top; tight_layout fits the rest
    fig.text(0.5, 1 - 0.12 / height, "Latency from intended send time vs offered rate", ha="center", va="top",
             fontsize=13, fontweight="bold")
    fig.legend(handles=handles, loc="upper center", ncol=5, frameon=False, bbox_to_anchor=(0.5, 1 - 0.38 / height))
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1 - 0.72 / height))
    return _save(fig, results, path)


def _bars_chart(results: Results, path: Path, entries: Mapping[str, Server] | Mapping[str, Tool],
                references: Sequence[str], title: str, extra: str) -> Path | None:
    bars = [(label, e.rps) for label, e in entries.items() if e.rps is not None]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(9.5, 1.5 + 0.6 * len(bars)))
    labels, positions = [label for label, _ in bars], list(range(len(bars)))
    colors = [REFERENCE_COLOR if label in references else SUBJECT_COLOR for label in labels]
    ax.barh(positions, [rps for _, rps in bars], color=colors, height=0.62)
    per_round = {label: rounds(entries[label]) for label in labels}
    for y, label in zip(positions, labels):  # every round as a tick: how much the median hides
        if len(per_round[label]) > 1:
            ax.plot(per_round[label], [y] * len(per_round[label]), linestyle="none", marker="|", markersize=14,
                    color="black", alpha=0.6)
    ends = [max([rps, *per_round[label]]) for label, rps in bars]
    reference = next((r for r in references if r in entries), None)
    for y, (label, rps), end in zip(positions, bars, ends):
        times = relative(entries, label, reference) if reference and label != reference else None
        note = whole_rate(rps) + (f"   {times:.2f}× {reference}" if times is not None else "")
        ax.text(end + max(ends) * 0.015, y, note, va="center", fontsize=10)
    ax.set_yticks(positions, labels)
    for tick, color in zip(ax.get_yticklabels(), colors):
        tick.set_color("#555555" if color == REFERENCE_COLOR else "black")
    ax.invert_yaxis()
    ax.set_xlim(0, max(ends) * 1.45)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_axisbelow(True)
    ax.grid(True, axis="x")
    ax.grid(False, axis="y")
    several = any(len(r) > 1 for r in per_round.values())
    ax.set_xlabel("requests per second" + (" (bar: median; ticks: each round)" if several else ""))
    ax.set_title(title, loc="left")
    ax.legend(handles=[Line2D([], [], color=SUBJECT_COLOR, linewidth=8, label="measured"),
                       Line2D([], [], color=REFERENCE_COLOR, linewidth=8, label="reference")],
              frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, borderaxespad=0.2)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    return _save(fig, results, path, extra, delay=False)


def passthrough_chart(results: Results, path: Path) -> Path | None:
    block = results.passthrough or Passthrough()
    extra = (f"server on core {block.cores.get('server')}, upstream and wrk on core {block.cores.get('load')}"
             if block.cores else "")
    return _bars_chart(results, path, block.configs, PASSTHROUGH_REFERENCES,
                       "Pass-through at zero upstream delay (wrk)", extra)


def loadgen_chart(results: Results, path: Path) -> Path | None:
    block = results.loadgen or Loadgen()
    return _bars_chart(results, path, block.results, LOADGEN_REFERENCES, "Load generators: how fast each can send",
                       f"against {block.endpoint}" if block.endpoint else "")


CHARTS = {"makespan.png": makespan_chart, "rate.png": rate_chart, "latency.png": latency_chart,
          "passthrough.png": passthrough_chart, "loadgen.png": loadgen_chart}


def write_charts(results: Results, out_dir: Path) -> list[Path]:
    """Draw every chart the results have data for into out_dir; the paths written, in CHARTS order.

    A chart without data is neither written nor returned; a file of that name from an
    earlier run is left as it was.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        drawn = [draw(results, out_dir / name) for name, draw in CHARTS.items()]
    return [path for path in drawn if path is not None]
