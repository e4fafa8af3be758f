"""Placing the load: concurrent calls kept speaking by one feeder task, or a soak of calls in turn."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.load.consts import (
    DEFAULT_TEXTS,
)
from hotline.sim.load.metrics import (
    Scrape,
    parse_metrics,
)
from hotline.sim.load.proc import ProcSample, proc_sample
from hotline.sim.load.report import RunFigures, build_report
from hotline.sim.load.spawn import _tail, spawn_server
from hotline.sim.options import CallOptions


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
    # with spawn_server: run `hotline serve` on these CPUs only, and the voice, the ear and this
    # generator on the others (the capacity ramp pins the server to one core)
    server_cpus: frozenset[int] | None = None
    # wait (at most this long) until GET /history lists every call before the "after" figures:
    # the server's CPU then includes writing the calls' records (0: do not wait)
    records_settle_s: float = 0.0


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
                            left_ms = r.media_bytes / 8.0 - r.audio_ms
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


async def _records_written(client: Any, base: str, admin: str | None) -> int | None:
    """How many calls ``GET /history`` lists (None: no admin token, or records off)."""
    import httpx

    if not admin:
        return None
    try:
        r = await client.get(
            base + "/history", headers={"Authorization": f"Bearer {admin}"}, params={"limit": 200}
        )
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
        shared_clock=True,
    )


async def run_load(opts: LoadOptions) -> dict[str, Any]:
    """Run the load (or soak) and return the JSON-able report."""
    if opts.spawn_server:
        async with spawn_server(
            embedded_voice=opts.embedded_voice,
            first_chunk_delay=opts.first_chunk_delay,
            log_level=opts.server_log_level,
            extra_env=opts.server_env,
            server_cpus=opts.server_cpus,
        ) as srv:
            result = await _run(
                opts,
                srv.url,
                srv.auth_token,
                srv.admin_token,
                srv.pid,
                srv.voice_pid,
                srv.ear_pid,
            )
            result["server"]["spawned"] = {
                "voice": "embedded"
                if opts.embedded_voice
                else "separate process (hotline tts-standin)",
                "stt": "the local ear in its own process (Scribe protocol)"
                if srv.ear_pid
                else opts.server_env.get("HOTLINE_STT", "the server's default"),
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
    ear_pid: int | None = None,
) -> dict[str, Any]:
    import httpx

    base = base.rstrip("/")
    async with httpx.AsyncClient(timeout=10.0) as client:
        before = await _get_metrics(client, base)
        proc_before = proc_sample(pid) if pid else None
        voice_before = proc_sample(voice_pid) if voice_pid else None
        ear_before = proc_sample(ear_pid) if ear_pid else None
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
        if opts.records_settle_s > 0:
            deadline = time.monotonic() + opts.records_settle_s
            while time.monotonic() < deadline:
                written = await _records_written(client, base, admin)
                if written is None or written >= min(len(reports), 200):
                    break
                await asyncio.sleep(0.5)
        after = await _get_metrics(client, base)
        proc_after = proc_sample(pid) if pid else None
        voice_after = proc_sample(voice_pid) if voice_pid else None
        ear_after = proc_sample(ear_pid) if ear_pid else None
        healthy = await _health(client, base)
    return build_report(
        RunFigures(
            opts=opts,
            reports=reports,
            feeder=feeder_obj,
            soak=soak,
            before=before,
            after=after,
            proc_before=proc_before,
            proc_after=proc_after,
            voice_before=voice_before,
            voice_after=voice_after,
            ear_before=ear_before,
            ear_after=ear_after,
            wall=wall,
            cpu_self=cpu_self,
            remaining=remaining,
            healthy=healthy,
        )
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
