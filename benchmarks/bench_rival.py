"""hotline against pipecat on the same job: N greeting-only calls, CPU per call-second.

    python -m benchmarks.bench_rival [--calls 10] [--seconds 12] [--json]
        [--rival-venv /work/rival-venv] [--no-close-with-flush]

Both servers answer the same simulated Twilio calls (``hotline load --no-say``: the signed
webhook, ``<Connect><Stream>``, real-time inbound media, a playback clock that counts
underruns), both speak the default script's greeting on ``start`` through the same local voice
(``hotline tts-standin``, a separate process whose CPU counts for neither), one after the other:

- hotline: ``hotline serve`` spawned by the load generator (``--spawn-server``).
- pipecat: benchmarks/rival_pipecat.py (pipecat's TwilioFrameSerializer + ElevenLabs WebSocket
  TTS service, FastAPI/uvicorn) in its own venv, created here if missing
  (``pip install "pipecat-ai[websocket]==1.14.0" fastapi uvicorn``); pipecat is a test-only
  rival, never a hotline dependency. The load generator targets it with ``--url`` and
  ``--server-pid`` (for /proc CPU figures).

Prints server CPU ms per call-second, underruns, caller TTFA, and pipecat/hotline ratios.
See rival_pipecat.py for the ``close_context`` workaround (``--no-close-with-flush``: pipecat
as shipped, which against the local voice hears no audio at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import versions
from hotline.loopback import free_port
from hotline.sim.load import LoadOptions, env_pairs, run_async, run_load

ROOT = Path(__file__).resolve().parent.parent
PIPECAT = "pipecat-ai[websocket]==1.14.0"
RIVAL_DEPS = [PIPECAT, "fastapi", "uvicorn"]


def ensure_rival_venv(venv: Path) -> Path:
    """The rival venv's python, creating the venv and installing pipecat if needed."""
    py = venv / "bin" / "python"
    if py.exists():
        ok = subprocess.run([py, "-c", "import pipecat, fastapi, uvicorn"], capture_output=True)
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


def run_rival(
    rival_py: Path, calls: int, seconds: float, delay: float, close_with_flush: bool
) -> dict[str, Any]:
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
            rival = subprocess.Popen(
                [str(rival_py), "-W", "ignore::DeprecationWarning",
                 str(ROOT / "benchmarks" / "rival_pipecat.py"), "--port", str(rival_port),
                 "--voice-url", f"ws://127.0.0.1:{voice_port}", "--api-key", key,
                 "--close-with-flush" if close_with_flush else "--no-close-with-flush"],
                stdout=rlog, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            procs.append(rival)
            base = f"http://127.0.0.1:{rival_port}"

            async def go() -> dict[str, Any]:
                await _wait_http(base + "/health", rival, 60.0)
                opts = LoadOptions(
                    url=base, calls=calls, seconds=seconds, say=False, server_pid=rival.pid
                )
                return await run_load(opts)

            result: dict[str, Any] = run_async(go())
            result["log_dir"] = str(logdir)
            return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


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
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rival_py = ensure_rival_venv(args.rival_venv)
    hot_env = env_pairs(args.hotline_env)
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
