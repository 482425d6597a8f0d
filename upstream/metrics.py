from prometheus_client import Counter, Histogram

from lab.metrics import BUCKETS, InFlight, LoopLag

REQUESTS = Counter(
    "upstream_http_requests_total", "Requests answered by upstream.", ["route", "status"]
)
DURATION = Histogram(
    "upstream_http_request_duration_seconds",
    "Time upstream took to answer, delay included.",
    ["route"],
    buckets=BUCKETS,
)
IN_FLIGHT = InFlight(
    "upstream_http_requests_in_flight",
    "Requests upstream is working on: 1 at a time when the receiver blocks, N when it does not.",
)
LOOP_LAG = LoopLag("upstream")
