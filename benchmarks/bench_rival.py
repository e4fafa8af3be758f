"""hotline against pipecat on the same job: N calls, server CPU per call-second.

    python -m benchmarks.bench_rival [--calls 10] [--seconds 12] [--json]
        [--rival-venv /work/rival-venv] [--no-close-with-flush]
    python -m benchmarks.bench_rival --converse 2 [--calls 10] [--json]

Both servers answer the same simulated Twilio calls (the signed webhook, ``<Connect><Stream>``,
real-time inbound media, a playback clock that counts underruns), both speak through the same
local voice (``hotline tts-standin``, a separate process whose CPU counts for neither), one
after the other:

- hotline: ``hotline serve``.
- pipecat: benchmarks/rival_pipecat.py (pipecat's TwilioFrameSerializer + ElevenLabs WebSocket
  TTS service, FastAPI/uvicorn) in its own venv, created here if missing (:data:`RIVAL_DEPS`,
  pinned); pipecat is a test-only rival, never a hotline dependency.

Greeting only (default; ``hotline load --no-say``): both speak the default script's greeting on
``start``, nobody listens.

Conversing (``--converse N``): the calls of ``hotline load --converse N``
(hotline.sim.load.converse: the greeting, then N questions asked aloud in eSpeak, each after the
previous reply, then hang-up), on that module's call script, for both:

- hotline with its shipped turn stack (``HOTLINE_VAD=auto``: Silero; two-step endpointing),
  the script brain, ``HOTLINE_STT=deepgram`` at the local ear;
- pipecat with its default turn stack: Silero VAD + Smart Turn v3 (``LocalSmartTurnAnalyzerV3``),
  ``DeepgramSTTService`` at the local ear, a brain giving the script's replies (see
  rival_pipecat.py).

Each side gets its own local ear (``python -m hotline.ear``, the grammar recogniser, one
process, reached over Deepgram's live protocol: the same recogniser process kind for both) and
its own voice process; the server's, the ear's and the voice's CPU are read from /proc apart
(user + system time of each process, all its threads) around the calls. Call-seconds are the
calls' own durations.

Prints server CPU ms per call-second, underruns, caller TTFA (greeting) or voice to voice and
answered questions (conversing), and pipecat/hotline ratios. See rival_pipecat.py for the
``close_context`` workaround (``--no-close-with-flush``: pipecat as shipped, which against the
local voice hears no audio at all).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks.common import versions
from hotline.loopback import free_port
from hotline.sim.load import LoadOptions, env_pairs, run_async, run_load

ROOT = Path(__file__).resolve().parent.parent
PIPECAT = "pipecat-ai[websocket,deepgram]==1.14.0"
# pinned: what the figures in README were measured with
RIVAL_DEPS = [PIPECAT, "deepgram-sdk==7.17.0", "fastapi==0.165.0", "uvicorn==0.55.0"]


def ensure_rival_venv(venv: Path) -> Path:
    """The rival venv's python, creating the venv and installing pipecat if needed."""
    py = venv / "bin" / "python"
    if py.exists():
        ok = subprocess.run(
            [py, "-c", "import pipecat, deepgram, fastapi, uvicorn"], capture_output=True
        )
        if ok.returncode == 0:
            return py
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", *RIVAL_DEPS], check=True)
    return py


async def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not up after {timeout} s")


@contextlib.asynccontextmanager
async def rival_server(
    rival_py: Path,
    delay: float,
    close_with_flush: bool,
    script: Path | None = None,
    stt: tuple[str, str] | None = None,
    turn_stop: str = "smart-turn",
) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """rival_pipecat.py and its own local voice on free ports: (base url, {role: pid}).

    ``stt``: (the local ear's url, its key): the conversing pipeline."""
    logdir = Path(tempfile.mkdtemp(prefix="hotline-rival-"))
    voice_port, rival_port = free_port(), free_port()
    key = os.urandom(8).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELEVENLABS_", "HOTLINE_"))}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(logdir / "voice.log", "wb") as vlog, open(logdir / "rival.log", "wb") as rlog:
            voice = subprocess.Popen(
                [sys.executable, "-m", "hotline", "tts-standin", "--port", str(voice_port),
                 "--api-key", key, "--first-chunk-delay", str(delay)],
                stdout=vlog, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            procs.append(voice)
            args = [str(rival_py), "-W", "ignore::DeprecationWarning",
                    str(ROOT / "benchmarks" / "rival_pipecat.py"), "--port", str(rival_port),
                    "--voice-url", f"ws://127.0.0.1:{voice_port}", "--api-key", key,
                    "--close-with-flush" if close_with_flush else "--no-close-with-flush"]  # fmt: skip
            if script is not None:
                args += ["--script", str(script)]
            if stt is not None:
                args += ["--stt-url", stt[0], "--stt-key", stt[1], "--turn-stop", turn_stop]
            rival = subprocess.Popen(args, stdout=rlog, stderr=subprocess.STDOUT, env=env)
            procs.append(rival)
            base = f"http://127.0.0.1:{rival_port}"
            await _wait_http(base + "/health", rival, 60.0)
            yield base, {"server": rival.pid, "voice": voice.pid}
    finally:
        for p in reversed(procs):  # the rival first: its voice must outlive its calls
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def run_rival(
    rival_py: Path, calls: int, seconds: float, delay: float, close_with_flush: bool
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with rival_server(rival_py, delay, close_with_flush) as (base, pids):
            opts = LoadOptions(
                url=base, calls=calls, seconds=seconds, say=False, server_pid=pids["server"]
            )
            return await run_load(opts)

    result: dict[str, Any] = run_async(go())
    return result


def run_hotline(
    calls: int, seconds: float, delay: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    opts = LoadOptions(
        spawn_server=True,
        calls=calls,
        seconds=seconds,
        say=False,
        first_chunk_delay=delay,
        server_env=dict(env or {}),
    )
    result: dict[str, Any] = run_async(run_load(opts))
    return result


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    s = r["server"]
    return {
        "cpu_ms_per_call_second": s.get("cpu_ms_per_call_second"),
        "cpu_ms_per_audio_second": s.get("cpu_ms_per_audio_second"),
        "audio_seconds_heard": r.get("audio_seconds_heard"),
        "underrun_calls_over_20ms": r["underrun"]["calls_over_20ms"],
        "underrun_total_ms": r["underrun"]["total_ms"],
        "ttfa_caller_p50_ms": r["ttfa_caller"]["p50_ms"],
        "ttfa_caller_p99_ms": r["ttfa_caller"]["p99_ms"],
        "rss_mb_after": s.get("rss_mb_after"),
        "errors": r["errors"],
    }


# ------------------------------------------------------------------------------ conversing


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process, all its threads (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def converse_calls(
    url: str,
    token: str | None,
    calls: int,
    questions: int,
    pids: dict[str, int | None],
    admin_token: str | None = None,
    health_url: str | None = None,
) -> dict[str, Any]:
    """``hotline load --converse``'s calls against ``url``, each process's CPU read around them.

    ``admin_token`` (hotline): each call's transcript is read afterwards (outside the CPU
    window), for the lines the server answered with; ``health_url`` (the rival): its reply
    counts, read around the window."""
    import httpx

    from hotline.sim.caller import place_call
    from hotline.sim.conversation import read_transcript
    from hotline.sim.load.converse import CONVERSE_QUESTIONS, ConverseOptions, converse_report
    from hotline.sim.options import CallOptions

    copts = ConverseOptions(calls=calls, questions=questions, url=url, auth_token=token)
    texts = tuple(CONVERSE_QUESTIONS[i % len(CONVERSE_QUESTIONS)] for i in range(questions))
    ramp = min(0.1 * calls, 10.0)  # as hotline load --converse spreads its calls

    async def call(i: int) -> Any:
        await asyncio.sleep(ramp * i / calls)
        return await place_call(
            CallOptions(
                url=url,
                auth_token=token,
                speak=texts,
                hangup_after_replies=True,
                max_seconds=copts.max_seconds,
                keep_audio=False,
            )
        )

    # The same calls once first, outside the window: what a server does once (lazy imports,
    # model and cache warm-up, pools grown to the load's peak: hotline's Silero pool makes an
    # instance, ~40 ms of CPU, for each caller speaking at once beyond those it has) is not a
    # cost per call of a running server. Both sides get the same warm-up; pipecat makes its
    # models per call, so it pays them again in the window, as it would in service.
    await asyncio.gather(*(call(i) for i in range(calls)))

    async def replies() -> dict[str, int]:
        if health_url is None:
            return {}
        async with httpx.AsyncClient(timeout=5.0) as client:
            got: dict[str, int] = (await client.get(health_url)).json().get("replies", {})
            return got

    replies0 = await replies()
    cpu0 = {k: _cpu_s(p) for k, p in pids.items()}
    t0 = time.monotonic()
    reports = await asyncio.gather(*(call(i) for i in range(calls)))
    wall = time.monotonic() - t0
    cpu1 = {k: _cpu_s(p) for k, p in pids.items()}
    if health_url is not None:
        out_replies = {k: n - replies0.get(k, 0) for k, n in (await replies()).items()}
    out = converse_report(copts, list(reports), None, None, wall)
    call_s = sum(r.duration_ms for r in reports) / 1000.0
    cpu: dict[str, float | None] = {}
    for k, v in cpu1.items():
        v0 = cpu0[k]
        cpu[k] = None if v0 is None or v is None else v - v0
    out["call_seconds"] = round(call_s, 3)
    out["cpu_s"] = cpu
    out["cpu_ms_per_call_second"] = {
        k: (round(v * 1000.0 / call_s, 3) if v is not None and call_s else None)
        for k, v in cpu.items()
    }
    mid = [_mid_line_underrun_ms(r) for r in reports]
    out["underrun_calls_over_20ms"] = sum(1 for ms in mid if ms > 20.0)
    out["underrun_mid_line_ms"] = sum(mid)
    # each call's starved stretches: (ms since the call's start, ms), with its spoken turns
    out["underruns"] = [
        {
            "underruns": [(round(t0), round(n)) for t0, n in r.underruns],
            "turns": [(t.spoke_at_ms, t.ended_ms, t.first_reply_ms) for t in r.turns],
        }
        for r in reports
    ]
    out["reply_audio_s"] = round(sum(t.reply_audio_ms for r in reports for t in r.turns) / 1000, 2)
    if admin_token is not None:
        for r in reports:
            await read_transcript(
                CallOptions(url=url, admin_token=admin_token, call_sid=r.call_sid), r
            )
        out["replies"] = _count(t.reply_text for r in reports for t in r.turns)
    if health_url is not None:
        out["replies"] = {k: n for k, n in out_replies.items() if n}
    return out


def _mid_line_underrun_ms(report: Any) -> float:
    """The caller's starved playback within a line, not after it.

    The simulator counts starvation after media with no ``mark`` since (hotline marks every
    line's end); pipecat sends no marks, so the silence after each of its lines (until its
    ``clear`` on the caller's next words, or the hang-up) would count too. A stretch counts
    here only if it is shorter than the caller's own end-of-line silence (``speak_gap_s``: a
    longer one ends the line for the caller, who then speaks) and ends before the caller's next
    question starts."""
    from hotline.sim.options import CallOptions

    gap_ms = CallOptions(url="").speak_gap_s * 1000.0
    asked = sorted(t.spoke_at_ms for t in report.turns if t.spoke_at_ms is not None)
    total = 0.0
    for start, length in report.underruns:
        nxt = next((a for a in asked if a >= start), None)
        if length < gap_ms - 20.0 and (nxt is None or start + length <= nxt):
            total += length
    return total


def _count(lines: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        key = str(line) if line is not None else "(none)"
        out[key] = out.get(key, 0) + 1
    return out


@contextlib.asynccontextmanager
async def _ear(logdir: Path, key: str) -> AsyncIterator[Any]:
    """A local ear (grammar recogniser) in its own process, for one side."""
    from hotline.ear.process import EarProcess

    with open(logdir / "ear.log", "wb") as elog:
        ear = await EarProcess.start(60.0, api_key=key, stderr=elog)
    try:
        yield ear
    finally:
        await ear.stop()


def _converse_script(logdir: Path) -> Path:
    from hotline.sim.load.converse import CONVERSE_SCRIPT

    path = logdir / "script.toml"
    path.write_text(CONVERSE_SCRIPT, encoding="utf-8")
    return path


def converse_hotline(
    calls: int, questions: int, delay: float, env: dict[str, str]
) -> dict[str, Any]:
    from hotline.sim.load.spawn import spawn_server

    async def go() -> dict[str, Any]:
        logdir = Path(tempfile.mkdtemp(prefix="hotline-rival-hotline-"))
        key = os.urandom(8).hex()
        async with _ear(logdir, key) as ear:
            server_env = {
                "HOTLINE_SCRIPT": str(_converse_script(logdir)),
                "HOTLINE_STT": "deepgram",
                "DEEPGRAM_API_KEY": key,
                "HOTLINE_STT_URL": ear.url,
                "HOTLINE_BRAIN": "script",
                "HOTLINE_VAD": "auto",
                **env,
            }
            async with spawn_server(extra_env=server_env, first_chunk_delay=delay) as srv:
                pids = {"server": srv.pid, "ear": ear.proc.pid, "voice": srv.voice_pid}
                return await converse_calls(
                    srv.url, srv.auth_token, calls, questions, pids, srv.admin_token
                )

    result: dict[str, Any] = run_async(go())
    return result


def converse_rival(
    rival_py: Path,
    calls: int,
    questions: int,
    delay: float,
    close_with_flush: bool,
    turn_stop: str = "smart-turn",
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        logdir = Path(tempfile.mkdtemp(prefix="hotline-rival-pipecat-"))
        key = os.urandom(8).hex()
        script = _converse_script(logdir)
        async with (
            _ear(logdir, key) as ear,
            rival_server(rival_py, delay, close_with_flush, script, (ear.url, key), turn_stop) as (
                base,
                pids,
            ),
        ):
            all_pids: dict[str, int | None] = {**pids, "ear": ear.proc.pid}
            return await converse_calls(
                base, None, calls, questions, all_pids, health_url=base + "/health"
            )

    result: dict[str, Any] = run_async(go())
    return result


def _converse_brief(r: dict[str, Any]) -> dict[str, Any]:
    cpu = r["cpu_ms_per_call_second"]
    return {
        "server_cpu_ms_per_call_second": cpu["server"],
        "ear_cpu_ms_per_call_second": cpu["ear"],
        "voice_cpu_ms_per_call_second": cpu["voice"],
        # the same conversation on each side: CPU per call, whatever its length
        "server_cpu_ms_per_call": _per(r["cpu_s"]["server"], r["calls"]),
        "ear_cpu_ms_per_call": _per(r["cpu_s"]["ear"], r["calls"]),
        "call_seconds": r["call_seconds"],
        "questions": r["questions"],
        "answered": r["answered"],
        "reply_audio_s": r["reply_audio_s"],
        "v2v_p50_ms": r["caller_v2v_ms"]["p50"],
        "v2v_p95_ms": r["caller_v2v_ms"]["p95"],
        "underrun_calls_over_20ms": r["underrun_calls_over_20ms"],
        "underrun_mid_line_ms": r["underrun_mid_line_ms"],
        "underrun_counter_ms": r["underrun_ms"],
        "errors": r["errors"],
        "replies": r.get("replies", {}),
        "underrun_detail": r["underruns"],
    }


def _per(cpu_s: float | None, calls: int) -> float | None:
    return None if cpu_s is None else round(cpu_s * 1000.0 / calls, 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _print_converse(out: dict[str, Any]) -> None:
    print(
        f"# {out['calls']} conversing calls x {out['questions']} questions (hotline load "
        f"--converse's script and callers); local ear (grammar) and local voice apart per side; "
        f"hotline env {out['hotline_env']}"
    )
    print(f"{'':9} {'server':>7} {'ear':>6} {'voice':>6} {'/call':>7} {'call-s':>7} "
          f"{'answered':>9} {'reply s':>8} {'v2v50':>6} {'v2v95':>6} {'und>20':>6} {'und ms':>7} "
          f"{'errors':>6}")  # fmt: skip
    for name in ("hotline", "pipecat"):
        r = out[name]
        if r is None:
            continue
        f = lambda v, w, d=2: f"{v:>{w}.{d}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
        print(
            f"{name:9} {f(r['server_cpu_ms_per_call_second'], 7)} "
            f"{f(r['ear_cpu_ms_per_call_second'], 6)} {f(r['voice_cpu_ms_per_call_second'], 6)} "
            f"{f(r['server_cpu_ms_per_call'], 7, 0)} {r['call_seconds']:>7.1f} {r['answered']:>4}/{r['questions']:<4} "
            f"{r['reply_audio_s']:>8.1f} {f(r['v2v_p50_ms'], 6, 0)} {f(r['v2v_p95_ms'], 6, 0)} "
            f"{r['underrun_calls_over_20ms']:>6} {r['underrun_mid_line_ms']:>7.0f} "
            f"{r['errors']['total']:>6}"
        )
    print(
        "(server/ear/voice: CPU ms per call-second, each process apart; /call: server CPU ms per"
        " call; v2v: caller's end of speech -> first reply audio, ms; und: mid-line underruns)"
    )
    for name in ("hotline", "pipecat"):
        if out[name] is None:
            continue
        replies = "; ".join(f"{n} x {line!r}" for line, n in out[name]["replies"].items())
        print(f"{name} answered with: {replies or '-'}")
    print(
        f"pipecat / hotline server CPU per call-second: {out['cpu_ratio_pipecat_over_hotline']}"
        f"; per call: {out['cpu_per_call_ratio_pipecat_over_hotline']}"
        f"; ear per call-second: {out['ear_cpu_ratio_pipecat_over_hotline']}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_rival", description=__doc__)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--first-chunk-delay", type=float, default=0.25)
    p.add_argument("--rival-venv", type=Path, default=Path("/work/rival-venv"))
    p.add_argument("--close-with-flush", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--hotline-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hotline serve's environment, e.g. ELEVENLABS_OUTPUT_FORMAT=pcm_8000 (what pipecat "
        "asks for; hotline's default is mp3_44100_128, so by default hotline also decodes MP3)",
    )
    p.add_argument(
        "--converse",
        type=int,
        default=0,
        metavar="N",
        help="conversing calls: N questions each (hotline load --converse N's callers); "
        "--seconds is then unused",
    )
    p.add_argument(
        "--side",
        choices=("both", "hotline", "pipecat"),
        default="both",
        help="--converse: run one side only",
    )
    p.add_argument(
        "--rival-turn-stop",
        choices=("smart-turn", "speech-timeout"),
        default="smart-turn",
        help="--converse: pipecat's user turn stop strategy (default: its default, Smart Turn "
        "v3; speech-timeout shows what Smart Turn costs)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rival_py = ensure_rival_venv(args.rival_venv)
    hot_env = env_pairs(args.hotline_env)
    if args.converse:
        delay = args.first_chunk_delay
        h = r = None
        if args.side in ("both", "hotline"):
            h = _converse_brief(converse_hotline(args.calls, args.converse, delay, hot_env))
        if args.side in ("both", "pipecat"):
            r = _converse_brief(
                converse_rival(
                    rival_py,
                    args.calls,
                    args.converse,
                    delay,
                    args.close_with_flush,
                    args.rival_turn_stop,
                )
            )
        cout = {
            "versions": {**versions(), "pipecat": PIPECAT},
            "calls": args.calls,
            "questions": args.converse,
            "close_with_flush": args.close_with_flush,
            "hotline_env": {"HOTLINE_VAD": "auto", **hot_env},
            "rival_turn_stop": args.rival_turn_stop,
            "hotline": h,
            "pipecat": r,
        }
        for key, field in (
            ("cpu_ratio_pipecat_over_hotline", "server_cpu_ms_per_call_second"),
            ("ear_cpu_ratio_pipecat_over_hotline", "ear_cpu_ms_per_call_second"),
            ("cpu_per_call_ratio_pipecat_over_hotline", "server_cpu_ms_per_call"),
        ):
            cout[key] = _ratio(r[field], h[field]) if r and h else None
        if args.json:
            print(json.dumps(cout, indent=2))
        else:
            _print_converse(cout)
        return 0
    hot = _brief(run_hotline(args.calls, args.seconds, args.first_chunk_delay, hot_env))
    riv = _brief(
        run_rival(rival_py, args.calls, args.seconds, args.first_chunk_delay, args.close_with_flush)
    )
    hc, rc = hot["cpu_ms_per_call_second"], riv["cpu_ms_per_call_second"]
    out = {
        "versions": {**versions(), "pipecat": PIPECAT},
        "calls": args.calls,
        "seconds": args.seconds,
        "close_with_flush": args.close_with_flush,
        "hotline_env": hot_env,
        "hotline": hot,
        "pipecat": riv,
        "cpu_ratio_pipecat_over_hotline": round(rc / hc, 2) if hc and rc else None,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"# {args.calls} calls x {args.seconds:.0f} s, greeting only, local voice separate; "
        f"hotline env {hot_env or 'defaults (mp3_44100_128)'}, pipecat pcm_8000"
    )
    print(f"{'':10} {'cpu ms/call-s':>14} {'audio s':>8} {'und>20':>7} {'und ms':>7} "
          f"{'ttfa50':>7} {'ttfa99':>7} {'errors':>6}")  # fmt: skip
    for name, r in (("hotline", hot), ("pipecat", riv)):
        print(
            f"{name:10} {r['cpu_ms_per_call_second'] or 0:>14.2f} "
            f"{r['audio_seconds_heard'] or 0:>8.1f} {r['underrun_calls_over_20ms']:>7} "
            f"{r['underrun_total_ms']:>7.0f} {r['ttfa_caller_p50_ms'] or 0:>7.0f} "
            f"{r['ttfa_caller_p99_ms'] or 0:>7.0f} {r['errors']['total']:>6}"
        )
    print(f"pipecat / hotline CPU per call-second: {out['cpu_ratio_pipecat_over_hotline']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
