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

from lab.model import FORMULAS, MODES

UID = "blocking-io-lab"
DATASOURCE = {"type": "prometheus", "uid": "lab-prometheus"}
PATH = Path(__file__).resolve().parent.parent / "grafana" / "dashboards" / "lab.json"
RATE = "$__rate_interval"


def quantiles(metric: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))", f"p{round(q * 100)}{suffix}")
        for q in qs
    ]


Panel = tuple[str, str, str, list[tuple[str, str]], int]  # title, teaches, unit, [(expr, legend)], width

MAKESPAN: list[Panel] = [
    (
        "Burst makespan: measured vs model",
        "Seconds from sending a burst of N to its last answer, and what lab/model.py predicts "
        "from the receiver's mode and caps. sync: N·D, async: D, mixed: (N+1)·D.",
        "s",
        [
            ("sender_burst_makespan_seconds", "measured"),
            ("sender_burst_predicted_makespan_seconds", "model"),
        ],
        12,
    ),
    (
        "Requests per second",
        "The same traffic at each hop. mixed makes two upstream calls per request, so "
        "upstream counts twice the receiver's rate.",
        "reqps",
        [
            (f"sum(rate(sender_requests_total[{RATE}]))", "sender"),
            (f'sum(rate(receiver_http_requests_total{{route="/tasks/{{name}}"}}[{RATE}]))', "receiver"),
            (f'sum(rate(upstream_http_requests_total{{route="/work"}}[{RATE}]))', "upstream"),
        ],
        12,
    ),
]
WAITING: list[Panel] = [
    (
        "In flight (peak over 5 s)",
        "The lesson in one panel: upstream works on 1 call at a time when the receiver blocks "
        "(sync), on N at once when it does not (async, threaded).",
        "short",
        [
            ("upstream_http_requests_in_flight_peak", "upstream"),
            ("receiver_http_requests_in_flight_peak", "receiver"),
        ],
        12,
    ),
    (
        "Event loop blocked (live)",
        "How long each service's event loop has been overdue, read from a thread while it "
        "happens. sync and mixed hold the receiver's loop for every requests call.",
        "s",
        [('max by (job) ({__name__=~".+_event_loop_blocked_seconds"})', "{{job}}")],
        12,
    ),
]
LATENCY: list[Panel] = [
    (
        "Latency seen by the sender",
        "From the burst's intended send time to the answer: includes the time a request "
        "waited before the receiver even read it.",
        "s",
        quantiles("sender_request_duration_seconds"),
        8,
    ),
    (
        "Latency inside the receiver",
        "From reading the request to answering it. In sync mode it looks fine (about D): "
        "the queueing happens before the read, where only the sender sees it.",
        "s",
        quantiles("receiver_http_request_duration_seconds"),
        8,
    ),
    (
        "Upstream call latency by client",
        "Each call to upstream, by library (requests or aiohttp). Both take about D: the "
        "client is not slow, blocking the loop with it is what costs.",
        "s",
        quantiles("receiver_upstream_call_duration_seconds", by="client", qs=(0.5, 0.99)),
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
                f'histogram_quantile(0.99, sum by (le, job) (rate({{__name__=~".+_event_loop_lag_seconds_bucket"}}[{RATE}])))',
                "{{job}}",
            )
        ],
        8,
    ),
    (
        "Errors",
        "Share of the sender's requests that failed (timeouts, 5xx), and 5xx answers per "
        "second at the receiver and upstream. UPSTREAM_ERROR_RATE injects them.",
        "short",
        [
            (
                f'(sum(rate(sender_requests_total{{status!="200"}}[{RATE}])) or vector(0)) '
                f"/ sum(rate(sender_requests_total[{RATE}]))",
                "sender: failed share",
            ),
            (f'sum(rate(receiver_http_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)', "receiver 5xx/s"),
            (f'sum(rate(upstream_http_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)', "upstream 5xx/s"),
        ],
        8,
    ),
    (
        "Scrape health",
        "1 when Prometheus could read a service's /metrics. Metrics are served from a thread, "
        "so they stay up even while the receiver's loop is blocked.",
        "short",
        [("up", "{{job}}")],
        8,
    ),
]

# Each row of panels under a one-line text panel that says what the row teaches.
ROWS: list[tuple[str, list[Panel]]] = [
    ("**Does a burst take as long as the model says?** sync: N·D; async and threaded: D; "
     "mixed: (N+1)·D, worse than sync. The request rate follows.", MAKESPAN),
    ("**Who waits?** When the receiver blocks, upstream sees one call at a time and the "
     "receiver's event loop is overdue for the whole call.", WAITING),
    ("**Where the time goes.** Only the sender sees the queueing in front of a blocked "
     "receiver; the upstream calls themselves take D with either library.", LATENCY),
    ("**Stalls, errors, health.** Every stall of a loop, failed requests, and whether "
     "Prometheus can read each service.", HEALTH),
]

INTRO = """\
**What blocking I/O inside async code costs.** The sender fires bursts of N simultaneous
requests; the receiver calls upstream (delay D) for each, in the mode `RECEIVER_MODE`
picks. Switch it with `RECEIVER_MODE=async docker compose up -d`: only the receiver restarts.

| mode | makespan of a burst | upstream at once |
|---|---|---|
""" + "\n".join(
    f"| `{mode}` | {FORMULAS[mode]} | {'1' if mode == 'sync' else 'N'} |" for mode in MODES
) + "\n\nL: connector limit, T: threads (see `/info`). Each panel's ⓘ says what it teaches."


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


def build() -> dict[str, Any]:
    panels = [
        panel(
            1, "Receiver mode", "The RECEIVER_MODE the receiver runs in now (its receiver_info metric).",
            0, 0, 4, 7, type="stat", datasource=DATASOURCE,
            targets=[target(0, "max by (mode) (receiver_info)", "{{mode}}", instant=True)],
            options={"textMode": "name", "colorMode": "background", "graphMode": "none",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        ),
        panel(
            2, "What this lab shows", "The model of each mode, from lab/model.py.",
            4, 0, 20, 7, type="text", options={"mode": "markdown", "content": INTRO},
        ),
    ]
    y = 7
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
        "description": "The lab's one dashboard: sync, async, mixed and threaded receivers side by side in time.",
        "tags": ["asyncio", "fastapi", "lab"],
        "editable": False,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": []},
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
