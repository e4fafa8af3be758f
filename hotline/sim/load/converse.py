"""``hotline load --converse N``: concurrent calls that hold a conversation, and its figures.

Each call hears the greeting, then asks ``N`` questions aloud (eSpeak NG in real-time 20 ms
frames, :attr:`hotline.sim.options.CallOptions.speak`), each once the previous reply was heard,
and hangs up after the last reply. Reported:

* caller side: voice to voice per question (the caller's end of speech -> first reply audio
  received), p50/p95/max, and how many questions got a reply;
* server side, from ``/metrics`` deltas over the run: ``hotline_voice_to_voice_seconds`` per stage
  (silence, recogniser, dispatch, model, to_tts, voice, playout, total, and ``hotline``: its own
  share, dispatch + to_tts + playout) as p50 (Prometheus' interpolation inside the buckets) and
  mean; with one call, the exact per-turn values (a scrape around each question) too.

With ``--spawn-server`` the server runs the way production does with a remote recogniser: the
local ear in its own process (``python -m hotline.ear``, reached over Deepgram's live protocol,
which it speaks), the local voice in its own, so their CPU does not sit in hotline's process; the
call script is :data:`CONVERSE_SCRIPT` (short lines, a few intents, so a run is quick and the
ear's grammar is small).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.sim.call_report import SERVER_STAGES, CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions
from hotline.sim.server_split import V2vSnapshot, scrape_v2v

__all__ = [
    "CONVERSE_QUESTIONS",
    "CONVERSE_SCRIPT",
    "ConverseOptions",
    "converse_summary",
    "run_converse",
]

#: The call script of a spawned conversing server.
CONVERSE_SCRIPT = """
greeting = "Hello, you have reached the tour line. Ask me anything."
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
goodbye_digit = "0"
fallback = "Sorry, I did not catch that."
brain_error = "Sorry, trouble on my end."

[menu]
1 = "The tour starts in Portland in April."

[intents.tour]
phrases = ["tour", "tour dates", "dates"]
say = "The tour starts in Portland in April, then Seattle."

[intents.album]
phrases = ["album", "new album"]
say = "The new album is called Paper Lanterns."
"""

#: What conversing callers ask, in turn (each recognised by the local ear on that script).
CONVERSE_QUESTIONS: tuple[str, ...] = ("What are the tour dates?", "Tell me about the new album")

_STAGES = (*SERVER_STAGES, "total", "hotline")


@dataclass
class ConverseOptions:
    calls: int = 1
    questions: int = 2  # per call
    url: str | None = None  # a running server (else spawn one)
    auth_token: str | None = None
    ramp_s: float | None = None  # spread call starts (default 100 ms per call, at most 10 s)
    max_seconds: float = 120.0
    texts: tuple[str, ...] = CONVERSE_QUESTIONS
    server_env: dict[str, str] = field(default_factory=dict)  # with a spawned server
    first_chunk_delay: float = 0.25  # the spawned local voice's own delay
    ear_engine: str = "grammar"  # the spawned ear's: grammar or whisper


@dataclass
class _Ear:
    """The spawned ear: its pid (CPU read from /proc) and, once stopped, its decode-pool line."""

    pid: int
    pool: str = ""


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def _spawned(opts: ConverseOptions) -> AsyncIterator[tuple[str, str, _Ear]]:
    """The local ear in its own process, then ``hotline serve`` (and voice) reaching it."""
    from hotline.ear.process import EarProcess
    from hotline.sim.load.spawn import spawn_server

    tmp = tempfile.mkdtemp(prefix="hotline-converse-")
    script = os.path.join(tmp, "script.toml")
    with open(script, "w", encoding="utf-8") as f:
        f.write(CONVERSE_SCRIPT)
    key = secrets.token_hex(8)
    ear: EarProcess | None = None
    info: _Ear | None = None
    log_path = os.path.join(tmp, "ear.log")
    try:
        with open(log_path, "wb") as ear_log:
            ear = await EarProcess.start(60.0, api_key=key, stderr=ear_log, engine=opts.ear_engine)
        info = _Ear(ear.proc.pid)
        env = {
            "HOTLINE_SCRIPT": script,
            "HOTLINE_STT": "deepgram",
            "DEEPGRAM_API_KEY": key,
            "HOTLINE_STT_URL": ear.url,
            "HOTLINE_BRAIN": "script",
            **opts.server_env,
        }
        async with spawn_server(extra_env=env, first_chunk_delay=opts.first_chunk_delay) as srv:
            yield srv.url, srv.auth_token, info
    finally:
        if ear is not None:
            await ear.stop()
            if info is not None:
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    info.pool = next((ln.strip() for ln in f if "decode pool:" in ln), "")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


async def run_converse(opts: ConverseOptions) -> dict[str, Any]:
    """Run the conversing calls; return the JSON report (see the module docstring)."""
    if opts.calls < 1 or opts.questions < 1:
        raise ValueError("--converse needs at least one call and one question")
    if opts.url:
        return await _run(opts, opts.url, opts.auth_token)
    async with _spawned(opts) as (url, token, ear):
        result = await _run(opts, url, token, ear)
    result["ear"]["pool"] = ear.pool
    return result


async def _server_underruns(client: Any, url: str) -> tuple[float, float] | None:
    """The server's ``hotline_underruns_total`` and ``hotline_underrun_seconds_total`` now."""
    import httpx

    from hotline.sim.load.metrics import parse_metrics

    try:
        r = await client.get(url.rstrip("/") + "/metrics", timeout=5.0)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    counters = parse_metrics(r.text).counters
    return (
        sum(counters.get("hotline_underruns_total", {}).values()),
        sum(counters.get("hotline_underrun_seconds_total", {}).values()),
    )


async def _run(
    opts: ConverseOptions, url: str, token: str | None, ear: _Ear | None = None
) -> dict[str, Any]:
    import httpx

    texts = tuple(opts.texts[i % len(opts.texts)] for i in range(opts.questions))
    ramp = opts.ramp_s if opts.ramp_s is not None else min(0.1 * opts.calls, 10.0)
    one = opts.calls == 1

    async def call(i: int) -> CallReport:
        if opts.calls > 1:
            await asyncio.sleep(ramp * i / opts.calls)
        return await place_call(
            CallOptions(
                url=url,
                auth_token=token,
                speak=texts,
                hangup_after_replies=True,
                server_split=one,
                max_seconds=opts.max_seconds,
                keep_audio=False,
            )
        )

    async with httpx.AsyncClient() as client:
        before = await scrape_v2v(client, url)
        underruns0 = await _server_underruns(client, url)
        ear_cpu0 = _proc_cpu_s(ear.pid) if ear is not None else None
        t0 = time.monotonic()
        reports = await asyncio.gather(*(call(i) for i in range(opts.calls)))
        wall = time.monotonic() - t0
        ear_cpu1 = _proc_cpu_s(ear.pid) if ear is not None else None
        after = await scrape_v2v(client, url)
        underruns1 = await _server_underruns(client, url)
    result = converse_report(opts, reports, before, after, wall)
    # The server's own count (hotline_underruns_total: its pacer found a call's playback
    # starved mid-utterance), not only what the callers heard.
    result["server_underruns"] = (
        None
        if underruns0 is None or underruns1 is None
        else {"count": underruns1[0] - underruns0[0], "seconds": underruns1[1] - underruns0[1]}
    )
    cpu = None if ear_cpu0 is None or ear_cpu1 is None else ear_cpu1 - ear_cpu0
    result["ear"] = {
        "engine": opts.ear_engine if ear is not None else None,
        "cpu_s": cpu,
        # the ear's CPU per second of one caller's call (each call is on the line ~wall_s)
        "cpu_s_per_caller_s": None if cpu is None else cpu / (opts.calls * wall),
        "pool": "",
    }
    return result


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _stage_figures(
    before: V2vSnapshot | None, after: V2vSnapshot | None
) -> dict[str, dict[str, float | None]]:
    from hotline.sim.load.metrics import histogram_quantile

    out: dict[str, dict[str, float | None]] = {}
    if after is None:
        return out
    for stage in _STAGES:
        total, count, buckets = after.get(stage, (0.0, 0.0, {}))
        b_total, b_count, b_buckets = (before or {}).get(stage, (0.0, 0.0, {}))
        n = count - b_count
        if n <= 0:
            continue
        diff = {le: c - b_buckets.get(le, 0.0) for le, c in buckets.items()}
        p50 = histogram_quantile(0.5, diff)
        p95 = histogram_quantile(0.95, diff)
        out[stage] = {
            "turns": n,
            "mean_ms": (total - b_total) / n * 1000.0,
            "p50_ms": None if p50 is None else p50 * 1000.0,
            "p95_ms": None if p95 is None else p95 * 1000.0,
        }
    return out


def converse_report(
    opts: ConverseOptions,
    reports: list[CallReport],
    before: V2vSnapshot | None,
    after: V2vSnapshot | None,
    wall_s: float,
) -> dict[str, Any]:
    turns = [t for r in reports for t in r.turns]
    v2v = [t.voice_to_voice_ms for t in turns if t.voice_to_voice_ms is not None]
    exact = [t.server["hotline"] for t in turns if t.server and "hotline" in t.server]
    errors: dict[str, int] = {}
    for r in reports:
        for e in r.errors:
            errors[e[:80]] = errors.get(e[:80], 0) + 1
        if not r.ok and not r.errors:
            errors[f"ended by {r.ended_by}"] = errors.get(f"ended by {r.ended_by}", 0) + 1
    return {
        "calls": opts.calls,
        "questions_per_call": opts.questions,
        "wall_s": wall_s,
        "questions": len(turns),
        "answered": len(v2v),
        "caller_v2v_ms": {
            "p50": _pct(v2v, 0.5),
            "p95": _pct(v2v, 0.95),
            "max": max(v2v) if v2v else None,
            "mean": statistics.fmean(v2v) if v2v else None,
        },
        "server_v2v": _stage_figures(before, after),
        # one call: hotline's own share of each turn, exactly (a scrape around each question)
        "hotline_share_exact_ms": exact,
        "hotline_share_exact_p50_ms": statistics.median(exact) if exact else None,
        "underrun_ms": sum(r.underrun_ms for r in reports),
        "errors": {"total": sum(errors.values()), **errors},
    }


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def converse_summary(result: Mapping[str, Any]) -> str:
    """The conversing run as text."""
    c = result["caller_v2v_ms"]
    lines = [
        f"conversing calls   {result['calls']} x {result['questions_per_call']} questions in "
        f"{result['wall_s']:.1f} s: {result['answered']}/{result['questions']} answered",
        f"voice to voice     caller side p50 {_fmt(c['p50'], 0)} ms, p95 {_fmt(c['p95'], 0)} ms, "
        f"max {_fmt(c['max'], 0)} ms",
        "server split       stage          p50 ms    p95 ms   mean ms  turns",
    ]
    for stage, f in result["server_v2v"].items():
        lines.append(
            f"                   {stage:<12} {_fmt(f['p50_ms'], 2):>8}  {_fmt(f['p95_ms'], 2):>8}"
            f"  {_fmt(f['mean_ms'], 2):>8}  {f['turns']:>5.0f}"
        )
    hs = result["server_v2v"].get("hotline")
    if hs is not None:
        exact = result.get("hotline_share_exact_p50_ms")
        lines.append(
            f"hotline's own      p50 {_fmt(hs['p50_ms'], 2)} ms (buckets)"
            + (f", {exact:.2f} ms exact (per turn)" if exact is not None else "")
            + " of voice to voice: dispatch + to TTS + playout"
        )
    server = result.get("server_underruns")
    lines.append(
        f"underrun           {result['underrun_ms']:.0f} ms (callers); server "
        + (
            "unread"
            if server is None
            else f"{server['count']:.0f} underruns, {server['seconds'] * 1000:.0f} ms"
        )
    )
    ear = result.get("ear") or {}
    if ear.get("cpu_s") is not None:
        lines.append(
            f"ear ({ear['engine']})    {ear['cpu_s']:.2f} CPU-s, "
            f"{ear['cpu_s_per_caller_s']:.4f} CPU-s per caller-second"
            + (f"; {ear['pool']}" if ear.get("pool") else "")
        )
    errs = {k: v for k, v in result["errors"].items() if k != "total"}
    lines.append(
        "errors             "
        + ("none" if not errs else "; ".join(f"{k} x{v}" for k, v in errs.items()))
    )
    return "\n".join(lines)
