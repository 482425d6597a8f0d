"""python -m bench.soak [--minutes 30]: the lab at half capacity for a long run, watched for leaks.

Upstream, a receiver and an open-loop sender run as local processes (the receiver on its own
core, as the benchmark runs it) at a fraction of the mode's model capacity. Every --every
seconds it samples each process's resident memory, the number of metric series each serves,
and the sender's counts. After the warm-up it checks the promises docs/reliability.md
makes: memory grows less than 10%, fewer than 0.1% of the requests fail, and the
series count stays flat. Writes soak.json and prints a table; exit 1 if a promise fails.
Not part of CI (it takes half an hour).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from bench import machine
from bench.run import Services
from bench.workers import rss_mb
from lab import model
from models.steady import capacity
from tools.processes import ROOT, Service, get

RSS_GROWTH, ERROR_RATE = 0.10, 0.001


class Counts(TypedDict):
    """The sender's counts so far: requests sent, answered 200, answered otherwise or not at all."""

    sent: float
    ok: float
    failed: float


class Sample(TypedDict):
    t: float  # seconds since the sender started
    rss_mb: dict[str, float]  # per process
    series: dict[str, int]  # metric series each serves (upstream, receiver)
    sender: Counts


class Verdict(TypedDict):
    rss_growth: dict[str, float]  # per process, from the first sample after the warm-up to the last
    rss_ok: bool
    requests: float
    error_rate: float
    errors_ok: bool
    series_range: dict[str, int]
    series_ok: bool


def series(url: str) -> int:
    return sum(len(family.samples) for family in text_string_to_metric_families(get(url)[1].decode()))


def sender_counts(url: str) -> Counts:
    counts: Counts = {"sent": 0.0, "ok": 0.0, "failed": 0.0}
    for family in text_string_to_metric_families(get(url)[1].decode()):
        for sample in family.samples:
            if sample.name == "sender_requests_sent_total":
                counts["sent"] += sample.value
            elif sample.name == "sender_requests_total":
                counts["ok" if sample.labels.get("status") == "200" else "failed"] += sample.value
    return counts


def sample(started: float, services: dict[str, Service]) -> Sample:
    return {
        "t": round(time.monotonic() - started, 1),
        "rss_mb": {name: round(rss_mb(s.process.pid), 1) for name, s in services.items()},
        "series": {name: series(s.metrics_url) for name, s in services.items() if name != "sender"},
        "sender": sender_counts(services["sender"].metrics_url),
    }


def verdict(samples: list[Sample], warmup: float) -> Verdict:
    steady = [s for s in samples if s["t"] >= warmup]
    first, last = steady[0], steady[-1]
    growth = {name: (last["rss_mb"][name] - first["rss_mb"][name]) / first["rss_mb"][name] for name in first["rss_mb"]}
    done = last["sender"]["ok"] + last["sender"]["failed"]
    error_rate = last["sender"]["failed"] / done if done else 1.0
    series_range = {name: max(s["series"][name] for s in steady) - min(s["series"][name] for s in steady)
                    for name in first["series"]}
    return {
        "rss_growth": growth, "rss_ok": all(g < RSS_GROWTH for g in growth.values()),
        "requests": done, "error_rate": error_rate, "errors_ok": error_rate < ERROR_RATE,
        "series_range": series_range, "series_ok": all(r == 0 for r in series_range.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--mode", default="async", choices=model.MODES)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--fraction", type=float, default=0.5, help="of the mode's model capacity")
    parser.add_argument("--warmup", type=float, default=300.0, help="seconds left out of the checks")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "soak")
    args = parser.parse_args()
    if args.minutes * 60 <= args.warmup + 2 * args.every:
        parser.error("--minutes must leave at least two samples after the warm-up")
    console = Console()
    caps = model.Caps(pool_limit=100, threads=40)
    rate = args.fraction * capacity(args.mode, args.delay, caps)
    seconds = args.minutes * 60
    cpus = machine.cores()
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="lab-soak-") as tmp:
        running = Services(Path(tmp), cpus)
        try:
            upstream = running.start("upstream", "load", UPSTREAM_DELAY=f"{args.delay:g}")
            receiver = running.start("receiver", "server", RECEIVER_MODE=args.mode, UPSTREAM_URL=upstream.url)
            sender = running.start_unchecked("sender", "load", RECEIVER_URL=receiver.url, SENDER_RATE=f"{rate:g}",
                                             SENDER_DURATION=f"{seconds:g}", SENDER_TIMEOUT="30")
            services = {"upstream": upstream, "receiver": receiver, "sender": sender}
            console.print(f"soak: {args.mode}, D={args.delay:g}s, {rate:g} requests/s ({args.fraction:g}× capacity) "
                          f"for {args.minutes:g} min; warm-up {args.warmup:g}s left out")
            started = time.monotonic()
            with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                          console=console) as progress:
                bar = progress.add_task("soak", total=seconds)
                while time.monotonic() - started < seconds - 1:
                    time.sleep(min(args.every, max(0.0, seconds - 1 - (time.monotonic() - started))))
                    samples.append(sample(started, services))
                    s = samples[-1]
                    progress.update(bar, completed=s["t"], description=(
                        f"RSS receiver {s['rss_mb']['receiver']:.0f} MB, series {s['series']['receiver']}, "
                        f"{s['sender']['ok']:.0f} ok, {s['sender']['failed']:.0f} failed"))
        finally:
            running.stop_all()
    v = verdict(samples, args.warmup)
    result = {"machine": asdict(machine.describe()), "knobs": vars(args) | {"out": str(args.out), "rate": rate},
              "samples": samples, "verdict": v}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    table = Table(title=f"soak: {v['requests']:.0f} requests answered")
    for column in ("promise", "measured", "result"):
        table.add_column(column)
    table.add_row("RSS growth after warm-up < 10%", ", ".join(f"{k} {g:+.1%}" for k, g in v["rss_growth"].items()),
                  "PASS" if v["rss_ok"] else "FAIL")
    table.add_row("error rate < 0.1%", f"{v['error_rate']:.3%}", "PASS" if v["errors_ok"] else "FAIL")
    table.add_row("series count flat", ", ".join(f"{k} ±{r}" for k, r in v["series_range"].items()),
                  "PASS" if v["series_ok"] else "FAIL")
    console.print(table)
    return 0 if v["rss_ok"] and v["errors_ok"] and v["series_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
