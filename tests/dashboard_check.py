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


def queries() -> list[str]:
    board = json.loads((ROOT / "grafana/dashboards/lab.json").read_text())
    return [expr.replace("$__rate_interval", RATE_WINDOW) for expr in dashboard.expressions(board)]


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
