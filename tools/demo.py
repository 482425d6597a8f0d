"""python -m tools.demo: the seed's experiment on this machine, without Docker.

Starts upstream and a receiver in the given mode on free loopback ports, sends one burst
(python -m sender --once), prints the sender's and the receiver's timelines side by side,
and stops everything.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from lab import model
from tools.processes import Service, sender_once

LINE = re.compile(r"^(\d\d:\d\d:\d\d,\d{3}) - (.*)$")
SENDER_WIDTH = 44


def timestamped(text: str, since: str = "", until: str = "99") -> list[tuple[str, str]]:
    """(time, message) for each log line from `since` to `until` (HH:MM:SS,mmm)."""
    found = (LINE.match(line) for line in text.splitlines())
    return [(m[1], m[2]) for m in found if m and since <= m[1] <= until]


def side_by_side(sender: list[tuple[str, str]], receiver: list[tuple[str, str]], mode: str) -> str:
    # Sorted by time; within a millisecond the receiver's lines first (its answer is logged
    # just before the sender logs getting it), and each side keeps its own order.
    rows = sorted([(t, 1, msg) for t, msg in sender] + [(t, 0, msg) for t, msg in receiver], key=lambda r: r[:2])
    out = [f"{'time':<14}{'sender':<{SENDER_WIDTH}}receiver ({mode})", "-" * 110]
    for t, column, msg in rows:
        out.append(f"{t:<14}{msg}" if column == 1 else f"{t:<14}{'':<{SENDER_WIDTH}}{msg}")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=model.MODES, default="sync")
    parser.add_argument("--delay", type=float, default=1.0, help="upstream delay D in seconds (the seed used 10)")
    parser.add_argument("-n", type=int, default=2, help="requests in the burst (seed: 2)")
    parser.add_argument("--threads", type=int, default=40, help="RECEIVER_THREADS (threaded mode)")
    parser.add_argument("--pool-limit", type=int, default=100, help="RECEIVER_POOL_LIMIT (async, mixed)")
    parser.add_argument("--tokens", type=int, default=40, help="RECEIVER_THREADPOOL_TOKENS (def mode)")
    args = parser.parse_args()

    caps = model.Caps(pool_limit=args.pool_limit, threads=args.threads, tokens=args.tokens)
    predicted = model.makespan(args.mode, args.n, args.delay, caps)
    with tempfile.TemporaryDirectory(prefix="lab-demo-") as tmp:
        upstream = Service("upstream", {"UPSTREAM_DELAY": str(args.delay)}, Path(tmp, "upstream.log"))
        receiver = Service(
            "receiver",
            {
                "RECEIVER_MODE": args.mode,
                "UPSTREAM_URL": upstream.url,
                "RECEIVER_THREADS": str(args.threads),
                "RECEIVER_POOL_LIMIT": str(args.pool_limit),
                "RECEIVER_THREADPOOL_TOKENS": str(args.tokens),
                "RECEIVER_ACCESS_LOG": "true",  # the seed's log had uvicorn's access line; the demo shows it
            },
            Path(tmp, "receiver.log"),
        )
        try:
            upstream.start().wait_healthy()
            receiver.start().wait_healthy()
            print(
                f"mode={args.mode}  N={args.n}  D={args.delay:g}s  upstream {upstream.url}  receiver {receiver.url}\n"
                f"sending {args.n} requests at once; the model predicts {predicted:.3f}s "
                f"({model.FORMULAS[args.mode]}) ...",
                flush=True,
            )
            sender = sender_once(receiver.url, timeout=3600, SENDER_CONCURRENCY=str(args.n))
        finally:
            receiver.stop()
            upstream.stop()
        sent = timestamped(sender.stdout)
        burst = [(t, msg) for t, msg in sent if not msg.startswith("===")]
        window = {"since": burst[0][0], "until": burst[-1][0]} if burst else {}
        print()
        answered = [(t, msg) for t, msg in timestamped(receiver.log(), **window) if '"GET /info ' not in msg]
        print(side_by_side(burst, answered, args.mode))
        print()
        print("\n".join(line for line in sender.stdout.splitlines() if not LINE.match(line) or "===" in line))
        if sender.returncode:
            print(f"the sender failed (exit {sender.returncode}):\n{sender.stderr}\n{receiver.log()}", file=sys.stderr)
        return sender.returncode


if __name__ == "__main__":
    sys.exit(main())
