from prometheus_client import Counter, Histogram

from lab.metrics import BUCKETS, InFlightBy, LoopLag
from lab.model import MODES

# caller: the mode of the receiver that called (its X-Lab-Mode header), "other" for anyone
# else: a closed set, so the compare profile's five receivers split every upstream panel.
CALLERS = (*MODES, "other")

REQUESTS = Counter(
    "upstream_http_requests_total",
    "Requests answered by upstream, by the caller's mode.",
    ["route", "status", "caller"],
)
DURATION = Histogram(
    "upstream_http_request_duration_seconds",
    "Time upstream took to answer, delay included, by the caller's mode: what each call really took, "
    "beside what the receiver's client measured.",
    ["route", "caller"],
    buckets=BUCKETS,
)
IN_FLIGHT = InFlightBy(
    "upstream_http_requests_in_flight",
    "/work requests upstream is working on, by the caller's mode: 1 at a time from a receiver that blocks, "
    "N from one that does not.",
    "caller",
    CALLERS,
)
LOOP_LAG = LoopLag("upstream")
