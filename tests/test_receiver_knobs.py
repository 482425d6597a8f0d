"""LOG_LEVEL, RECEIVER_ACCESS_LOG and RECEIVER_METRICS; and the benchmark's reference proxies answer."""

from __future__ import annotations

import json
import time

import pytest

from bench import passthrough
from lab import SEED_BODY
from receiver.settings import Settings
from tests.conftest import eventually, scrape
from tests.conftest import run_service as run
from tools.processes import Service, free_port, get

ACCESS_LINE = '"GET /tasks/task1 HTTP/1.1" 200'


def logged(service: Service, text: str, timeout: float = 10.0) -> bool:
    """True once text shows up in the service's log (lines are written as they happen); fails after timeout."""
    return eventually(lambda: text in service.log(), timeout, f"{text!r} in {service.module}'s log", interval=0.05)


def knobs(receiver: Service) -> tuple[str, bool, bool]:
    info = json.loads(get(f"{receiver.url}/info")[1])
    assert info["mode"] == "async" and info["upstream"] is not None  # the keys /info had stay
    return info["log_level"], info["access_log"], info["metrics"]


def test_log_level_and_access_log_choose_the_lines(receiver_for):
    quiet = receiver_for("async", LOG_LEVEL="Warning", RECEIVER_ACCESS_LOG="true")
    default = receiver_for("async")
    loud = receiver_for("async", LOG_LEVEL="INFO", RECEIVER_ACCESS_LOG="true")  # any case
    for receiver in (quiet, default, loud):
        assert get(f"{receiver.url}/tasks/task1") == (200, SEED_BODY)

    # info (the default): the seed's two lines per request, and no access line unless asked
    assert logged(default, "Send task1 response") and "Received task1 Request!!" in default.log()
    assert ACCESS_LINE not in default.log()
    assert logged(loud, ACCESS_LINE) and "Send task1 response" in loud.log()
    # warning: nothing per request, even with the access log on. A deliberate fixed wait: what is
    # shown is that no line comes (the other two receivers' lines, asked for after, are in already).
    time.sleep(0.3)
    assert "task1" not in quiet.log() and "GET /tasks" not in quiet.log()

    assert knobs(default) == ("info", False, True)
    assert knobs(quiet) == ("warning", True, True)


def test_every_client_goes_straight_to_upstream_whatever_the_proxy_variables_say(receiver_for):
    # A proxy that is not there (a port nothing listens on), as Docker's proxy settings would
    # put in every container; requests, trusting the environment, would send each call to it.
    nowhere = f"http://127.0.0.1:{free_port()}"
    proxied = {name: nowhere for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")}
    proxied |= {"NO_PROXY": "", "no_proxy": ""}
    # mixed makes both calls, the loop's and the blocking one: two receivers cover all four clients
    for clients in ({"RECEIVER_ASYNC_CLIENT": "aiohttp", "RECEIVER_SYNC_CLIENT": "requests"},
                    {"RECEIVER_ASYNC_CLIENT": "httpx", "RECEIVER_SYNC_CLIENT": "httpx"}):
        receiver = receiver_for("mixed", **clients, **proxied)
        assert get(f"{receiver.url}/tasks/task1") == (200, SEED_BODY), clients
        assert json.loads(get(f"{receiver.url}/info")[1])["max_delay"]["source"] == "upstream", clients


def test_metrics_off_leaves_out_the_request_series(receiver_for):
    off = receiver_for("async", RECEIVER_METRICS="false", RECEIVER_ACCESS_LOG="1")
    on = receiver_for("async")
    for receiver in (off, on):
        assert get(f"{receiver.url}/tasks/task1")[0] == 200

    names = {name for name, _ in scrape(off.metrics_url)}  # /metrics still answers
    assert "receiver_info" in names and "receiver_event_loop_blocked_seconds" in names
    for series in ("receiver_http_requests_total", "receiver_http_request_duration_seconds_count",
                   "receiver_http_requests_in_flight", "receiver_upstream_call_duration_seconds_count"):
        assert series not in names
    names = {name for name, _ in scrape(on.metrics_url)}
    assert {"receiver_http_requests_total", "receiver_upstream_call_duration_seconds_count"} <= names
    assert knobs(off) == ("info", True, False)


def test_log_level_accepts_any_case(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    assert Settings().log_level == "error"




@pytest.mark.parametrize(
    "service, variable, bad, allowed",
    [
        ("receiver", "LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
        ("upstream", "LOG_LEVEL", "verbose", "'debug', 'info', 'warning' or 'error'"),
        ("receiver", "RECEIVER_ACCESS_LOG", "maybe", "valid boolean"),
        ("receiver", "RECEIVER_METRICS", "sometimes", "valid boolean"),
    ],
)
def test_bad_knob_exits_with_one_line(service, variable, bad, allowed):
    done = run(service, {variable: bad})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{service}: bad configuration: {variable}={bad!r}: ")
    assert allowed in lines[0]


@pytest.mark.parametrize("module", ["bench.references.fastapi_proxy", "bench.references.fastapi_httpx_proxy",
                                    "bench.references.aiohttp_proxy", "bench.references.waits",
                                    "bench.references.waits_raw"])
def test_reference_servers_answer_the_seed_body_within_the_delay_asked(start, upstream, module):
    # the proxies pass ?delay= on to upstream, as the receiver does; waits waits it itself
    server = start(module, UPSTREAM_URL=upstream.url, REFERENCE_POOL_LIMIT="0")
    began = time.monotonic()
    status, body = get(f"{server.url}/tasks/task1?delay=0.3")
    took = time.monotonic() - began
    assert status == 200 and json.loads(body) == json.loads(SEED_BODY)
    assert 0.3 <= took < 0.9, took  # upstream's own default delay is 1 s: the 0.3 was passed on
    assert server.log().strip() == ""  # no access log, no per-request lines


WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:40000/tasks/task1
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    17.50ms    4.20ms  61.00ms   91.00%
    Req/Sec     3.20k   200.00     3.50k    80.00%
  Latency Distribution
     50%   16.90ms
     75%   18.00ms
     90%   20.10ms
     99%  850.00us
  16000 requests in 5.00s, 2.30MB read
  Non-2xx or 3xx responses: 7
Requests/sec:   3199.50
Transfer/sec:    470.00KB
"""


def test_passthrough_reads_wrk_and_counts_failures():
    got = passthrough.parse_wrk(WRK_OUTPUT)
    assert (got["rps"], got["requests"], got["p50_ms"], got["p99_ms"]) == (3199.5, 16000, 16.9, 0.85)
    assert got["non_2xx"] == 7 and got["socket_errors"] == 0  # measure() turns either into an error
    clean = passthrough.parse_wrk(WRK_OUTPUT.replace("  Non-2xx or 3xx responses: 7\n", "")
                                  + "  Socket errors: connect 0, read 2, write 0, timeout 1\n")
    assert clean["non_2xx"] == 0 and clean["socket_errors"] == 3
    # a latency of a second or more is printed in seconds, with a space after it
    slow = passthrough.parse_wrk(WRK_OUTPUT.replace("     50%   16.90ms\n", "     50%    1.03s \n"))
    assert slow["p50_ms"] == 1030.0


def test_passthrough_says_when_wrk_is_missing(monkeypatch):
    monkeypatch.setattr(passthrough.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="wrk is not installed: apt-get install wrk"):
        passthrough.measure(duration=1, rounds=1)
