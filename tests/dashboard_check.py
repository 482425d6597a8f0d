"""Run every query of the Grafana dashboard against a real Prometheus and require data."""

from __future__ import annotations

import json
import math
import time
import urllib.parse

from tools import dashboard
from tools.processes import ROOT, get

# What Grafana puts for $__rate_interval with a 2 s scrape interval is about 8 s; a
# little more gives every window several samples.
RATE_WINDOW = "15s"
RANGE_WINDOW = "5m"  # for $__range: the dashboard's time range


def windows(expr: str) -> str:
    """A query as Grafana would send it, its $__rate_interval (and _ms) and $__range put in."""
    ms = str(int(float(RATE_WINDOW.removesuffix("s")) * 1000))
    return (expr.replace("$__rate_interval_ms", ms).replace("$__rate_interval", RATE_WINDOW)
            .replace("$__range", RANGE_WINDOW))


def board() -> dict:
    return json.loads((ROOT / "grafana/dashboards/lab.json").read_text())


def queries() -> list[str]:
    return [windows(expr) for expr in dashboard.expressions(board())]


def split_by_mode() -> dict[str, str]:
    """The queries whose legend names the mode ({{mode}}, or upstream's {{caller}}), and that label."""
    found = {}
    for panel in board()["panels"]:
        for target in panel.get("targets", []):
            for label in ("mode", "caller"):
                if "{{" + label + "}}" in target["legendFormat"]:
                    found[windows(target["expr"])] = label
    return found


def instant(prometheus: str, expr: str) -> list[dict]:
    status, body = get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=5)
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def has_data(result: list[dict]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


def missing_data(prometheus: str, timeout: float) -> list[str]:
    """Poll until every query returns at least one finite value; the queries that never did."""
    pending = queries()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [expr for expr in pending if not has_data(instant(prometheus, expr))]
        if pending:
            time.sleep(1)
    return pending


def missing_modes(prometheus: str, modes: tuple[str, ...], timeout: float) -> dict[str, list[str]]:
    """Poll until every query split by mode has a finite value for each of `modes`; what is missing."""
    pending = split_by_mode()
    missing: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        missing = {}
        for expr, label in pending.items():
            seen = {s["metric"].get(label) for s in instant(prometheus, expr) if math.isfinite(float(s["value"][1]))}
            if absent := [m for m in modes if m not in seen]:
                missing[expr] = absent
        pending = {expr: label for expr, label in pending.items() if expr in missing}
        if pending:
            time.sleep(2)
    return missing
