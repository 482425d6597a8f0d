"""`make demo`: the seed's experiment as two timelines side by side."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tools.demo import SENDER_WIDTH
from tools.processes import ROOT


def demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.demo", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(
    "mode, receiver_order, predicted",
    [
        ("sync", ["Received", "Send", "Received", "Send"], "0.600s [N·D, D=0.3s]"),
        ("async", ["Received", "Received", "Send", "Send"], "0.300s [⌈N/L⌉·D, D=0.3s]"),
        ("mixed", ["Received", "Received", "Send", "Send"], "0.900s [(N+1)·D (2N·D if L=1), D=0.3s]"),
        ("threaded", ["Received", "Received", "Send", "Send"], "0.300s [⌈N/T⌉·D, D=0.3s]"),
        ("def", ["Received", "Received", "Send", "Send"], "0.300s [⌈N/K⌉·D, D=0.3s]"),
    ],
)
def test_demo_shows_both_timelines(mode, receiver_order, predicted):
    done = demo("--mode", mode, "--delay", "0.3", "-n", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d,\d{3}  ", line)]
    sender = [row[14:] for row in rows if row[14:15] != " "]
    receiver = [row[14 + SENDER_WIDTH:] for row in rows if row[14:15] == " "]
    assert sender[:4] == ["--- task1 -----", "--- task1 Send!!", "--- task2 -----", "--- task2 Send!!"]
    assert [r.split(" ")[0] for r in receiver if r.startswith(("Received", "Send"))] == receiver_order
    assert any('"GET /tasks/task1 HTTP/1.1" 200' in r for r in receiver)  # uvicorn's access line
    assert f"mode={mode} predicted={predicted} failed=0" in done.stdout
