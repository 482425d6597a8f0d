"""SIGTERM (docker stop) with requests in flight: they are answered, and the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest

from tools.processes import sender_once

N, D = 100, 2.0


@pytest.mark.parametrize("stopped", ["receiver", "upstream"])
def test_sigterm_drains_every_request_in_flight_and_exits_0(start, tmp_path, stopped):
    upstream = start("upstream", UPSTREAM_DELAY=str(D), LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    victim = {"receiver": receiver, "upstream": upstream}[stopped]
    out = tmp_path / "burst.json"
    sending = threading.Thread(target=sender_once, args=(receiver.url,),
                               kwargs={"timeout": 60, "args": ("--json", str(out)), "SENDER_CONCURRENCY": str(N),
                                       "LOG_LEVEL": "warning"})
    sending.start()
    time.sleep(D / 2)  # the burst is in flight at both hops
    signalled = time.monotonic()
    victim.process.send_signal(signal.SIGTERM)
    code = victim.process.wait(timeout=D + 10)
    stopped_after = time.monotonic() - signalled
    sending.join()
    statuses = Counter(r["status"] for r in json.loads(out.read_text())["targets"][0]["results"])
    assert statuses == {200: N}, statuses  # every request in flight was finished, none cut
    assert code == 0, victim.log()[-2000:]  # drained: a clean exit, not death by the signal
    assert stopped_after < D / 2 + 1.0  # gone as soon as the last answer is out
