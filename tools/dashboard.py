"""python -m tools.dashboard: writes grafana/dashboards/lab.json, the lab's Grafana dashboard.

The dashboard is code so that its panels, queries and texts stay readable and reviewable,
and so that its text quotes the same model (lab.model) the sender and the tests use.
Tests check that the committed JSON is what this module writes, and run every query
against a real Prometheus. `$__rate_interval` is Grafana's: the tests put a window in.
The JSON is built with grafana-foundation-sdk, Grafana's own typed builders, at its build for
Grafana 11.4 (the image compose runs): classic dashboard JSON, schemaVersion 39.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboards
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.builders import stat as stats
from grafana_foundation_sdk.builders import text as texts
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as schema
from grafana_foundation_sdk.models.text import TextMode

from lab.model import CAPACITY_FORMULAS, FORMULAS, MODES

UID = "blocking-io-lab"
DATASOURCE = {"type": "prometheus", "uid": "lab-prometheus"}
PATH = Path(__file__).resolve().parent.parent / "grafana" / "dashboards" / "lab.json"
RATE = "$__rate_interval"
RANGE = "$__range"  # the dashboard's time range, as Grafana puts it in a query


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A panel: its title, what it teaches (its ⓘ), one unit for its one axis, its queries."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int = 8
    no_value: str | None = None  # what the panel says when its queries have nothing (Grafana's noValue)


@dataclass(frozen=True)
class Graph(Panel):
    """A time series panel."""


@dataclass(frozen=True)
class Stat(Panel):
    """A stat panel of the first row, read at the dashboard's end time (instant queries)."""

    width: int = 4
    text_mode: str = "value_and_name"  # Grafana's: name | value | value_and_name


# What runs now: receiver_info of every receiver scraped within the last FRESH seconds (a
# receiver gone, or series left from before a `down`, are not) — a stat about now never lists
# a mode that has stopped. Prometheus marks a stopped target's series stale at once; the
# timestamp filter also drops series that a restarted Prometheus still holds from before.
FRESH = 10


def fresh(selector: str) -> str:
    """The series of selector scraped within the last FRESH seconds: after a `down` and an `up`,
    Prometheus still holds its last samples from before for five minutes, unmarked."""
    return f"({selector} and timestamp({selector}) > time() - {FRESH})"


RUNNING = fresh("receiver_info")
MODES_NOW = f"max by (mode) {RUNNING}"
CALLERS_NOW = f'label_replace({MODES_NOW}, "caller", "$1", "mode", "(.*)")'
TASKS = 'route="/tasks/{name}"'  # the receiver's work: not /healthz or /info
CULPRIT_WINDOW = "1m"
SCRAPE_INTERVAL = "2s"  # prometheus/prometheus.yml's
STAT_WINDOW = "15s"  # the first row's peaks: longer than the compose sender's SENDER_INTERVAL (10 s)


def now(expr: str, label: str = "mode") -> str:
    """expr's series whose `label` (mode, or upstream's caller) names a receiver that runs now: a
    sender's or upstream's series of a mode that stopped runs on at 0, and is not shown."""
    return f"({expr}) and on ({label}) {CALLERS_NOW if label == 'caller' else MODES_NOW}"


def sender_gauge(metric: str) -> str:
    """A sender's gauge per mode, for the modes running now (several senders: the highest)."""
    return now(f"max by (mode) {fresh(metric)}")


def sender_gauges(*series: tuple[str, str]) -> tuple[Query, ...]:
    """Sender gauges (metric, legend) per mode running now, each line named "<mode> <legend>"."""
    return tuple(Query(sender_gauge(metric), "{{mode}} " + legend) for metric, legend in series)


MAKESPAN_VS_MODEL = sender_gauges(("sender_burst_makespan_seconds", "measured"),
                                  ("sender_burst_predicted_makespan_seconds", "model"))


BLOCK_SECONDS = "receiver_event_loop_block_seconds_total"  # by culprit and kind (receiver/culprits.py)


def counted_rate(counter: str) -> str:
    """rate() of a counter whose series are born with what they count, per second over RATE.

    A culprit's series appears when its first block is charged, already at that block's
    seconds: rate() and increase() take the first sample as their start and would show a
    short block by a new culprit as nothing. A series born within the window counts its
    whole value instead (it started from 0), spread over the window.
    """
    return (f"(rate({counter}[{RATE}]) and {counter} offset {RATE}) "
            f"or ({counter} unless {counter} offset {RATE}) / ({RATE}_ms / 1000)")


def by_mode(expr: str) -> str:
    """A receiver series with its receiver's mode attached (from the running receivers' receiver_info)."""
    return f"{expr} * on (instance) group_left (mode) {RUNNING}"


def quantiles(metric: str, by: str, qs: tuple[float, ...], legend: str, selector: str = "",
              join: bool = False) -> tuple[Query, ...]:
    """histogram_quantile of a histogram per `by` label(s), for the modes (or callers) running now;
    join: take `mode` from receiver_info (a receiver's series without it)."""
    rate = f"rate({metric}_bucket{{{selector}}}[{RATE}])" if selector else f"rate({metric}_bucket[{RATE}])"
    if join:
        rate = by_mode(rate)
    running = "caller" if by == "caller" else "mode"
    return tuple(Query(now(f"histogram_quantile({q:g}, sum by (le, {by}) ({rate}))", running),
                       f"p{round(q * 100)} {legend}") for q in qs)


def share(failed: str, total: str, by: str) -> str:
    """failed/total per `by` (mode or caller) running now, 0 (not nothing) where nothing failed."""
    return now(f"(sum by ({by}) ({failed}) or sum by ({by}) ({total}) * 0) / sum by ({by}) ({total})", by)


MAKESPAN = (
    Graph(
        "Burst makespan: measured vs model",
        "Seconds from sending a burst of N to its last answer, and what lab/model.py predicts "
        "from the receiver's mode and caps. sync: N·D, async: D, mixed: (N+1)·D. A burst that "
        "did not reach its receiver (restarting) has no makespan: it counts in sender_bursts_failed_total.",
        "s",
        MAKESPAN_VS_MODEL,
        width=12,
    ),
    Graph(
        "Requests per second",
        "The same traffic at each hop, per mode. mixed makes two upstream calls per request, so "
        "upstream counts twice its receiver's rate.",
        "reqps",
        (Query(now(f"sum by (mode) (rate(sender_requests_total[{RATE}]))"), "sender → {{mode}}"),
         Query(f"sum by (mode) (rate(receiver_http_requests_total{{{TASKS}}}[{RATE}]))", "receiver {{mode}}"),
         Query(now(f'sum by (caller) (rate(upstream_http_requests_total{{route="/work"}}[{RATE}]))', "caller"),
               "upstream from {{caller}}")),
        width=12,
    ),
)
WAITING = (
    Graph(
        "In flight (peak over 5 s)",
        "The lesson in one panel: upstream works on 1 call at a time for a receiver that blocks "
        "(sync), on N at once for one that does not (async, threaded, def). Peaks over the last "
        "5 s, kept by each service between scrapes: a burst cannot fall between two.",
        "short",
        (Query(now(f'max by (caller) {fresh("upstream_http_requests_in_flight_peak")}', "caller"),
               "upstream from {{caller}}"),
         Query(f"max by (mode) ({by_mode('receiver_http_requests_in_flight_peak')})", "receiver {{mode}}")),
    ),
    Graph(
        "Event loop blocked (peak over 5 s)",
        "The longest each event loop went without running, over the last 5 s, the block going on "
        "included (kept between scrapes). sync and mixed hold the receiver's loop for every requests call.",
        "s",
        (Query(f"max by (mode) ({by_mode('receiver_event_loop_blocked_peak_seconds')})", "receiver {{mode}}"),
         Query("max by (job) " + fresh('{__name__=~"(sender|upstream)_event_loop_blocked_peak_seconds"}'), "{{job}}")),
    ),
    Graph(
        "What blocked the loop",
        "Share of the time each receiver's loop was stuck, by the code it was stuck in: the receiver's "
        "own function → the library call below it, sampled from a thread while the loop is blocked "
        "(LOOP_BLOCK_THRESHOLD), and whether it waited (a call: the loop thread asleep) or computed "
        "(cpu: RECEIVER_CPU_MS on the loop). sync and mixed name requests, waiting; async, threaded "
        "and def stay at none.",
        "percentunit",
        (Query(now(f'label_join(sum by (mode, culprit, kind) ({counted_rate(BLOCK_SECONDS)}), '
                   '"culprit", " · ", "culprit", "kind")') +
               f' or on (mode) label_replace({MODES_NOW} * 0, "culprit", "none", "", "")',
               "{{mode}}: {{culprit}}"),),
    ),
)
OPEN_LOOP = (
    Graph(
        "Offered vs achieved rate",
        "What the sender offers (SENDER_RATE, or N per SENDER_INTERVAL in bursts) and the answers "
        "per second it gets back. Above a mode's capacity (sync 1/D, async L/D, threaded T/D, def K/D) "
        "achieved stays at the capacity and the rest queues or is dropped.",
        "reqps",
        sender_gauges(("sender_offered_requests_per_second", "offered"),
                      ("sender_achieved_requests_per_second", "achieved")),
    ),
    Graph(
        "Latency from intended send time",
        "p50 and p99 from when each request was due, not from when it went out (as wrk2 and k6 "
        "measure): a stalled receiver cannot hide its queue from this.",
        "s",
        quantiles("sender_request_duration_seconds", "mode", (0.5, 0.99), "{{mode}}"),
    ),
    Graph(
        "Dropped and late",
        "Requests the sender dropped because SENDER_MAX_IN_FLIGHT were already waiting on that "
        "receiver, and requests it started more than 10 ms late (the sender itself falling behind).",
        "reqps",
        (Query(now(f"sum by (mode) (rate(sender_requests_dropped_total[{RATE}]))"), "{{mode}} dropped"),
         Query(now(f"sum by (mode) (rate(sender_requests_late_total[{RATE}]))"), "{{mode}} late")),
    ),
)
LATENCY = (
    Graph(
        "Latency inside the receiver",
        "From reading a /tasks request to answering it. In sync mode it looks fine (about D): "
        "the queueing happens before the read, where only the sender sees it.",
        "s",
        quantiles("receiver_http_request_duration_seconds", "mode", (0.5, 0.99), "{{mode}}", selector=TASKS),
    ),
    Graph(
        "Upstream calls: the receiver's clock vs upstream's",
        "p50 of each call to upstream as the receiver's client library timed it, beside upstream's own "
        "time for the same calls. They agree, except in mixed: an aiohttp answer that arrives while "
        "requests blocks the loop is read only when the loop runs again, so aiohttp's clock counts the "
        "wait behind the blocking calls (about (N+1)/2·D for a burst of N) while upstream answered in D. "
        "And in threaded and def with RECEIVER_CPU_MS under load: a thread back from its call waits for "
        "the GIL behind the threads that compute, and requests' clock counts that wait too.",
        "s",
        quantiles("receiver_upstream_call_duration_seconds", "mode, client", (0.5,),
                  "{{mode}} {{client}}: receiver's clock", join=True)
        + quantiles("upstream_http_request_duration_seconds", "caller", (0.5,), "{{caller}}: upstream's clock",
                    selector='route="/work"'),
    ),
    Graph(
        "Pools: busy and waiting (peak over 5 s)",
        "threaded mode's threads (RECEIVER_THREADS, T), def mode's anyio tokens (RECEIVER_THREADPOOL_TOKENS, K) "
        "and aiohttp's connections (RECEIVER_POOL_LIMIT, L): the most in use, and the most calls waiting for "
        "one, over the last 5 s. Waiting above 0 means the cap is hit: a burst of N > T takes ⌈N/T⌉·D "
        "(try RECEIVER_THREADS=2 with N = 5). aiohttp also carries the receiver's /info call to upstream "
        "(one a burst: the sender asks /info first), so it may read 1 in any mode.",
        "short",
        (Query(f"max by (mode, pool) ({by_mode('receiver_pool_busy_peak')})", "{{mode}} {{pool}} busy"),
         Query(f"max by (mode, pool) ({by_mode('receiver_pool_waiting_peak')})", "{{mode}} {{pool}} waiting")),
    ),
)
HEALTH = (
    Graph(
        "Event loop lag p99",
        "How late each loop woke a 50 ms probe, over the window: the record of every stall.",
        "s",
        (Query(f"histogram_quantile(0.99, sum by (le, mode) "
               f"({by_mode(f'rate(receiver_event_loop_lag_seconds_bucket[{RATE}])')}))", "receiver {{mode}}"),
         Query(f'histogram_quantile(0.99, sum by (le, job) '
               f'(rate({{__name__=~"(sender|upstream)_event_loop_lag_seconds_bucket"}}[{RATE}])))', "{{job}}")),
    ),
    Graph(
        "Errors: share of requests that failed",
        "At each hop, the share of requests that failed: the sender's (no answer, or not a 200), the "
        "receivers' 5xx answers and upstream's. UPSTREAM_ERROR_RATE injects failures at upstream; "
        "the receiver passes them on as 502.",
        "percentunit",
        (Query(share(f'rate(sender_requests_total{{status!="200"}}[{RATE}])', f"rate(sender_requests_total[{RATE}])",
                     "mode"), "sender → {{mode}}"),
         Query(share(f'rate(receiver_http_requests_total{{{TASKS}, status=~"5.."}}[{RATE}])',
                     f"rate(receiver_http_requests_total{{{TASKS}}}[{RATE}])", "mode"), "receiver {{mode}} 5xx"),
         Query(share(f'rate(upstream_http_requests_total{{route="/work", status=~"5.."}}[{RATE}])',
                     f'rate(upstream_http_requests_total{{route="/work"}}[{RATE}])', "caller"),
               "upstream from {{caller}} 5xx")),
    ),
    Graph(
        "Scrape health",
        "1 when Prometheus could read a service's /metrics. Metrics are served from a thread, "
        "so they stay up even while a receiver's loop is blocked.",
        "short",
        (Query(fresh("up"), "{{job}} {{instance}}"),),
    ),
)

# Each row of panels under a one-line text panel that says what the row teaches.
ROWS: tuple[tuple[str, tuple[Graph, ...]], ...] = (
    ("**Does a burst take as long as the model says?** sync: N·D; async, threaded and def: D; "
     "mixed: (N+1)·D, worse than sync. The request rate follows.", MAKESPAN),
    ("**Who waits, and who blocked?** When the receiver blocks, upstream sees one call at a time, "
     "the receiver's event loop is held for the whole call, and the culprit is named.", WAITING),
    ("**Open loop: what a steady rate costs.** The sender keeps its schedule whatever the "
     "receiver does (SENDER_RATE): latency counts from each request's due time.", OPEN_LOOP),
    ("**Where the time goes.** Only the sender sees the queueing in front of a blocked "
     "receiver; upstream answers in D, yet a blocked loop makes aiohttp's own clock read more; "
     "a pool at its cap queues.", LATENCY),
    ("**Stalls, errors, health.** Every stall of a loop, failed requests, and whether "
     "Prometheus can read each service.", HEALTH),
)

INTRO = """\
**What blocking I/O inside async code costs.** The sender fires bursts of N simultaneous
requests (or, with `SENDER_RATE`, a steady open-loop rate); the receiver calls upstream
(delay D) for each, in the mode `RECEIVER_MODE` picks. Switch it with
`RECEIVER_MODE=async docker compose up -d`, or run all five side by side with
`docker compose --profile compare up -d`.

| mode | makespan of a burst | upstream at once | capacity (req/s) |
|---|---|---|---|
""" + "\n".join(
    f"| `{mode}` | {FORMULAS[mode]} | {'1' if mode == 'sync' else 'N'} | {CAPACITY_FORMULAS[mode]} |" for mode in MODES
) + ("\n\nL: connector limit, T: threads, K: anyio's thread-pool tokens (see `/info`). "
     "Each panel's ⓘ says what it teaches.")


# A receiver's mode (and how it is served) that was not there ANNOTATION_WINDOW ago: a new
# receiver process, so a mode switch. Grafana marks every point a query returns, so the query
# returns points only in the first moments after the switch.
ANNOTATION_WINDOW = "10s"
MODE_CHANGES = (f"max by (mode, server, workers) (receiver_info) "
                f"unless max by (mode, server, workers) (receiver_info offset {ANNOTATION_WINDOW})")
ANNOTATIONS = [
    {
        "name": "Mode changes",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "orange",
        "expr": MODE_CHANGES,
        "step": ANNOTATION_WINDOW,
        "titleFormat": "receiver: {{mode}} · {{server}} ×{{workers}}",
        "tagKeys": "mode",
        "textFormat": "A receiver started in this mode: RECEIVER_MODE changed, or the compare profile came up.",
        "useValueForTime": False,
    },
]


# The first row answers "which mode, and what does it cost" at a glance, about now: only
# receivers that run now (RUNNING), peaks over the last seconds, the culprit of the last minute.
FIRST_ROW = (
    Stat(
        "Receiver mode",
        "The RECEIVER_MODE each running receiver has, and how it is served: uvicorn with one process, "
        "or gunicorn with RECEIVER_WORKERS uvicorn workers (its receiver_info metric).",
        "none",
        (Query(f"max by (mode, server, workers) {RUNNING}", "{{mode}} · {{server}} ×{{workers}}"),),
        text_mode="name",
        no_value="no receiver is up",
    ),
    Stat(
        "Last burst: measured vs model",
        "The last burst's makespan to each running mode, and what lab/model.py predicts for it.",
        "s",
        MAKESPAN_VS_MODEL,
        no_value="no burst has reached a receiver yet",
    ),
    Stat(
        f"Upstream calls at once (last {STAT_WINDOW})",
        f"The most calls upstream worked on at once over the last {STAT_WINDOW}, per running mode: 1 from a "
        "receiver that blocks, N from one that does not. The window spans more than the 10 s between the compose "
        "sender's bursts, so the stat always holds the last burst's.",
        "short",
        (Query(now(f"max by (caller) (max_over_time(upstream_http_requests_in_flight_peak[{STAT_WINDOW}]))", "caller"),
               "from {{caller}}"),),
        no_value="no receiver is up",
    ),
    Stat(
        f"Event loop blocked (longest, last {STAT_WINDOW})",
        f"The longest each running receiver's loop kept its 50 ms probe waiting over the last {STAT_WINDOW}, "
        "a block going on included: about D (or more, back to back) where requests blocks it, "
        "a few ms where nothing does.",
        "s",
        # The join inside the window (a subquery): a receiver that stopped within it, at the address
        # the new one took, is counted under its own mode, not the new one's.
        (Query(now(f"max by (mode) (max_over_time(({by_mode('receiver_event_loop_blocked_peak_seconds')})"
                   f"[{STAT_WINDOW}:{SCRAPE_INTERVAL}]))"), "{{mode}}"),),
        no_value="no receiver is up",
    ),
    Stat(
        "Top culprit (last minute)",
        "Per running mode, the code that held the receiver's loop longest over the last minute "
        "(receiver/culprits.py), and for how long; \"nothing blocked\" where nothing did. Only the "
        "receivers running now count: not one of the same mode that stopped within the minute.",
        "s",
        (Query(f"topk by (mode) (1, sum by (mode, culprit) "
               f"(increase(receiver_event_loop_block_seconds_total[{CULPRIT_WINDOW}]) and on (instance) {RUNNING}) "
               f"> 0) and on (mode) {MODES_NOW} "
               f'or on (mode) label_replace({MODES_NOW} * 0, "culprit", "nothing blocked", "", "")',
               "{{mode}}: {{culprit}}"),),
        text_mode="name",
        width=8,
        no_value="no receiver is up",
    ),
)


# ---- The builder: grafana-foundation-sdk, Grafana's typed builders for the dashboard schema Grafana 11.4 reads ----
# (its 11.4 build writes classic dashboard JSON, schemaVersion 39, which file provisioning reads). Everything above
# says what the dashboard shows; everything below only says how the SDK lays it out.


def datasource(ref: dict[str, str]) -> schema.DataSourceRef:
    return schema.DataSourceRef(type_val=ref["type"], uid=ref["uid"])


SOURCE = datasource(DATASOURCE)
WIDTH = 24  # Grafana's grid is 24 columns wide
STAT_HEIGHT, INTRO_HEIGHT, CAPTION_HEIGHT, GRAPH_HEIGHT = 5, 8, 2, 8

PanelBuilder = Builder[schema.Panel]
AnyPanel = TypeVar("AnyPanel", stats.Panel, timeseries.Panel, texts.Panel)


# The keys of an annotation that Grafana's Prometheus datasource reads beside those the SDK models.
PROMETHEUS_ANNOTATION_KEYS = ("step", "titleFormat", "tagKeys", "textFormat", "useValueForTime")


class PrometheusAnnotation(schema.AnnotationQuery):
    """An annotation query that Grafana's Prometheus datasource runs. The SDK's AnnotationQuery models only
    the fields every datasource shares: the ones Prometheus reads are added here, the way the SDK's
    custom-query example adds a query type (a model with its to_json, and its builder)."""

    def __init__(self, prometheus: dict[str, object]) -> None:
        super().__init__()
        self.prometheus = prometheus

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), **self.prometheus}


class PrometheusAnnotationBuilder(dashboards.AnnotationQuery):
    """The SDK's AnnotationQuery builder (name, datasource, enable, icon_color, expr), building a
    PrometheusAnnotation with the Prometheus fields it is given."""

    _internal: PrometheusAnnotation

    def __init__(self, prometheus: dict[str, object]) -> None:
        self._internal = PrometheusAnnotation(prometheus)

    def build(self) -> PrometheusAnnotation:
        return self._internal


def annotation(spec: dict[str, Any]) -> PrometheusAnnotationBuilder:
    """One of ANNOTATIONS through the SDK's builder. A key with no place here is refused, never dropped."""
    a = PrometheusAnnotationBuilder({key: spec[key] for key in PROMETHEUS_ANNOTATION_KEYS if key in spec})
    setters: dict[str, Callable[[Any], object]] = {
        "name": a.name, "datasource": lambda ref: a.datasource(datasource(ref)), "enable": a.enable,
        "iconColor": a.icon_color, "expr": a.expr,
    }
    unknown = sorted(set(spec) - set(setters) - set(PROMETHEUS_ANNOTATION_KEYS))
    if unknown:
        raise ValueError(f"annotation {spec.get('name')!r}: tools/dashboard.py has no SDK setter for {unknown}")
    for key, value in spec.items():
        if key in setters:
            setters[key](value)
    return a


def panel(builder: AnyPanel, id_: int, title: str, description: str, x: int, y: int, w: int, h: int) -> AnyPanel:
    """What every panel has: its id, its title and ⓘ, its place on the grid."""
    return builder.id(id_).title(title).description(description).grid_pos(schema.GridPos(x=x, y=y, w=w, h=h))


def target(ref: int, query: Query, instant: bool = False) -> prometheus.Dataquery:
    """A Prometheus query, refId A, B, ...: instant (at the dashboard's end time) or range."""
    q = (prometheus.Dataquery().ref_id(chr(ord("A") + ref)).datasource(SOURCE)
         .expr(query.expr).legend_format(query.legend))
    return q.instant() if instant else q.range()


def defaults(builder: AnyPanel, unit: str, no_value: str | None) -> AnyPanel:
    """fieldConfig.defaults: the unit, and what the panel says when its queries have nothing."""
    builder = builder.unit(unit)
    return builder if no_value is None else builder.no_value(no_value)


def stat(id_: int, x: int, s: Stat) -> stats.Panel:
    """A stat of the first row: its values on a coloured background, no sparkline, each the last one not null."""
    p = panel(stats.Panel(), id_, s.title, s.description, x, 0, s.width, STAT_HEIGHT).datasource(SOURCE)
    p = defaults(p.targets([target(i, q, instant=True) for i, q in enumerate(s.queries)]), s.unit, s.no_value)
    return (p.text_mode(common.BigValueTextMode(s.text_mode))
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .graph_mode(common.BigValueGraphMode.NONE)
            .wide_layout(True)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)))


def graph(id_: int, x: int, y: int, g: Graph) -> timeseries.Panel:
    """A time series panel: 2 px lines over a 10 % fill, its legend as a list below, every series in the tooltip."""
    p = panel(timeseries.Panel(), id_, g.title, g.description, x, y, g.width, GRAPH_HEIGHT).datasource(SOURCE)
    p = defaults(p.targets([target(i, q) for i, q in enumerate(g.queries)]), g.unit, g.no_value)
    return (p.line_width(2).fill_opacity(10)
            # The SDK's VizLegendOptions defaults showLegend to false (Grafana, to true): say it.
            .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                    .placement(common.LegendPlacement.BOTTOM).show_legend(True))
            # The SDK always writes the tooltip's sort (its default: asc); none is Grafana's default, query order.
            .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                     .sort(common.SortOrder.NONE)))


def note(id_: int, title: str, description: str, y: int, h: int, content: str) -> texts.Panel:
    """A markdown text panel across the whole width."""
    return panel(texts.Panel(), id_, title, description, 0, y, WIDTH, h).mode(TextMode.MARKDOWN).content(content)


def first_row() -> list[PanelBuilder]:
    """The stats side by side at the top, then the lab's model under them."""
    panels: list[PanelBuilder] = []
    x = 0
    for s in FIRST_ROW:
        panels.append(stat(len(panels) + 1, x, s))
        x += s.width
    panels.append(note(len(panels) + 1, "What this lab shows", "The model of each mode, from lab/model.py.",
                       STAT_HEIGHT, INTRO_HEIGHT, INTRO))
    return panels


def row(first_id: int, y: int, caption: str, graphs: tuple[Graph, ...]) -> list[PanelBuilder]:
    """One of ROWS: a one-line caption across the width, its graphs side by side under it."""
    panels: list[PanelBuilder] = [note(first_id, "", "", y, CAPTION_HEIGHT, caption)]
    x = 0
    for g in graphs:
        panels.append(graph(first_id + len(panels), x, y + CAPTION_HEIGHT, g))
        x += g.width
    return panels


def board() -> dashboards.Dashboard:
    """The whole dashboard as the SDK's builder: its settings, its panels top to bottom, its annotations."""
    d = (dashboards.Dashboard("Blocking I/O in async Python").uid(UID)
         .description("The lab's one dashboard: sync, async, mixed, threaded and def receivers side by side in time.")
         .tags(["asyncio", "fastapi", "lab"]).readonly().refresh("5s").time("now-15m", "now")
         .timezone("browser").version(1)
         .variables([]))  # no template variables, written as an empty list
    panels = first_row()
    y = STAT_HEIGHT + INTRO_HEIGHT
    for caption, graphs in ROWS:
        panels += row(len(panels) + 1, y, caption, graphs)
        y += CAPTION_HEIGHT + GRAPH_HEIGHT
    # with_panel places a panel at its own gridPos, except one at x=0, y=0, which it puts at its running
    # cursor: only the first stat is there, where the cursor starts.
    for p in panels:
        d = d.with_panel(p)
    for spec in ANNOTATIONS:
        d = d.annotation(annotation(spec))
    return d


def build() -> dict[str, Any]:
    """The dashboard's JSON as dicts: the SDK's model through the SDK's own encoder, keys sorted (stable)."""
    return json.loads(json.dumps(board().build(), cls=JSONEncoder, sort_keys=True))


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every query in a dashboard, as Grafana would send it (before $__rate_interval)."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


if __name__ == "__main__":
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(render())
    print(f"wrote {PATH.relative_to(Path.cwd()) if PATH.is_relative_to(Path.cwd()) else PATH}", file=sys.stderr)
