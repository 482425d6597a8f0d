"""tools/snapshot.py: Grafana's variables, the drawing without Prometheus, and a real run against one."""

from __future__ import annotations

import json
import re
import time

import pytest

from tools import snapshot
from tools.processes import ROOT
from tools.snapshot import Series, Window, interpolate, legend, variables

PNG = b"\x89PNG\r\n\x1a\n"
SCRAPE, MIN_INTERVAL = snapshot.lab_intervals()


# ---- Grafana's variables ---------------------------------------------------------------------------


def test_the_lab_reads_2s_from_prometheus_and_the_datasource():
    assert (SCRAPE, MIN_INTERVAL) == (2.0, 2.0)


@pytest.mark.parametrize("max_data_points", [snapshot.DEFAULT_MAX_DATA_POINTS, 284, 584, 884, 1768])
def test_15_minutes_at_a_2s_scrape(max_data_points):
    found = variables(15 * 60, SCRAPE, max_data_points, MIN_INTERVAL)
    assert found["__rate_interval"] == "8s" and found["__rate_interval_ms"] == "8000"
    assert found["__range"] == "900s" and found["__range_s"] == "900" and found["__range_ms"] == "900000"
    assert found["__interval"] == "2s" and found["__interval_ms"] == "2000"  # 900 s / width rounds to ≤ 2 s


def test_24_hours_gives_a_larger_interval():
    found = variables(24 * 3600, SCRAPE)
    # 86400 s / 500 points = 172.8 s, which roundInterval makes 2 minutes; the rate window adds a scrape
    assert found["__interval"] == "2m" and found["__interval_ms"] == "120000"
    assert found["__rate_interval"] == "2m2s" and found["__range"] == "86400s"


def test_the_min_interval_is_respected():
    assert variables(60, SCRAPE, 1000)["__interval"] == "2s"  # 60 ms a point, but never below the scrape
    slow = variables(60, SCRAPE, 1000, min_interval=10)
    assert slow["__interval"] == "10s" and slow["__rate_interval"] == "12s"  # interval + scrape beats 4 × scrape
    assert variables(60, 0.5, 1000, min_interval=0.001)["__interval"] == "50ms"


def test_the_range_rounds_half_up_as_grafana_does():
    assert variables(900.5, SCRAPE)["__range"] == "901s" and variables(900.4, SCRAPE)["__range_s"] == "900"


def test_round_interval_follows_grafanas_table():
    table = {5: 1, 12: 10, 1499: 1000, 1500: 2000, 3499: 2000, 3500: 5000, 100000: 120000, 10**11: 31536000000}
    assert {raw: snapshot.round_interval(raw) for raw in table} == table


def test_durations_as_grafana_and_go_write_them():
    assert [snapshot.format_interval(ms) for ms in (500, 2000, 2500, 60000, 90000, 7200000)] == \
        ["500ms", "2s", "2s", "1m", "1m", "2h"]
    assert [snapshot.go_duration(ms) for ms in (500, 8000, 122000, 120000, 3600000, 1500)] == \
        ["500ms", "8s", "2m2s", "2m0s", "1h0m0s", "1.5s"]
    assert [snapshot.parse_duration(text) for text in ("2s", "500ms", "1m30s", "15")] == [2, 0.5, 90, 15]


def test_interpolate_puts_in_both_spellings_longest_names_first():
    found = variables(900, SCRAPE)
    expr = "rate(x[$__rate_interval]) / $__range_s + increase(y[${__range}]) + $__interval_ms + $__interval"
    assert interpolate(expr, found) == "rate(x[8s]) / 900 + increase(y[900s]) + 2000 + 2s"
    assert "$" not in interpolate("${__rate_interval} ${__range_ms} ${__interval_ms}", found)


def test_legend_fills_labels_and_a_missing_label_becomes_empty():
    labels = {"mode": "sync", "culprit": "requests.get"}
    assert legend("{{mode}} measured", labels) == "sync measured"
    assert legend("{{ mode }}: {{culprit}}", labels) == "sync: requests.get"
    assert legend("{{mode}} · {{server}} ×{{workers}}", labels) == "sync ·  ×"
    named = {"__name__": "up", "job": "receiver", "instance": "a:1"}
    assert legend("", named) == legend("__auto", named) == 'up{instance="a:1", job="receiver"}'
    assert legend("", {}, expr="vector(0)") == "vector(0)"  # an empty name: the query


def test_values_in_a_panels_unit():
    assert [snapshot.format_value(v, "s") for v in (0, 0.2, 1.234, 90)] == ["0 s", "200 ms", "1.2 s", "1.5 min"]
    assert snapshot.format_value(2.5, "reqps") == "2.5 req/s" and snapshot.format_value(1500, "short") == "1.5 K"
    assert snapshot.format_value(0.25, "percentunit") == "25%" and snapshot.format_value(3, "none") == "3"


# ---- Drawing without Prometheus --------------------------------------------------------------------


class Fake:
    """A Source answering from a table of substrings; it records every query it was asked."""

    def __init__(self, answers: dict[str, list[dict[str, str]]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, tuple[float, ...]]] = []

    def _labels(self, expr: str) -> list[dict[str, str]]:
        return next((labels for key, labels in self.answers.items() if key in expr), [])

    def instant(self, expr: str, at: float) -> list[Series]:
        self.asked.append((expr, (at,)))
        return [Series(labels, ((at, 3.0),)) for labels in self._labels(expr)]

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        self.asked.append((expr, (start, end, step)))
        points = tuple((start + i * step, float(i % 7)) for i in range(int((end - start) / step) + 1))
        return [Series(labels, points) for labels in self._labels(expr)]


def panel(id_: int, kind: str, title: str, x: int, y: int, w: int, h: int, **rest) -> dict:
    return {"id": id_, "type": kind, "title": title, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **rest}


def target(expr: str, legend_format: str, instant: bool = False) -> dict:
    return {"refId": "A", "expr": expr, "legendFormat": legend_format, "instant": instant, "range": not instant}


def board() -> dict:
    fallback = {"defaults": {"unit": "s", "noValue": "nothing yet"}}
    return {"title": "Test board", "panels": [
        panel(1, "stat", "Mode", 0, 0, 6, 4, targets=[target("max by (mode) (info)", "{{mode}}", True)],
              options={"textMode": "name"}),
        panel(2, "stat", "Quiet stat", 6, 0, 6, 4, targets=[target("absent_metric", "{{mode}}", True)],
              fieldConfig=fallback),
        panel(3, "stat", "Empty stat", 12, 0, 6, 4, targets=[target("missing_stat", "x", True)]),
        panel(4, "gauge", "A gauge", 18, 0, 6, 4, targets=[target("max by (mode) (info)", "{{mode}}")]),
        panel(5, "text", "", 0, 4, 24, 4, options={"content": "**Bold** `code`\n\n| a | b |\n|---|---|\n| x | y |"}),
        panel(6, "row", "A heading", 0, 8, 24, 1),
        panel(7, "timeseries", "Rates", 0, 9, 12, 8, fieldConfig={"defaults": {"unit": "reqps"}},
              targets=[target("sum by (mode) (rate(requests_total[$__rate_interval]))", "{{mode}} {{missing}}")]),
        panel(8, "timeseries", "Empty graph", 12, 9, 6, 8, targets=[target("rate(nothing[$__rate_interval])", "")]),
        panel(9, "timeseries", "Quiet graph", 18, 9, 6, 8, targets=[target("nothing_either", "")],
              fieldConfig=fallback),
    ]}


ANSWERS = {"info": [{"mode": "async"}], "requests_total": [{"mode": "sync"}, {"mode": "async"}]}
END = 1_700_000_000.5
WINDOW = Window(END - 900, END, SCRAPE, MIN_INTERVAL)


def test_a_fake_source_draws_the_png_and_reports_panels_without_data_or_fallback(tmp_path):
    source, lines = Fake(ANSWERS), []
    results = snapshot.snapshot(board(), source, WINDOW, "fake://", tmp_path / "out" / "board.png", lines.append)
    assert (tmp_path / "out" / "board.png").read_bytes().startswith(PNG)
    assert len(lines) == 9 and "Empty graph: NO DATA" in lines[7] and "'nothing yet' (noValue)" in lines[8]
    # no noValue and nothing drawn: reported; a noValue fallback, text and row panels: never
    assert snapshot.missing(results) == ["Empty stat", "Empty graph"]
    by_title = {data.panel["title"]: data for data in results}
    assert [s.name for s in by_title["Rates"].series] == ["sync ", "async "]  # {{missing}}: empty
    assert by_title["A gauge"].has_data  # queried though not drawn
    # Grafana's variables went in, range queries aligned to the step, instant ones at the end
    assert all("$" not in expr for expr, _ in source.asked)
    assert ("sum by (mode) (rate(requests_total[8s]))", (1_699_999_100.0, 1_700_000_000.0, 2.0)) in source.asked
    assert ("absent_metric", (WINDOW.end,)) in source.asked


def test_require_data_exits_1_after_writing_and_names_each_panel(tmp_path, capsys):
    dashboard = tmp_path / "board.json"
    dashboard.write_text(json.dumps(board()))
    out = tmp_path / "board.png"
    args = ["--dashboard", str(dashboard), "--out", str(out), "--end", str(WINDOW.end), "--prometheus", "fake://"]
    assert snapshot.main([*args, "--require-data"], source=Fake(ANSWERS)) == 1
    assert out.read_bytes().startswith(PNG)
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["no data: Empty stat", "no data: Empty graph"]
    assert captured.out.splitlines()[-1] == str(out) and len(captured.out.splitlines()) == 10
    everything = {"": [{"mode": "async"}]}  # every query answers
    assert snapshot.main([*args, "--require-data"], source=Fake(everything)) == 0
    assert snapshot.main(args, source=Fake(ANSWERS)) == 0  # without --require-data: the picture is enough


def test_the_lab_dashboard_draws_from_a_fake_source(tmp_path):
    dashboard = json.loads((ROOT / "grafana/dashboards/lab.json").read_text())
    results = snapshot.snapshot(dashboard, Fake({"": [{"mode": "async", "job": "receiver"}]}), WINDOW, "fake://",
                                tmp_path / "lab.png", lambda line: None)
    assert (tmp_path / "lab.png").read_bytes().startswith(PNG)
    assert snapshot.missing(results) == [] and not any(data.errors for data in results)


# ---- Against a real Prometheus ---------------------------------------------------------------------


def about_receiver_and_upstream(dashboard: dict) -> list[dict]:
    """The panels whose queries read receiver or upstream metrics and no sender metric."""
    chosen = []
    for p in dashboard["panels"]:
        jobs = {m for t in p.get("targets", []) for m in re.findall(r"\b(sender|receiver|upstream)_\w+", t["expr"])}
        if jobs and "sender" not in jobs:
            chosen.append(p)
    return chosen


def test_a_snapshot_of_a_real_prometheus(scraped_lab, tmp_path, capsys):
    prometheus = scraped_lab("async")
    dashboard = json.loads((ROOT / "grafana/dashboards/lab.json").read_text())
    wanted = about_receiver_and_upstream(dashboard)
    assert len(wanted) >= 5, [p["title"] for p in wanted]
    source, lacking, deadline = snapshot.Prometheus(prometheus), ["?"], time.monotonic() + 30
    while lacking:  # until every such panel has data (the first scrapes, a rate's two samples)
        assert time.monotonic() < deadline, f"no data within 30 s: {lacking}"
        now = time.time()
        window = Window(now - 120, now, SCRAPE, MIN_INTERVAL)
        lacking = [p["title"] for p in wanted if not snapshot.fetch(p, source, window).has_data]
        if lacking:
            time.sleep(0.5)
    out = tmp_path / "dashboard.png"
    code = snapshot.main(["--prometheus", prometheus, "--minutes", "2", "--out", str(out), "--require-data"])
    captured = capsys.readouterr()
    assert out.read_bytes().startswith(PNG) and captured.out.splitlines()[-1] == str(out)
    named = {line.removeprefix("no data: ") for line in captured.err.splitlines()}
    assert code in (0, 1) and not named & {p["title"] for p in wanted}, captured.err
    for p in wanted:  # its progress line counts the series it drew
        (line,) = [line for line in captured.out.splitlines() if f"] {p['type']:<10} {p['title']}: " in line][:1]
        assert re.search(r": \d+ series", line), line
