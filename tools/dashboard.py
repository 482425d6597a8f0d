"""python -m tools.dashboard: writes grafana/dashboards/lab.json, the lab's Grafana dashboard.

The dashboard is code so that its panels, queries and texts stay readable and reviewable,
and so that its text quotes the same model (lab.model) the sender and the tests use.
Tests check that the committed JSON is what this module writes, and run every query
against a real Prometheus. `$__rate_interval` is Grafana's: the tests put a window in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lab.model import CAPACITY_FORMULAS, FORMULAS, MODES

UID = "blocking-io-lab"
DATASOURCE = {"type": "prometheus", "uid": "lab-prometheus"}
PATH = Path(__file__).resolve().parent.parent / "grafana" / "dashboards" / "lab.json"
RATE = "$__rate_interval"
RANGE = "$__range"  # the dashboard's time range, as Grafana puts it in a query


def quantiles(metric: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99), join: bool = False) -> list[tuple[str, str]]:
    """histogram_quantile of a histogram, per `by` label(s); join: take `mode` from receiver_info."""
    group = f"le{', ' + by if by else ''}"
    suffix = " " + " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")) if by else ""
    rate = f"rate({metric}_bucket[{RATE}])"
    if join:
        rate = by_mode(rate)
    return [(f"histogram_quantile({q}, sum by ({group}) ({rate}))", f"p{round(q * 100)}{suffix}") for q in qs]


def by_mode(expr: str) -> str:
    """A receiver series with its receiver's mode attached (from receiver_info, by instance)."""
    return f"{expr} * on (instance) group_left (mode) receiver_info"


Panel = tuple[str, str, str, list[tuple[str, str]], int]  # title, teaches, unit, [(expr, legend)], width

# Queries whose legend names {{mode}} or {{caller}} are split by the receiver's mode: in the
# compare profile each must have a series for every mode (the tests check it).
MAKESPAN: list[Panel] = [
    (
        "Burst makespan: measured vs model",
        "Seconds from sending a burst of N to its last answer, and what lab/model.py predicts "
        "from the receiver's mode and caps. sync: N·D, async: D, mixed: (N+1)·D.",
        "s",
        [
            ("max by (mode) (sender_burst_makespan_seconds)", "{{mode}} measured"),
            ("max by (mode) (sender_burst_predicted_makespan_seconds)", "{{mode}} model"),
        ],
        12,
    ),
    (
        "Requests per second",
        "The same traffic at each hop, per mode. mixed makes two upstream calls per request, so "
        "upstream counts twice its receiver's rate.",
        "reqps",
        [
            (f"sum by (mode) (rate(sender_requests_total[{RATE}]))", "sender → {{mode}}"),
            (f'sum by (mode) (rate(receiver_http_requests_total{{route="/tasks/{{name}}"}}[{RATE}]))', "receiver {{mode}}"),
            (f'sum by (caller) (rate(upstream_http_requests_total{{route="/work", caller!="other"}}[{RATE}]))',
             "upstream from {{caller}}"),
        ],
        12,
    ),
]
WAITING: list[Panel] = [
    (
        "In flight (peak over 5 s)",
        "The lesson in one panel: upstream works on 1 call at a time for a receiver that blocks "
        "(sync), on N at once for one that does not (async, threaded, def).",
        "short",
        [
            ('max by (caller) (upstream_http_requests_in_flight_peak{caller!="other"})', "upstream from {{caller}}"),
            (f"max by (mode) ({by_mode('receiver_http_requests_in_flight_peak')})", "receiver {{mode}}"),
        ],
        8,
    ),
    (
        "Event loop blocked (live)",
        "How long each event loop has been overdue, read from a thread while it happens. "
        "sync and mixed hold the receiver's loop for every requests call.",
        "s",
        [
            (f"max by (mode) ({by_mode('receiver_event_loop_blocked_seconds')})", "receiver {{mode}}"),
            ('max by (job) ({__name__=~"(sender|upstream)_event_loop_blocked_seconds"})', "{{job}}"),
        ],
        8,
    ),
    (
        "What blocked the loop",
        "Share of the time each receiver's loop was stuck, by the code it was stuck in: the receiver's "
        "own function → the library call below it, sampled from a thread while the loop is blocked "
        "(LOOP_BLOCK_THRESHOLD). sync and mixed name requests; async, threaded and def stay at none.",
        "percentunit",
        [
            (f"sum by (mode, culprit) ({by_mode(f'rate(receiver_event_loop_block_seconds_total[{RATE}])')}) "
             f'or label_replace(max by (mode) (receiver_info) * 0, "culprit", "none", "", "")',
             "{{mode}}: {{culprit}}"),
        ],
        8,
    ),
]
OPEN_LOOP: list[Panel] = [
    (
        "Offered vs achieved rate",
        "What the sender offers (SENDER_RATE, or N per SENDER_INTERVAL in bursts) and the answers "
        "per second it gets back. Above a mode's capacity (sync 1/D, async L/D, threaded T/D, def K/D) "
        "achieved stays at the capacity and the rest queues or is dropped.",
        "reqps",
        [
            ("max by (mode) (sender_offered_requests_per_second)", "{{mode}} offered"),
            ("max by (mode) (sender_achieved_requests_per_second)", "{{mode}} achieved"),
        ],
        8,
    ),
    (
        "Latency from intended send time",
        "p50 and p99 from when each request was due, not from when it went out (as wrk2 and k6 "
        "measure): a stalled receiver cannot hide its queue from this.",
        "s",
        quantiles("sender_request_duration_seconds", by="mode", qs=(0.5, 0.99)),
        8,
    ),
    (
        "Dropped and late",
        "Requests the sender dropped because SENDER_MAX_IN_FLIGHT were already waiting on that "
        "receiver, and requests it started more than 10 ms late (the sender itself falling behind).",
        "reqps",
        [
            (f"sum by (mode) (rate(sender_requests_dropped_total[{RATE}]))", "{{mode}} dropped"),
            (f"sum by (mode) (rate(sender_requests_late_total[{RATE}]))", "{{mode}} late"),
        ],
        8,
    ),
]
LATENCY: list[Panel] = [
    (
        "Latency inside the receiver",
        "From reading the request to answering it. In sync mode it looks fine (about D): "
        "the queueing happens before the read, where only the sender sees it.",
        "s",
        quantiles("receiver_http_request_duration_seconds", by="mode", qs=(0.5, 0.99)),
        8,
    ),
    (
        "Upstream call latency by client",
        "Each call to upstream, by library (requests or aiohttp). Both take about D: the "
        "client is not slow, blocking the loop with it is what costs.",
        "s",
        quantiles("receiver_upstream_call_duration_seconds", by="mode, client", qs=(0.5, 0.99), join=True),
        8,
    ),
    (
        "Pools: busy and waiting",
        "threaded mode's threads (RECEIVER_THREADS, T), def mode's anyio tokens (RECEIVER_THREADPOOL_TOKENS, K) "
        "and aiohttp's connections (RECEIVER_POOL_LIMIT, L): in use, and calls waiting for one. Waiting above 0 "
        "means the cap is hit: a burst of N > T takes ⌈N/T⌉·D (try RECEIVER_THREADS=2 with N = 5).",
        "short",
        [
            (f"max by (mode, pool) ({by_mode('receiver_pool_busy')})", "{{mode}} {{pool}} busy"),
            (f"max by (mode, pool) ({by_mode('receiver_pool_waiting')})", "{{mode}} {{pool}} waiting"),
        ],
        8,
    ),
]
HEALTH: list[Panel] = [
    (
        "Event loop lag p99",
        "How late each loop woke a 50 ms probe, over the window: the record of every stall.",
        "s",
        [
            (
                f"histogram_quantile(0.99, sum by (le, mode) ({by_mode(f'rate(receiver_event_loop_lag_seconds_bucket[{RATE}])')}))",
                "receiver {{mode}}",
            ),
            (
                f'histogram_quantile(0.99, sum by (le, job) (rate({{__name__=~"(sender|upstream)_event_loop_lag_seconds_bucket"}}[{RATE}])))',
                "{{job}}",
            ),
        ],
        8,
    ),
    (
        "Errors",
        "Share of the sender's requests that failed (timeouts, 5xx), and 5xx answers per "
        "second at the receivers and upstream. UPSTREAM_ERROR_RATE injects them.",
        "short",
        [
            (
                f'(sum by (mode) (rate(sender_requests_total{{status!="200"}}[{RATE}])) or sum by (mode) (rate(sender_requests_total[{RATE}])) * 0) '
                f"/ sum by (mode) (rate(sender_requests_total[{RATE}]))",
                "{{mode}}: failed share",
            ),
            (f'sum(rate(receiver_http_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)', "receivers 5xx/s"),
            (f'sum(rate(upstream_http_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)', "upstream 5xx/s"),
        ],
        8,
    ),
    (
        "Scrape health",
        "1 when Prometheus could read a service's /metrics. Metrics are served from a thread, "
        "so they stay up even while a receiver's loop is blocked.",
        "short",
        [("up", "{{job}} {{instance}}")],
        8,
    ),
]

# Each row of panels under a one-line text panel that says what the row teaches.
ROWS: list[tuple[str, list[Panel]]] = [
    ("**Does a burst take as long as the model says?** sync: N·D; async, threaded and def: D; "
     "mixed: (N+1)·D, worse than sync. The request rate follows.", MAKESPAN),
    ("**Who waits, and who blocked?** When the receiver blocks, upstream sees one call at a time, "
     "the receiver's event loop is overdue for the whole call, and the culprit is named.", WAITING),
    ("**Open loop: what a steady rate costs.** The sender keeps its schedule whatever the "
     "receiver does (SENDER_RATE): latency counts from each request's due time.", OPEN_LOOP),
    ("**Where the time goes.** Only the sender sees the queueing in front of a blocked "
     "receiver; the upstream calls themselves take D with either library; a pool at its cap queues.", LATENCY),
    ("**Stalls, errors, health.** Every stall of a loop, failed requests, and whether "
     "Prometheus can read each service.", HEALTH),
]

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
) + "\n\nL: connector limit, T: threads, K: anyio's thread-pool tokens (see `/info`). Each panel's ⓘ says what it teaches."


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


def panel(id_: int, title: str, description: str, x: int, y: int, w: int, h: int, **rest: Any) -> dict[str, Any]:
    return {"id": id_, "title": title, "description": description, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **rest}


def target(ref: int, expr: str, legend: str, instant: bool = False) -> dict[str, Any]:
    return {
        "refId": chr(ord("A") + ref),
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
    }


# The first row answers "which mode, and what does it cost" at a glance: (title, teaches,
# unit, [(expr, legend)], text mode). The mode's stat comes first, then these.
FIRST_ROW: list[tuple[str, str, str, list[tuple[str, str]], str]] = [
    (
        "Last burst: measured vs model",
        "The last burst's makespan and what lab/model.py predicts for it.",
        "s",
        [("max by (mode) (sender_burst_makespan_seconds)", "{{mode}} measured"),
         ("max by (mode) (sender_burst_predicted_makespan_seconds)", "{{mode}} model")],
        "value_and_name",
    ),
    (
        "Upstream calls at once",
        "The most calls upstream worked on at once over the last 5 s: 1 from a receiver that blocks, N from one that does not.",
        "short",
        [('max by (caller) (upstream_http_requests_in_flight_peak{caller!="other"})', "from {{caller}}")],
        "value_and_name",
    ),
    (
        "Event loop blocked now",
        "How long the receiver's loop has been overdue, right now.",
        "s",
        [(f"max by (mode) ({by_mode('receiver_event_loop_blocked_seconds')})", "{{mode}}")],
        "value_and_name",
    ),
    (
        "Top culprit",
        "The code that held the receiver's loop longest over the dashboard's time range (receiver/culprits.py).",
        "s",
        [(f"topk(1, sum by (culprit) (increase(receiver_event_loop_block_seconds_total[{RANGE}])) "
          f'or label_replace(vector(0), "culprit", "nothing blocked", "", ""))', "{{culprit}}")],
        "name",
    ),
]


def stat(id_: int, title: str, description: str, x: int, w: int, unit: str, queries: list[tuple[str, str]],
         text_mode: str) -> dict[str, Any]:
    return panel(
        id_, title, description, x, 0, w, 5, type="stat", datasource=DATASOURCE,
        targets=[target(i, expr, legend, instant=True) for i, (expr, legend) in enumerate(queries)],
        fieldConfig={"defaults": {"unit": unit}, "overrides": []},
        options={"textMode": text_mode, "colorMode": "background", "graphMode": "none", "wideLayout": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    )


def build() -> dict[str, Any]:
    panels = [
        panel(
            1, "Receiver mode", "The RECEIVER_MODE the receiver runs in now, and how it is served: uvicorn "
            "with one process, or gunicorn with RECEIVER_WORKERS uvicorn workers (its receiver_info metric).",
            0, 0, 4, 5, type="stat", datasource=DATASOURCE,
            targets=[target(0, "max by (mode, server, workers) (receiver_info)",
                            "{{mode}} · {{server}} ×{{workers}}", instant=True)],
            options={"textMode": "name", "colorMode": "background", "graphMode": "none",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        ),
    ]
    x = 4
    for title, description, unit, queries, text_mode in FIRST_ROW:
        width = 8 if title == "Top culprit" else 4
        panels.append(stat(len(panels) + 1, title, description, x, width, unit, queries, text_mode))
        x += width
    panels.append(panel(len(panels) + 1, "What this lab shows", "The model of each mode, from lab/model.py.",
                        0, 5, 24, 8, type="text", options={"mode": "markdown", "content": INTRO}))
    y = 13
    for caption, row in ROWS:
        panels.append(panel(len(panels) + 1, "", "", 0, y, 24, 2, type="text",
                            options={"mode": "markdown", "content": caption}))
        x, y = 0, y + 2
        for title, description, unit, queries, width in row:
            panels.append(
                panel(
                    len(panels) + 1, title, description, x, y, width, 8,
                    type="timeseries", datasource=DATASOURCE,
                    targets=[target(i, expr, legend) for i, (expr, legend) in enumerate(queries)],
                    fieldConfig={"defaults": {"unit": unit, "custom": {"lineWidth": 2, "fillOpacity": 10}},
                                 "overrides": []},
                    options={"legend": {"displayMode": "list", "placement": "bottom"},
                             "tooltip": {"mode": "multi"}},
                )
            )
            x += width
        y += 8
    return {
        "uid": UID,
        "title": "Blocking I/O in async Python",
        "description": "The lab's one dashboard: sync, async, mixed, threaded and def receivers side by side in time.",
        "tags": ["asyncio", "fastapi", "lab"],
        "editable": False,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": ANNOTATIONS},
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every query in a dashboard, as Grafana would send it (before $__rate_interval)."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


if __name__ == "__main__":
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(render())
    print(f"wrote {PATH.relative_to(Path.cwd()) if PATH.is_relative_to(Path.cwd()) else PATH}", file=sys.stderr)
