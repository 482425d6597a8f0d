"""The soak run's verdict (bench/soak.py), from synthetic samples: each promise can fail."""

from __future__ import annotations

import copy

from bench.soak import verdict


def samples(rss_end: float = 70.0, failed: float = 0.0, series_end: int = 138) -> list[dict]:
    out = []
    for i, t in enumerate(range(0, 1800, 30)):
        late = t >= 1770
        out.append({"t": float(t), "rss_mb": {"receiver": rss_end if late else 68.0 + (i > 10) * 1.0, "upstream": 60.0},
                    "series": {"receiver": series_end if late else 138, "upstream": 90},
                    "sender": {"sent": 50.0 * t, "ok": 50.0 * t - (failed if late else 0.0),
                               "failed": failed if late else 0.0}})
    return out


def test_a_steady_run_keeps_every_promise():
    v = verdict(samples(), warmup=300)
    assert v["rss_ok"] and v["errors_ok"] and v["series_ok"], v
    assert v["rss_growth"]["receiver"] == (70.0 - 68.0) / 68.0  # from the first sample after the warm-up


def test_each_promise_can_fail():
    assert not verdict(samples(rss_end=80.0), warmup=300)["rss_ok"]  # +16% after warm-up
    assert not verdict(samples(failed=100.0), warmup=300)["errors_ok"]  # 100 of 88,500: 0.11%
    assert not verdict(samples(series_end=139), warmup=300)["series_ok"]  # a new series late in the run
    assert verdict(copy.deepcopy(samples(failed=50.0)), warmup=300)["errors_ok"]  # 0.06%: within
