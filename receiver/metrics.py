from prometheus_client import Counter, Histogram, Info

from lab.metrics import BUCKETS, InFlight, LoopLag

REQUESTS = Counter(
    "receiver_http_requests_total", "Requests answered by the receiver.", ["mode", "route", "status"]
)
DURATION = Histogram(
    "receiver_http_request_duration_seconds",
    "Time from reading a request to sending its answer (queueing before that is not seen here).",
    ["mode", "route"],
    buckets=BUCKETS,
)
IN_FLIGHT = InFlight("receiver_http_requests_in_flight", "Requests the receiver is working on.")
UPSTREAM_CALLS = Histogram(
    "receiver_upstream_call_duration_seconds",
    "Duration of each call to upstream, by client library and outcome (ok, error, timeout).",
    ["client", "outcome"],
    buckets=BUCKETS,
)
LOOP_LAG = LoopLag("receiver")
INFO = Info("receiver", "The receiver's mode and the caps that shape it.")
