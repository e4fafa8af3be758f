"""The load generator (``hotline load``): many simulated Twilio calls at once, or a soak of many
short calls one after another, against one hotline server.

Each call is a :func:`hotline.sim.caller.place_call` (signed webhook, signed upgrade, real-time
20 ms inbound media, a playback clock that echoes marks only once their audio has played). While a
call is up, a single feeder task keeps it speaking back to back: it ``POST``s
``/calls/{CallSid}/say`` (admin token) for the next line once the server has sent the current
one's last frame (its end mark arrived) and the caller has at most ``lead_ms`` of it left to
play, so the next line's first audio arrives as the last one ends: speech is continuous when
the bridge is fast enough, and the server's time-to-first-audio and bridge-overhead histograms
measure latency, not waiting behind queued audio. The report joins what the callers measured (underruns, time to first audio, errors)
with what the server says about itself (its ``/metrics`` histograms, diffed over the run) and
with what the kernel says about the server process (CPU seconds and resident memory from
``/proc/<pid>``, when the server is local: ``--spawn-server`` or ``--server-pid``).

``--spawn-server`` starts ``hotline serve --insecure-dev`` as a child on a free port with
generated Twilio and admin tokens (signatures are checked, as in production), and by default the
local voice as a second child process (``hotline voice``) reached through
``ELEVENLABS_BASE_URL``, so the server's CPU figure is hotline's own work, as it would be with
the real ElevenLabs; ``--embedded-voice`` uses the server's in-process voice instead.

Soak (issue 5 item 4): ``hotline load --sequential 1000 --seconds 0.6 --spawn-server`` places
1,000 short calls one after another and reports the server's resident memory growth and open
file descriptors before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hotline.sim.caller import CallOptions, CallReport, place_call

__all__ = [
    "DEFAULT_TEXTS",
    "LoadOptions",
    "ProcSample",
    "SpawnedServer",
    "add_arguments",
    "env_pairs",
    "histogram_quantile",
    "parse_metrics",
    "proc_sample",
    "run",
    "run_load",
    "spawn_server",
]

#: What the callers hear, in turn (each 2-4 s of speech; the local voice caches repeats).
DEFAULT_TEXTS: tuple[str, ...] = (
    "Thanks for holding. Your call matters to us, and we will be right with you.",
    "The next show is in Portland on April twelfth, and tickets are still available.",
    "Paper Lanterns is out now everywhere you stream music, and on vinyl at the merch table.",
    "You can leave a message for Wren at hello at wren calloway dot com.",
)

#: Server metrics read from /metrics (names as hotline.server.metrics exports them).
HIST_TTFA = "hotline_time_to_first_audio_seconds"
HIST_TTS_FIRST = "hotline_tts_first_chunk_seconds"
HIST_BRIDGE = "hotline_bridge_overhead_seconds"
HIST_CONVERSION = "hotline_conversion_seconds"
_HISTOGRAMS = (HIST_TTFA, HIST_TTS_FIRST, HIST_BRIDGE, HIST_CONVERSION)
_COUNTERS = (  # counters, and the one gauge
    "hotline_active_calls",
    "hotline_calls_total",
    "hotline_utterances_total",
    "hotline_audio_bytes_out_total",
    "hotline_underruns_total",
    "hotline_underrun_seconds_total",
    "hotline_barge_ins_total",
    "hotline_elevenlabs_errors_total",
    "hotline_signature_failures_total",
    "hotline_protocol_errors_total",
)
UNDERRUN_LIMIT_MS = 20.0


# ----------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcSample:
    """One look at a process: CPU seconds (user + system, all threads), RSS bytes, open fds."""

    pid: int
    cpu_s: float
    rss_bytes: int
    fds: int
    threads: int


def proc_sample(pid: int) -> ProcSample | None:
    """Read ``/proc/<pid>``; None if the process is gone or /proc is unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        # the command name may hold spaces and parentheses: split after the last ')'
        rest = stat[stat.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(rest[11]) + int(rest[12])) / ticks  # utime, stime (fields 14, 15)
        threads = int(rest[17])
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    return ProcSample(pid, cpu, rss, fds, threads)


# ----------------------------------------------------------------------------- /metrics


@dataclass
class Scrape:
    """The parts of one /metrics scrape the report uses."""

    histograms: dict[str, dict[float, float]] = field(default_factory=dict)  # name -> le -> count
    sums: dict[str, float] = field(default_factory=dict)  # histogram name -> _sum
    counters: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> labels -> value
    process_cpu_s: float | None = None
    process_rss_bytes: float | None = None
    names: set[str] = field(default_factory=set)


def parse_metrics(text: str) -> Scrape:
    """Parse Prometheus text exposition into histogram buckets and labelled counters."""
    from prometheus_client.parser import text_string_to_metric_families

    out = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            out.names.add(name)
            if name.endswith("_bucket") and "le" in labels:
                base = name[: -len("_bucket")]
                le = math.inf if labels["le"] in ("+Inf", "Inf") else float(labels["le"])
                out.histograms.setdefault(base, {})[le] = value
            elif name.endswith("_sum") and name[: -len("_sum")] in _HISTOGRAMS:
                out.sums[name[: -len("_sum")]] = value
            elif name == "process_cpu_seconds_total":
                out.process_cpu_s = value
            elif name == "process_resident_memory_bytes":
                out.process_rss_bytes = value
            elif name in _COUNTERS:
                key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                out.counters.setdefault(name, {})[key] = value
    return out


def _diff_buckets(
    after: Mapping[float, float], before: Mapping[float, float]
) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding the
    q-th observation. ``buckets`` maps upper bound -> cumulative count (``inf`` included).
    Returns None without observations; the highest finite bound if it lands in ``+Inf``."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def _counter_diff(after: Scrape, before: Scrape | None, name: str) -> dict[str, float]:
    now = after.counters.get(name, {})
    then = before.counters.get(name, {}) if before is not None else {}
    return {k: v - then.get(k, 0.0) for k, v in now.items() if v - then.get(k, 0.0)}


def _hist_summary(after: Scrape, before: Scrape | None, name: str) -> dict[str, float | None]:
    buckets = after.histograms.get(name)
    if buckets is None:
        return {"count": None, "p50_ms": None, "p99_ms": None, "mean_ms": None}
    if before is not None and name in before.histograms:
        buckets = _diff_buckets(buckets, before.histograms[name])
    count = buckets.get(math.inf, 0.0)
    total = after.sums.get(name, 0.0) - (before.sums.get(name, 0.0) if before else 0.0)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 3)

    return {
        "count": count,
        "p50_ms": ms(histogram_quantile(0.5, buckets)),
        "p99_ms": ms(histogram_quantile(0.99, buckets)),
        "mean_ms": ms(total / count) if count else None,
    }


# ----------------------------------------------------------------------------- spawning


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SpawnedServer:
    url: str
    auth_token: str
    admin_token: str
    pid: int
    voice_pid: int | None
    log_path: str
    first_chunk_delay: float


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


@contextlib.asynccontextmanager
async def spawn_server(
    *,
    embedded_voice: bool = False,
    first_chunk_delay: float = 0.25,
    log_level: str = "info",
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> AsyncIterator[SpawnedServer]:
    """``hotline serve --insecure-dev`` (plus ``hotline voice`` unless ``embedded_voice``) as
    child processes on free loopback ports, with generated tokens; stopped on exit."""
    import httpx

    auth_token = secrets.token_hex(16)
    admin_token = secrets.token_hex(16)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    logdir = tempfile.mkdtemp(prefix="hotline-load-")
    log_path = os.path.join(logdir, "server.log")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "HOTLINE_", "TWILIO_")) and k != "PORT"
    }
    env.update(
        TWILIO_AUTH_TOKEN=auth_token,
        HOTLINE_ADMIN_TOKEN=admin_token,
        HOTLINE_PUBLIC_URL=url,
        HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY=str(first_chunk_delay),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    voice_pid: int | None = None
    try:
        if not embedded_voice:
            voice_port = _free_port()
            voice_key = secrets.token_hex(16)
            vlog = open(os.path.join(logdir, "voice.log"), "wb")
            logs.append(vlog)
            vproc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hotline",
                    "voice",
                    "--port",
                    str(voice_port),
                    "--api-key",
                    voice_key,
                    "--first-chunk-delay",
                    str(first_chunk_delay),
                ],
                stdout=vlog,
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append(vproc)
            voice_pid = vproc.pid
            env.update(
                ELEVENLABS_API_KEY=voice_key, ELEVENLABS_BASE_URL=f"ws://127.0.0.1:{voice_port}"
            )
            await _wait_port(voice_port, vproc, startup_timeout, os.path.join(logdir, "voice.log"))
        slog = open(log_path, "wb")
        logs.append(slog)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotline",
                "serve",
                "--insecure-dev",
                "--port",
                str(port),
                "--log-level",
                log_level,
            ],
            stdout=slog,
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(proc)
        deadline = time.monotonic() + startup_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"hotline serve exited with {proc.returncode}:\n{_tail(log_path)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(url + "/health/streaming")
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hotline serve did not start:\n{_tail(log_path)}")
                await asyncio.sleep(0.1)
        yield SpawnedServer(
            url, auth_token, admin_token, proc.pid, voice_pid, log_path, first_chunk_delay
        )
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                await asyncio.to_thread(p.wait, 10.0)
            except subprocess.TimeoutExpired:
                p.kill()
                await asyncio.to_thread(p.wait)
        for f in logs:
            f.close()
        if not os.environ.get("HOTLINE_LOAD_KEEP_LOGS"):
            shutil.rmtree(logdir, ignore_errors=True)


async def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"hotline voice exited with {proc.returncode}:\n{_tail(log)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"hotline voice did not start:\n{_tail(log)}")
        await asyncio.sleep(0.1)


# ----------------------------------------------------------------------------- the run


@dataclass
class LoadOptions:
    url: str | None = None  # a running server; None with spawn_server
    calls: int = 10
    seconds: float = 10.0  # each call's length (caller hangs up with `stop`)
    auth_token: str | None = None
    admin_token: str | None = None
    spawn_server: bool = False
    embedded_voice: bool = False
    first_chunk_delay: float = 0.25  # the spawned local voice's first-chunk delay
    ramp_s: float | None = None  # spread call starts over this long (default 20 ms per call, ≤ 2 s)
    sequential: int = 0  # soak: this many calls one after another (then `calls` is ignored)
    warmup_calls: int = 10  # soak: RSS baseline taken after this many calls too
    server_pid: int | None = None  # a local server's pid, for /proc figures
    texts: tuple[str, ...] = DEFAULT_TEXTS
    # the next `say` goes out when the current line has at most this much left to play at the
    # caller (about the time to first audio: the next line then starts as this one ends)
    lead_ms: float = 400.0
    # >0: instead keep this many utterances queued behind the one being sent (then the server's
    # TTFA and bridge overhead include waiting behind the audio ahead)
    queued: int = 0
    say: bool = True  # keep callers hearing speech via POST /calls/{sid}/say
    settle_s: float = 5.0  # after the calls: wait this long at most for /calls to empty
    server_log_level: str = "info"
    # with spawn_server: more environment for `hotline serve`, e.g. {"ELEVENLABS_TRANSPORT":
    # "single", "HOTLINE_CACHE_BYTES": "0"} (the TTS path for every utterance)
    server_env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Live:
    report: CallReport
    started: float = field(default_factory=time.monotonic)
    posted: int = 0
    ends_seen: int = 0
    scan: int = 0
    inflight: bool = False


class _Feeder:
    """One task for all calls: the next ``say`` for each call when its current line is nearly
    played (or, with ``queued``, keeps that many lines waiting behind the current one)."""

    def __init__(self, base: str, admin_token: str, opts: LoadOptions) -> None:
        self.base = base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {admin_token}"}
        self.opts = opts
        self.live: dict[str, _Live] = {}
        self.say_errors: Counter[str] = Counter()
        self.says = 0
        self.text_i = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def started(self, report: CallReport) -> None:
        self.live[report.call_sid] = _Live(report)

    def ended(self, call_sid: str) -> None:
        self.live.pop(call_sid, None)

    async def run(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
            try:
                while True:
                    for sid, st in list(self.live.items()):
                        r = st.report
                        if st.inflight or r.time_to_first_audio_ms is None:
                            continue  # not bridged yet: the greeting's audio has not arrived
                        names = r.mark_names
                        while st.scan < len(names):
                            if names[st.scan].endswith("-end"):
                                st.ends_seen += 1
                            st.scan += 1
                        # utterances not yet fully sent = greeting + posted - ended
                        pending = 1 + st.posted - st.ends_seen
                        if self.opts.queued > 0:
                            due = pending <= self.opts.queued
                        else:  # all sent, and little left to play at the caller
                            left_ms = r.media_frames * 20.0 - r.audio_ms
                            due = pending <= 0 and left_ms <= self.opts.lead_ms
                        if due:
                            st.inflight = True
                            task = asyncio.create_task(self._say(client, sid, st))
                            self._tasks.add(task)
                            task.add_done_callback(self._tasks.discard)
                    await asyncio.sleep(0.05)
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _say(self, client: Any, sid: str, st: _Live) -> None:
        import httpx

        text = self.opts.texts[self.text_i % len(self.opts.texts)]
        self.text_i += 1
        try:
            resp = await client.post(
                f"{self.base}/calls/{sid}/say", json={"text": text}, headers=self.headers
            )
            if resp.status_code == 202:
                st.posted += 1
                self.says += 1
            else:
                # 404/409 while the call is ending (the caller's `stop` crossed the request)
                # are expected; anything else, or earlier, is an error
                ending = time.monotonic() - st.started >= self.opts.seconds - 0.5
                if sid in self.live and not (ending and resp.status_code in (404, 409)):
                    self.say_errors[f"say HTTP {resp.status_code}"] += 1
                st.posted += 1  # do not hammer a call that refuses
        except httpx.HTTPError as exc:
            self.say_errors[f"say {type(exc).__name__}"] += 1
        finally:
            st.inflight = False


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 3)


async def _get_metrics(client: Any, base: str) -> Scrape | None:
    import httpx

    try:
        r = await client.get(base + "/metrics")
    except httpx.HTTPError:
        return None
    return parse_metrics(r.text) if r.status_code == 200 else None


async def _active_calls(client: Any, base: str, admin: str | None) -> int | None:
    import httpx

    if not admin:
        return None
    try:
        r = await client.get(base + "/calls", headers={"Authorization": f"Bearer {admin}"})
    except httpx.HTTPError:
        return None
    return len(r.json().get("calls", [])) if r.status_code == 200 else None


async def _health(client: Any, base: str) -> bool:
    import httpx

    try:
        return bool((await client.get(base + "/health")).status_code == 200)
    except httpx.HTTPError:
        return False


def _call_options(opts: LoadOptions, base: str, auth: str | None, seconds: float) -> CallOptions:
    return CallOptions(
        url=base,
        auth_token=auth,
        hangup_after_s=seconds,
        max_seconds=seconds + 30.0,
        keep_audio=False,
    )


async def run_load(opts: LoadOptions) -> dict[str, Any]:
    """Run the load (or soak) and return the JSON-able report."""
    if opts.spawn_server:
        async with spawn_server(
            embedded_voice=opts.embedded_voice,
            first_chunk_delay=opts.first_chunk_delay,
            log_level=opts.server_log_level,
            extra_env=opts.server_env,
        ) as srv:
            result = await _run(
                opts, srv.url, srv.auth_token, srv.admin_token, srv.pid, srv.voice_pid
            )
            result["server"]["spawned"] = {
                "voice": "embedded" if opts.embedded_voice else "separate process (hotline voice)",
                "first_chunk_delay_ms": opts.first_chunk_delay * 1000.0,
                "env": dict(opts.server_env),
                "log_tail": _tail(srv.log_path, 8) if result["errors"]["total"] else "",
            }
            return result
    if not opts.url:
        raise ValueError("give --url or --spawn-server")
    return await _run(opts, opts.url, opts.auth_token, opts.admin_token, opts.server_pid, None)


async def _run(
    opts: LoadOptions,
    base: str,
    auth: str | None,
    admin: str | None,
    pid: int | None,
    voice_pid: int | None,
) -> dict[str, Any]:
    import httpx

    base = base.rstrip("/")
    async with httpx.AsyncClient(timeout=10.0) as client:
        before = await _get_metrics(client, base)
        proc_before = proc_sample(pid) if pid else None
        voice_before = proc_sample(voice_pid) if voice_pid else None
        cpu0, wall0 = time.process_time(), time.monotonic()
        reports: list[CallReport]
        soak: dict[str, Any] | None = None
        feeder_obj: _Feeder | None = None
        if opts.sequential:
            reports, soak = await _soak(opts, base, auth, pid)
        else:
            reports, feeder_obj = await _concurrent(opts, base, auth, admin)
        wall = time.monotonic() - wall0
        cpu_self = time.process_time() - cpu0
        # let the server finish tearing calls down before the "after" figures
        remaining = await _active_calls(client, base, admin)
        deadline = time.monotonic() + opts.settle_s
        while remaining and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            remaining = await _active_calls(client, base, admin)
        if opts.sequential:
            await asyncio.sleep(0.5)  # sockets in close handshakes
        after = await _get_metrics(client, base)
        proc_after = proc_sample(pid) if pid else None
        voice_after = proc_sample(voice_pid) if voice_pid else None
        healthy = await _health(client, base)
    return _build_report(
        opts,
        reports,
        feeder_obj,
        soak,
        before,
        after,
        proc_before,
        proc_after,
        voice_before,
        voice_after,
        wall,
        cpu_self,
        remaining,
        healthy,
    )


async def _concurrent(
    opts: LoadOptions, base: str, auth: str | None, admin: str | None
) -> tuple[list[CallReport], _Feeder | None]:
    feeder: _Feeder | None = None
    feeder_task: asyncio.Task[None] | None = None
    if opts.say and admin:
        feeder = _Feeder(base, admin, opts)
        feeder_task = asyncio.create_task(feeder.run())
    ramp = opts.ramp_s if opts.ramp_s is not None else min(0.02 * opts.calls, 2.0)

    async def one(i: int) -> CallReport:
        await asyncio.sleep(ramp * i / max(opts.calls, 1))
        co = _call_options(opts, base, auth, opts.seconds)
        if feeder is not None:
            co.on_started = feeder.started
        try:
            return await place_call(co)
        except Exception as exc:  # a simulator bug must not hide the other calls' figures
            rep = CallReport(call_sid=co.call_sid)
            rep.errors.append(f"simulator: {type(exc).__name__}: {exc}")
            return rep
        finally:
            if feeder is not None:
                feeder.ended(co.call_sid)

    try:
        reports = list(await asyncio.gather(*(one(i) for i in range(opts.calls))))
    finally:
        if feeder_task is not None:
            feeder_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder_task
    return reports, feeder


async def _soak(
    opts: LoadOptions, base: str, auth: str | None, pid: int | None
) -> tuple[list[CallReport], dict[str, Any]]:
    reports: list[CallReport] = []
    samples: list[dict[str, Any]] = []
    first = proc_sample(pid) if pid else None
    warm: ProcSample | None = None
    every = max(1, opts.sequential // 10)
    for i in range(opts.sequential):
        co = _call_options(opts, base, auth, opts.seconds)
        try:
            reports.append(await place_call(co))
        except Exception as exc:
            rep = CallReport(call_sid=co.call_sid)
            rep.errors.append(f"simulator: {type(exc).__name__}: {exc}")
            reports.append(rep)
        n = i + 1
        if pid and n == min(opts.warmup_calls, opts.sequential):
            warm = proc_sample(pid)
        if pid and (n % every == 0 or n == opts.sequential):
            s = proc_sample(pid)
            if s is not None:
                samples.append({"calls": n, "rss_mb": round(s.rss_bytes / 2**20, 2), "fds": s.fds})
    return reports, {
        "calls": opts.sequential,
        "first": asdict(first) if first else None,
        "after_warmup": asdict(warm) if warm else None,
        "warmup_calls": opts.warmup_calls,
        "trace": samples,
    }


def _build_report(
    opts: LoadOptions,
    reports: list[CallReport],
    feeder: _Feeder | None,
    soak: dict[str, Any] | None,
    before: Scrape | None,
    after: Scrape | None,
    pb: ProcSample | None,
    pa: ProcSample | None,
    vb: ProcSample | None,
    va: ProcSample | None,
    wall: float,
    cpu_self: float,
    remaining: int | None,
    healthy: bool,
) -> dict[str, Any]:
    underruns = [r.underrun_ms for r in reports]
    ttfa = [r.time_to_first_audio_ms for r in reports if r.time_to_first_audio_ms is not None]
    call_s = sum(r.duration_ms for r in reports) / 1000.0
    audio_s = sum(r.audio_ms for r in reports) / 1000.0
    errors: Counter[str] = Counter()
    for r in reports:
        for e in r.errors:
            errors[e[:120]] += 1
        if r.ended_by not in ("caller_stop",):
            errors[f"call ended by {r.ended_by}"] += 1
        if r.time_to_first_audio_ms is None:
            errors["no audio heard"] += 1
    if feeder is not None:
        errors.update(feeder.say_errors)
    if remaining:
        errors[f"{remaining} calls still listed in /calls after the run"] += 1
    if not healthy:
        errors["/health did not answer after the run"] += 1

    server: dict[str, Any] = {}
    if after is not None:
        for key, name in (
            ("ttfa", HIST_TTFA),
            ("tts_first_chunk", HIST_TTS_FIRST),
            ("bridge_overhead", HIST_BRIDGE),
            ("conversion_per_message", HIST_CONVERSION),
        ):
            server[key] = _hist_summary(after, before, name)
        server["counters"] = {n: _counter_diff(after, before, n) for n in _COUNTERS}
        missing = [n for n in _HISTOGRAMS if n not in after.histograms]
        if missing:
            server["missing_metrics"] = missing
    cpu_s: float | None = None
    rss_before: float | None = None
    rss_after: float | None = None
    if pb is not None and pa is not None:
        cpu_s = pa.cpu_s - pb.cpu_s
        rss_before, rss_after = pb.rss_bytes, pa.rss_bytes
        server["fds_before"], server["fds_after"] = pb.fds, pa.fds
        server["threads_after"] = pa.threads
        server["cpu_source"] = f"/proc/{pa.pid}/stat"
    elif before is not None and after is not None and after.process_cpu_s is not None:
        cpu_s = after.process_cpu_s - (before.process_cpu_s or 0.0)
        rss_before, rss_after = before.process_rss_bytes, after.process_rss_bytes
        server["cpu_source"] = "/metrics process_cpu_seconds_total"
    else:
        server["cpu_source"] = (
            "unavailable: not a local pid and /metrics exports no process_cpu_seconds_total"
        )
    server["cpu_s"] = None if cpu_s is None else round(cpu_s, 3)
    server["cpu_ms_per_call_second"] = (
        round(cpu_s * 1000.0 / call_s, 3) if cpu_s is not None and call_s else None
    )
    server["cpu_ms_per_audio_second"] = (
        round(cpu_s * 1000.0 / audio_s, 3) if cpu_s is not None and audio_s else None
    )
    server["rss_mb_before"] = None if rss_before is None else round(rss_before / 2**20, 2)
    server["rss_mb_after"] = None if rss_after is None else round(rss_after / 2**20, 2)
    server["healthy_after"] = healthy
    server["active_calls_after"] = remaining
    if vb is not None and va is not None:
        server["voice_process"] = {
            "cpu_s": round(va.cpu_s - vb.cpu_s, 3),
            "rss_mb_after": round(va.rss_bytes / 2**20, 2),
        }
    n_bad = sum(1 for u in underruns if u > UNDERRUN_LIMIT_MS)
    result: dict[str, Any] = {
        "mode": "soak" if opts.sequential else "concurrent",
        "calls": len(reports),
        "seconds_per_call": opts.seconds,
        "wall_s": round(wall, 3),
        "call_seconds": round(call_s, 3),
        "audio_seconds_heard": round(audio_s, 3),
        "says_posted": feeder.says if feeder is not None else 0,
        "underrun": {
            "calls_over_20ms": n_bad,
            "max_ms": round(max(underruns), 1) if underruns else None,
            "p99_ms": _pct(underruns, 0.99),
            "total_ms": round(sum(underruns), 1),
            "per_call_ms": [round(u, 1) for u in underruns],
            "server_underruns": (server.get("counters") or {}).get("hotline_underruns_total", {}),
        },
        "ttfa_caller": {"p50_ms": _pct(ttfa, 0.5), "p99_ms": _pct(ttfa, 0.99), "n": len(ttfa)},
        "server": server,
        "errors": {"total": sum(errors.values()), "by_kind": dict(errors.most_common(20))},
        "ended_by": dict(Counter(r.ended_by for r in reports)),
        "protocol_violations": sum(r.protocol_violations for r in reports),
        "load_generator": {
            "cpu_s": round(cpu_self, 3),
            "cpu_fraction_of_one_core": round(cpu_self / wall, 3) if wall else None,
        },
    }
    if soak is not None:
        result["soak"] = _soak_summary(soak, pa)
    return result


def _soak_summary(soak: dict[str, Any], after: ProcSample | None) -> dict[str, Any]:
    out = dict(soak)
    if after is not None:
        out["after"] = asdict(after)
        first, warm = soak.get("first"), soak.get("after_warmup")
        if first:
            out["rss_growth_mb"] = round((after.rss_bytes - first["rss_bytes"]) / 2**20, 2)
            out["fd_growth"] = after.fds - first["fds"]
        if warm:
            out["rss_growth_after_warmup_mb"] = round(
                (after.rss_bytes - warm["rss_bytes"]) / 2**20, 2
            )
    return out


# ----------------------------------------------------------------------------- output


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}{unit}" if abs(v) >= 10 else f"{v:.3g}{unit}"
    return f"{v}{unit}"


def summary(result: Mapping[str, Any]) -> str:
    """The one-screen summary."""
    s = result["server"]
    u = result["underrun"]
    lines = [
        f"hotline load: {result['calls']} calls ({result['mode']}), {result['seconds_per_call']:g} s each, "
        f"wall {result['wall_s']:.1f} s, {result['call_seconds']:.0f} call-s, "
        f"{result['audio_seconds_heard']:.0f} s audio heard, {result['says_posted']} says",
        f"  underruns > 20 ms     {u['calls_over_20ms']} calls (max {_fmt(u['max_ms'], ' ms')}, "
        f"p99 {_fmt(u['p99_ms'], ' ms')}, total {_fmt(u['total_ms'], ' ms')})",
        f"  TTFA (caller, start)  p50 {_fmt(result['ttfa_caller']['p50_ms'], ' ms')}  "
        f"p99 {_fmt(result['ttfa_caller']['p99_ms'], ' ms')}",
    ]
    for key, label in (
        ("ttfa", "TTFA (server)"),
        ("tts_first_chunk", "voice first chunk"),
        ("bridge_overhead", "bridge overhead"),
        ("conversion_per_message", "conversion/message"),
    ):
        h = s.get(key)
        if h:
            lines.append(
                f"  {label:<21} p50 {_fmt(h['p50_ms'], ' ms')}  p99 {_fmt(h['p99_ms'], ' ms')}  "
                f"mean {_fmt(h['mean_ms'], ' ms')}  (n={_fmt(h['count'])})"
            )
    lines.append(
        f"  server CPU            {_fmt(s.get('cpu_s'), ' s')} = "
        f"{_fmt(s.get('cpu_ms_per_call_second'), ' ms')} per call-second "
        f"({_fmt(s.get('cpu_ms_per_audio_second'), ' ms')} per audio-second)  [{s.get('cpu_source')}]"
    )
    if "voice_process" in s:
        lines.append(f"  voice process CPU     {_fmt(s['voice_process']['cpu_s'], ' s')}")
    lines.append(
        f"  server RSS            {_fmt(s.get('rss_mb_before'), ' MB')} -> "
        f"{_fmt(s.get('rss_mb_after'), ' MB')}"
        + (f"   fds {s['fds_before']} -> {s['fds_after']}" if "fds_before" in s else "")
    )
    if "soak" in result:
        k = result["soak"]
        lines.append(
            f"  soak                  RSS growth {_fmt(k.get('rss_growth_mb'), ' MB')} "
            f"(after {k['warmup_calls']}-call warm-up {_fmt(k.get('rss_growth_after_warmup_mb'), ' MB')}), "
            f"fd growth {_fmt(k.get('fd_growth'))}"
        )
    lg = result["load_generator"]
    lines.append(
        f"  load generator CPU    {_fmt(lg['cpu_s'], ' s')} ({_fmt(lg['cpu_fraction_of_one_core'])} of one core)"
    )
    counters = s.get("counters") or {}
    errs: dict[str, float] = {}
    for name in ("hotline_elevenlabs_errors_total", "hotline_protocol_errors_total"):
        for labels, value in counters.get(name, {}).items():
            errs[f"{name[len('hotline_') : -len('_total')]}{{{labels}}}"] = value
    e = result["errors"]
    lines.append(
        f"  errors                {e['total']}"
        + (
            ""
            if not e["by_kind"]
            else "  " + "; ".join(f"{k} x{v}" for k, v in list(e["by_kind"].items())[:4])
        )
    )
    if errs:
        lines.append("  server error counters " + ", ".join(f"{k} {v:g}" for k, v in errs.items()))
    lines.append(
        f"  server after          /health {'ok' if s.get('healthy_after') else 'FAILED'}, "
        f"/calls {_fmt(s.get('active_calls_after'))} active"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (default 10)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="each call's length in seconds (default 10)"
    )
    parser.add_argument("--url", default=None, help="a running hotline server's base URL")
    parser.add_argument(
        "--auth-token", default=None, help="Twilio auth token to sign with ($TWILIO_AUTH_TOKEN)"
    )
    parser.add_argument(
        "--admin-token", default=None, help="admin bearer token for /calls ($HOTLINE_ADMIN_TOKEN)"
    )
    parser.add_argument(
        "--spawn-server",
        action="store_true",
        help="start hotline serve (and the local voice) as child processes on free ports",
    )
    parser.add_argument(
        "--embedded-voice",
        action="store_true",
        help="with --spawn-server: use the server's in-process local voice (its CPU then counts)",
    )
    parser.add_argument(
        "--first-chunk-delay",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="with --spawn-server: the local voice's first-chunk delay (default 0.25)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --spawn-server: set this in the server's environment (repeatable), e.g. "
        "ELEVENLABS_TRANSPORT=single or HOTLINE_CACHE_BYTES=0",
    )
    parser.add_argument("--server-pid", type=int, default=None, help="a local server's pid")
    parser.add_argument(
        "--ramp", type=float, default=None, metavar="SECONDS", help="spread call starts"
    )
    parser.add_argument(
        "--sequential",
        type=int,
        default=0,
        metavar="N",
        help="soak: N short calls one after another (--seconds each; try 0.6)",
    )
    parser.add_argument(
        "--lead-ms",
        type=float,
        default=LoadOptions.lead_ms,
        help="post the next say when this much of the current line is left to play (default 400)",
    )
    parser.add_argument(
        "--no-say", action="store_true", help="callers hear only the greeting (no say requests)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's default loop, not uvloop"
    )


def env_pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--server-env wants NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def options_from_args(args: argparse.Namespace) -> LoadOptions:
    return LoadOptions(
        url=args.url,
        calls=args.calls,
        seconds=args.seconds,
        auth_token=args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN") or None,
        admin_token=args.admin_token or os.environ.get("HOTLINE_ADMIN_TOKEN") or None,
        spawn_server=args.spawn_server,
        embedded_voice=args.embedded_voice,
        first_chunk_delay=args.first_chunk_delay,
        server_pid=args.server_pid,
        ramp_s=args.ramp,
        sequential=args.sequential,
        say=not args.no_say,
        lead_ms=args.lead_ms,
        server_env=env_pairs(args.server_env),
    )


def run_async(coro: Any, *, use_uvloop: bool = True) -> Any:
    """``asyncio.run`` on uvloop when available (the simulator's per-frame cost halves)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            if sys.version_info >= (3, 11):
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    return runner.run(coro)
            return uvloop.run(coro)
    return asyncio.run(coro)


def run(args: argparse.Namespace) -> int:
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"hotline load: {exc}", file=sys.stderr)
        return 2
    if not opts.spawn_server and not opts.url:
        print("hotline load: give --url URL or --spawn-server", file=sys.stderr)
        return 2
    if opts.calls < 1 and not opts.sequential:
        print("hotline load: --calls must be >= 1", file=sys.stderr)
        return 2
    if opts.say and not opts.spawn_server and not opts.admin_token and not opts.sequential:
        print(
            "hotline load: no admin token (--admin-token or $HOTLINE_ADMIN_TOKEN): callers will "
            "hear only the greeting",
            file=sys.stderr,
        )
    try:
        result = run_async(run_load(opts), use_uvloop=not args.no_uvloop)
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"hotline load: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary(result))
    return 0 if result["errors"]["total"] == 0 else 1
