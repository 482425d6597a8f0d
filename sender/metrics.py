from prometheus_client import Counter, Gauge, Histogram

from lab.metrics import BUCKETS, LoopLag

REQUESTS = Counter(
    "sender_requests_total", "Requests sent, by the receiver's status (error: no answer).", ["status"]
)
LATENCY = Histogram(
    "sender_request_duration_seconds",
    "Time from the burst's intended send time to the answer.",
    buckets=BUCKETS,
)
BURSTS = Counter("sender_bursts_total", "Bursts sent.")
BURST_SIZE = Gauge("sender_burst_size", "Requests in the last burst (N).")
MAKESPAN = Gauge("sender_burst_makespan_seconds", "Seconds from the last burst's send to its last answer.")
PREDICTED = Gauge(
    "sender_burst_predicted_makespan_seconds",
    "The model's makespan for the last burst, from the receiver's mode and caps (NaN if unknown).",
)
LOOP_LAG = LoopLag("sender")
