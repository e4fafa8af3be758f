"""hotline load: metrics parsing against the server's real exporter, /proc sampling, a small
concurrent run and a 100-call soak against a spawned ``hotline serve`` (real processes, real
sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys

import pytest

from hotline.server.metrics import Metrics
from hotline.sim.call_report import CallReport
from hotline.sim.load import (
    HIST_BRIDGE,
    HIST_TTFA,
    LoadOptions,
    ProcSample,
    RunFigures,
    build_report,
    histogram_quantile,
    parse_metrics,
    proc_sample,
    run_load,
    summary,
)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.1: 0.0, 0.2: 50.0, 0.4: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.2)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.396)
    assert histogram_quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {1.0: 1.0, math.inf: 10.0}) == 1.0  # lands in +Inf


def test_parses_the_servers_own_metrics() -> None:
    m = Metrics()
    for v in (0.0003, 0.0004, 0.002):
        m.bridge_overhead.observe(v)
    m.time_to_first_audio.observe(0.31)
    m.elevenlabs_errors.labels("timeout").inc()
    m.protocol_errors.labels("twilio").inc(3)
    m.active_calls.inc()
    s = parse_metrics(m.render().decode())
    assert s.histograms[HIST_BRIDGE][math.inf] == 3
    assert s.histograms[HIST_TTFA][math.inf] == 1
    assert s.counters["hotline_elevenlabs_errors_total"] == {"kind=timeout": 1.0}
    assert s.counters["hotline_protocol_errors_total"] == {"side=twilio": 3.0}
    assert s.counters["hotline_active_calls"] == {"": 1.0}
    p50 = histogram_quantile(0.5, s.histograms[HIST_BRIDGE])
    assert p50 is not None and 0.00025 <= p50 <= 0.0005


def test_proc_sample_reads_this_process() -> None:
    s = proc_sample(os.getpid())
    assert s is not None
    assert s.rss_bytes > 10 * 2**20 and s.fds >= 3 and s.threads >= 1 and s.cpu_s > 0
    assert proc_sample(2**22 + 12345) is None  # no such pid


def test_cli_needs_a_target() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hotline", "load", "--calls", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--spawn-server" in r.stderr


def test_small_concurrent_run_against_a_spawned_server() -> None:
    result = asyncio.run(run_load(LoadOptions(spawn_server=True, calls=3, seconds=4.0)))
    assert result["errors"]["total"] == 0, result["errors"]
    assert result["calls"] == 3 and result["ended_by"] == {"caller_stop": 3}
    assert result["underrun"]["calls_over_20ms"] == 0
    assert result["audio_seconds_heard"] > 6.0  # speech most of the time
    assert result["ttfa_caller"]["n"] == 3
    s = result["server"]
    assert s["ttfa"]["count"] >= 3 and s["bridge_overhead"]["p50_ms"] is not None
    assert s["cpu_s"] is not None and s["cpu_s"] > 0
    assert s["rss_mb_after"] > 20 and s["active_calls_after"] == 0 and s["healthy_after"]
    assert "missing_metrics" not in s
    assert "voice_process" in s  # the local voice ran as its own process
    json.dumps(result)
    text = summary(result)
    assert "bridge overhead" in text and "server CPU" in text


@pytest.mark.slow
def test_soak_100_sequential_calls() -> None:
    """Issue 5 item 4 in small: 100 short calls one after another against one server; no
    resident-memory growth beyond 10 MB, no leaked file descriptors, nothing left active.
    (The 1,000-call run: ``hotline load --sequential 1000 --seconds 0.6 --spawn-server``.)
    Each call lasts 0.5 s: the first greeting of a fresh server comes ~0.1 s after ``start``
    here (~0.06 s warm), and a machine half this one's speed must still hear it."""
    result = asyncio.run(
        run_load(
            LoadOptions(
                spawn_server=True,
                sequential=100,
                seconds=0.5,
                first_chunk_delay=0.05,
                warmup_calls=10,
            )
        )
    )
    assert result["errors"]["total"] == 0, result["errors"]
    soak = result["soak"]
    assert soak["rss_growth_after_warmup_mb"] <= 10.0, soak
    assert soak["fd_growth"] <= 0, soak
    assert result["server"]["active_calls_after"] == 0
    assert result["server"]["counters"]["hotline_calls_total"] == {"": 100.0}


def test_build_report_joins_callers_server_and_process_figures() -> None:
    """The report alone, from hand-made figures (no server): errors, CPU, memory, health."""
    ok = CallReport(call_sid="CA1", time_to_first_audio_ms=300.0, ended_by="caller_stop")
    ok.audio_ms = 4000.0
    broken = CallReport(call_sid="CA2", ended_by="error", errors=["webhook POST failed"])
    m = Metrics()
    before = parse_metrics(m.render().decode())
    m.time_to_first_audio.observe(0.3)
    after = parse_metrics(m.render().decode())
    result = build_report(
        RunFigures(
            opts=LoadOptions(calls=2, seconds=4.0),
            reports=[ok, broken],
            feeder=None,
            soak=None,
            before=before,
            after=after,
            proc_before=ProcSample(pid=7, cpu_s=1.0, rss_bytes=50 * 2**20, fds=10, threads=2),
            proc_after=ProcSample(pid=7, cpu_s=1.5, rss_bytes=52 * 2**20, fds=11, threads=3),
            voice_before=None,
            voice_after=None,
            wall=5.0,
            cpu_self=0.25,
            remaining=1,
            healthy=False,
        )
    )
    errors = result["errors"]
    assert errors["total"] >= 4, errors  # the call's error, its ending, /calls, /health
    text = json.dumps(errors)
    assert "webhook POST failed" in text and "still listed in /calls" in text
    assert "/health did not answer" in text
    s = result["server"]
    assert s["cpu_s"] == 0.5 and s["cpu_source"] == "/proc/7/stat"
    assert (s["rss_mb_before"], s["rss_mb_after"]) == (50.0, 52.0)
    assert (s["fds_before"], s["fds_after"], s["healthy_after"]) == (10, 11, False)
    assert s["ttfa"]["count"] == 1
    assert result["calls"] == 2 and "voice_process" not in s
    assert "server CPU" in summary(result)
