"""What the sender prints and writes: burst summaries and timelines, open-loop summaries and
tables, and the --json document the benchmark reads (SENDER_VERSION: its shape's version)."""

from __future__ import annotations

from typing import Any

from sender.burst import Burst, Prediction
from sender.open_loop import Plan, RateTarget, seconds_at
from sender.target import Target

SENDER_VERSION = 1
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


# --- bursts ---------------------------------------------------------------------------

def summary(number: int, burst: Burst, mode: str, prediction: Prediction | None, url: str = "") -> str:
    """The burst's line; with several targets, the target's URL first."""
    return (
        f"{url + ' ' if url else ''}=== burst {number}: N={len(burst.results)} makespan={burst.makespan:.3f}s "
        f"mode={mode} predicted={prediction or 'unknown'} failed={burst.failures}"
    )


def timeline(burst: Burst) -> str:
    lines = [f"{'task':<10}{'sent':>9}{'answered':>11}  status"]
    for r in sorted(burst.results, key=lambda r: r.seconds):
        lines.append(f"{r.name:<10}{'+0.000s':>9}{f'+{r.seconds:.3f}s':>11}  {r.status or 'no answer'}")
    return "\n".join(lines)


def burst_json(
    rounds: list[tuple[Target, Burst, Prediction | None]], n: int, delay: float | None
) -> dict[str, Any]:
    def target(t: Target, burst: Burst, prediction: Prediction | None) -> dict[str, Any]:
        upstream_delay = ((t.info or {}).get("upstream") or {}).get("delay")
        return {
            "url": t.base,
            "mode": t.mode,
            "info": t.info,
            "n": n,
            "delay": delay if delay is not None else upstream_delay,
            "makespan": burst.makespan,
            "predicted": prediction.makespan if prediction else None,
            "results": [{"name": r.name, "seconds": r.seconds, "status": r.status} for r in burst.results],
        }

    return {"sender_version": SENDER_VERSION, "kind": "burst", "targets": [target(*r) for r in rounds]}


# --- open loop ------------------------------------------------------------------------

def latency(t: Target) -> dict[str, float | None]:
    """Percentiles, max and mean of the answered requests' latency, in seconds (HDR)."""
    hdr = t.hdr
    if not hdr.get_total_count():
        return {key: None for key in [*PERCENTILES, "max", "mean"]}
    values = {key: hdr.get_value_at_percentile(p) / 1e6 for key, p in PERCENTILES.items()}
    return {**values, "max": hdr.get_max_value() / 1e6, "mean": hdr.get_mean_value() / 1e6}


def achieved(t: RateTarget, duration: float) -> float:
    """HTTP answers that came within the run's duration, per second of it."""
    return t.in_time / duration if duration > 0 else 0.0


def final_line(t: RateTarget, plan: Plan, seconds: float) -> str:
    ok = t.answered.get(200, 0)
    errors = sum(t.answered.values()) - ok
    rate = achieved(t, plan.duration) if plan.duration > 0 else t.answers / max(seconds, 1e-9)
    return (
        f"rate {t.base}: done mode={t.mode} scheduled={t.sent + t.dropped} sent={t.sent} ok={ok} "
        f"errors={errors} dropped={t.dropped} late={t.late} achieved={rate:.1f}/s "
        f"p50={seconds_at(t.hdr, 50)} p90={seconds_at(t.hdr, 90)} p99={seconds_at(t.hdr, 99)} "
        f"max={t.hdr.get_max_value() / 1e6:.3f}s (whole run, {seconds:.1f}s)"
    )


def table(targets: list[RateTarget], plan: Plan) -> str:
    """The open-loop run, one row per target."""
    head = (f"{'target':<28}{'mode':<9}{'sent':>8}{'200':>8}{'other':>7}{'error':>7}{'dropped':>8}"
            f"{'late':>7}{'achieved':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    lines = [
        f"open loop: {plan.rate:g} requests/s per target, {plan.arrivals}"
        f"{f' (seed {plan.seed})' if plan.arrivals == 'poisson' else ''}, {plan.duration:g}s, "
        f"at most {plan.max_in_flight} in flight per target; latency from the intended send time",
        head,
    ]
    for t in targets:
        ok, error = t.answered.get(200, 0), t.answered.get(None, 0)
        other = sum(t.answered.values()) - ok - error
        lat = {key: "-" if v is None else f"{v:.3f}s" for key, v in latency(t).items()}
        lines.append(
            f"{t.base:<28}{t.mode:<9}{t.sent:>8}{ok:>8}{other:>7}{error:>7}{t.dropped:>8}{t.late:>7}"
            f"{f'{achieved(t, plan.duration):.1f}/s':>10}{lat['p50']:>9}{lat['p90']:>9}{lat['p99']:>9}{lat['max']:>9}"
        )
    return "\n".join(lines)


def rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


def rate_json(targets: list[RateTarget], plan: Plan, started_at: float) -> dict[str, Any]:
    """The run's document; started_at: the schedule's start (Unix time), whence the records' offsets count."""
    def target(t: RateTarget) -> dict[str, Any]:
        return {
            "url": t.base,
            "mode": t.mode,
            "info": t.info,
            "scheduled": t.sent + t.dropped,
            "sent": t.sent,
            "answered": {("error" if status is None else str(status)): n for status, n in t.answered.items()},
            "dropped": t.dropped,
            "late": t.late,
            "peak_in_flight": t.peak_in_flight,
            "achieved_rate": achieved(t, plan.duration),
            "latency": latency(t),
            "records": [
                [offset, rounded(seconds), status, rounded(lag)]
                for offset, seconds, status, lag in t.records_out()
            ],
        }

    return {
        "sender_version": SENDER_VERSION,
        "kind": "rate",
        "rate": plan.rate,
        "arrivals": plan.arrivals,
        "seed": plan.seed,
        "duration": plan.duration,
        "max_in_flight": plan.max_in_flight,
        "timeout": plan.timeout,
        "started_at": started_at,
        "targets": [target(t) for t in targets],
    }
