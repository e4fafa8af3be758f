"""Load benchmark: N concurrent simulated calls against a freshly spawned ``hotline serve``
(local voice in its own process), checked against issue 5's targets.

    python -m benchmarks.bench_load --calls 20 50 100 --seconds 20 [--json]

Each N runs ``hotline load --calls N --seconds S --spawn-server`` (hotline.sim.load) on a new
server and prints one row: calls with underruns over 20 ms, time to first audio p50/p99 (the
caller's, from ``start``; and the server's histogram, text -> first frame), the voice's own
first-chunk delay, bridge overhead p50/p99, server CPU per call-second, server RSS, the load
generator's own CPU. Targets (issue 5): zero underruns over 20 ms at 100 calls, TTFA p99 within
200 ms of the voice's first-chunk delay, server CPU <= 5 ms per call-second.

Issue 11: each run also measures the codec's own CPU per audio-second in the same process
(``hotline.codec.Transcoder`` for the server's ``ELEVENLABS_OUTPUT_FORMAT``, default
``mp3_44100_128``, over the load's own lines as the local voice renders them, in ~3 KB chunks)
and prints the server's CPU per call-second divided by it (the issue's target: <= 2x), and the
load generator's own CPU per call-second (the generator must not be the bottleneck).

Issue 20: ``--records-ab PAIRS`` measures what the call records cost. For each N it runs
PAIRS pairs of loads in one go, alternating records on (a fresh SQLite file per run, the
default engine) and off (``HOTLINE_DATABASE_URL=off``) in ABBA order so that a machine getting
busier or quieter weighs on both alike; the "after" figures wait until ``/history`` lists every
call, so the server's CPU includes summarising and writing the records. It prints each run's
server CPU per call-second, the medians and the difference (target: <= +5 %).

    python -m benchmarks.bench_load --calls 100 --seconds 20 --records-ab 3

Not a pytest-benchmark timing: a load run is minutes of wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from typing import Any

from benchmarks.common import best_cpu_seconds, versions
from hotline.sim.load import DEFAULT_TEXTS, LoadOptions, env_pairs, run_async, run_load, summary

TARGET_UNDERRUN_CALLS = 0
TARGET_TTFA_OVER_VOICE_MS = 200.0
TARGET_CPU_MS_PER_CALL_S = 5.0
TARGET_CPU_OVER_CODEC = 2.0  # issue 11: server CPU per call-second <= 2x the codec's own
TARGET_RECORDS_CPU_PERCENT = 5.0  # issue 20: records on costs <= +5 % server CPU per call-second
CHUNK = 3000  # bytes of TTS audio per feed, about what an ElevenLabs message carries


def codec_cpu_ms_per_audio_second(output_format: str) -> float:
    """The codec's own CPU per audio-second for ``output_format``: a fresh Transcoder per line
    (as the server makes one per utterance) over the load's lines rendered by the local voice."""
    from hotline.codec import Transcoder
    from hotline.tts_standin.encode import encode
    from hotline.tts_standin.synth import speech_pcm

    streams = []
    for text in DEFAULT_TEXTS:
        pcm = speech_pcm(text, "en-us", 175)
        streams.append(encode(pcm, output_format))

    ulaw_bytes = 0

    def run() -> None:
        nonlocal ulaw_bytes
        n = 0
        for data in streams:
            t = Transcoder(output_format)
            for i in range(0, len(data), CHUNK):
                n += len(t.feed(data[i : i + CHUNK]))
            n += len(t.flush())
        ulaw_bytes = n

    cpu = best_cpu_seconds(run, 5)
    return cpu * 1000.0 / (ulaw_bytes / 8000.0)


def _targets(
    result: dict[str, Any], first_chunk_delay_ms: float, codec_ms: float
) -> dict[str, Any]:
    s = result["server"]
    ttfa_p99 = s.get("ttfa", {}).get("p99_ms")
    voice_p99 = s.get("tts_first_chunk", {}).get("p99_ms")
    cpu = s.get("cpu_ms_per_call_second")
    return {
        "underruns_over_20ms": {
            "value": result["underrun"]["calls_over_20ms"],
            "target": TARGET_UNDERRUN_CALLS,
            "ok": result["underrun"]["calls_over_20ms"] <= TARGET_UNDERRUN_CALLS,
        },
        # the voice's own delay as measured by the server (text in -> first audio message),
        # which for the local voice includes eSpeak synthesis on a busy machine; the configured
        # delay is the floor
        "ttfa_p99_minus_voice_p99_ms": {
            "value": None
            if ttfa_p99 is None or voice_p99 is None
            else round(ttfa_p99 - voice_p99, 1),
            "vs_configured_delay": None
            if ttfa_p99 is None
            else round(ttfa_p99 - first_chunk_delay_ms, 1),
            "target": TARGET_TTFA_OVER_VOICE_MS,
            "ok": ttfa_p99 is not None
            and voice_p99 is not None
            and ttfa_p99 - voice_p99 <= TARGET_TTFA_OVER_VOICE_MS,
        },
        "server_cpu_ms_per_call_second": {
            "value": cpu,
            "target": TARGET_CPU_MS_PER_CALL_S,
            "ok": cpu is not None and cpu <= TARGET_CPU_MS_PER_CALL_S,
        },
        "server_cpu_over_codec": {
            "value": None if cpu is None else round(cpu / codec_ms, 2),
            "codec_ms_per_audio_second": round(codec_ms, 3),
            "target": TARGET_CPU_OVER_CODEC,
            "ok": cpu is not None and cpu / codec_ms <= TARGET_CPU_OVER_CODEC,
        },
        "bridge_overhead_p50_ms": {
            "value": s.get("bridge_overhead", {}).get("p50_ms"),
            "target": 1.0,
            "ok": (s.get("bridge_overhead", {}).get("p50_ms") or 1e9) <= 1.0,
        },
        "bridge_overhead_p99_ms": {
            "value": s.get("bridge_overhead", {}).get("p99_ms"),
            "target": 10.0,
            "ok": (s.get("bridge_overhead", {}).get("p99_ms") or 1e9) <= 10.0,
        },
        "errors": {
            "value": result["errors"]["total"],
            "target": 0,
            "ok": not result["errors"]["total"],
        },
    }


def _row(n: int, r: dict[str, Any]) -> str:
    s = r["server"]

    def f(v: Any, nd: int = 1) -> str:
        return "-" if v is None else f"{v:.{nd}f}"

    return (
        f"{n:>5} {r['underrun']['calls_over_20ms']:>6} {f(r['underrun']['max_ms'], 0):>6} "
        f"{f(r['ttfa_caller']['p50_ms'], 0):>6} {f(r['ttfa_caller']['p99_ms'], 0):>6} "
        f"{f(s['ttfa']['p50_ms'], 0):>6} {f(s['ttfa']['p99_ms'], 0):>6} "
        f"{f(s['tts_first_chunk']['p99_ms'], 0):>6} "
        f"{f(s['bridge_overhead']['p50_ms'], 2):>7} {f(s['bridge_overhead']['p99_ms'], 2):>7} "
        f"{f(s['cpu_ms_per_call_second'], 2):>7} {f(s['rss_mb_before'], 0):>5}->{f(s['rss_mb_after'], 0):<5} "
        f"{f(r['load_generator']['cpu_fraction_of_one_core'], 2):>5} "
        f"{f(r['load_generator'].get('cpu_ms_per_call_second'), 2):>6} "
        f"{f(r['targets']['server_cpu_over_codec']['value'], 1):>6} {r['errors']['total']:>4}"
    )


HEADER = (
    "calls  und>20 undmax  ttfa50 ttfa99 srv50  srv99  voice99 brg50ms brg99ms cpu/cs  rss MB      "
    "gen   gen    cpu/    err\n"
    "                (ms)   caller caller  (ms)   (ms)   (ms)                   (ms)              "
    "core  ms/cs  codec"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_load", description=__doc__)
    p.add_argument("--calls", type=int, nargs="+", default=[20], help="one run per value")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--first-chunk-delay", type=float, default=0.25)
    p.add_argument("--embedded-voice", action="store_true")
    p.add_argument("--lead-ms", type=float, default=LoadOptions.lead_ms)
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="e.g. ELEVENLABS_TRANSPORT=single HOTLINE_CACHE_BYTES=0 (the TTS path every time)",
    )
    p.add_argument(
        "--records-ab",
        type=int,
        default=0,
        metavar="PAIRS",
        help="issue 20: per N, PAIRS pairs of runs alternating call records on and off",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-uvloop", action="store_true")
    args = p.parse_args(argv)
    if args.records_ab:
        return records_ab(args, argv)
    server_env = env_pairs(args.server_env)
    output_format = server_env.get("ELEVENLABS_OUTPUT_FORMAT", "mp3_44100_128")
    runs: list[dict[str, Any]] = []
    codec_ms = codec_cpu_ms_per_audio_second(output_format)
    for n in args.calls:
        opts = LoadOptions(
            spawn_server=True,
            calls=n,
            seconds=args.seconds,
            first_chunk_delay=args.first_chunk_delay,
            embedded_voice=args.embedded_voice,
            lead_ms=args.lead_ms,
            server_env=env_pairs(args.server_env),
        )
        result = run_async(run_load(opts), use_uvloop=not args.no_uvloop)
        result["targets"] = _targets(result, args.first_chunk_delay * 1000.0, codec_ms)
        runs.append(result)
        if not args.json:
            print(summary(result), file=sys.stderr, flush=True)
    out = {
        "versions": versions(),
        "command": " ".join(["python -m benchmarks.bench_load", *(argv or sys.argv[1:])]),
        "seconds": args.seconds,
        "first_chunk_delay_ms": args.first_chunk_delay * 1000.0,
        "voice": "embedded" if args.embedded_voice else "separate process",
        "server_env": server_env,
        "output_format": output_format,
        "codec_cpu_ms_per_audio_second": round(codec_ms, 3),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for k, v in out["versions"].items():
        print(f"# {k}: {v}")
    print(
        f"# {out['command']}  (voice: {out['voice']}, first-chunk delay "
        f"{out['first_chunk_delay_ms']:.0f} ms, server env {out['server_env'] or 'defaults'})"
    )
    print(
        f"# codec's own CPU ({output_format} -> µ-law, same run): "
        f"{codec_ms:.3f} ms per audio-second"
    )
    print(HEADER)
    for n, r in zip(args.calls, runs, strict=True):
        print(_row(n, r))
    print("targets (issues 5 and 11):")
    for n, r in zip(args.calls, runs, strict=True):
        marks = ", ".join(
            f"{k} {v['value']} ({'ok' if v['ok'] else 'MISSED'}, target {v['target']})"
            for k, v in r["targets"].items()
        )
        print(f"  {n:>4} calls: {marks}")
    return 0


def records_ab(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Issue 20: server CPU per call-second with call records on vs off, alternating (ABBA)."""
    base_env = env_pairs(args.server_env)
    workdir = tempfile.mkdtemp(prefix="hotline-bench-records-")
    out: dict[str, Any] = {
        "versions": versions(),
        "command": " ".join(["python -m benchmarks.bench_load", *(argv or sys.argv[1:])]),
        "seconds": args.seconds,
        "results": [],
    }
    for n in args.calls:
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        runs = []
        order = [m for i in range(args.records_ab) for m in (("on", "off"), ("off", "on"))[i % 2]]
        for i, mode in enumerate(order):
            url = f"sqlite:///{workdir}/run{n}-{i}.sqlite3" if mode == "on" else "off"
            opts = LoadOptions(
                spawn_server=True,
                calls=n,
                seconds=args.seconds,
                first_chunk_delay=args.first_chunk_delay,
                embedded_voice=args.embedded_voice,
                lead_ms=args.lead_ms,
                server_env={**base_env, "HOTLINE_DATABASE_URL": url},
                records_settle_s=60.0,
            )
            result = run_async(run_load(opts), use_uvloop=not args.no_uvloop)
            value = result["server"].get("cpu_ms_per_call_second")
            errors = result["errors"]["total"]
            runs.append({"records": mode, "cpu_ms_per_call_second": value, "errors": errors})
            if value is not None:
                cpu[mode].append(value)
            print(
                f"  {n} calls, records {mode:<3}: server CPU {value} ms per call-second, "
                f"{errors} errors",
                file=sys.stderr,
                flush=True,
            )
        on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
        delta = (on / off - 1.0) * 100.0
        out["results"].append(
            {
                "calls": n,
                "runs": runs,
                "median_on": on,
                "median_off": off,
                "delta_percent": round(delta, 2),
                "target_percent": TARGET_RECORDS_CPU_PERCENT,
                "ok": delta <= TARGET_RECORDS_CPU_PERCENT,
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for k, v in out["versions"].items():
        print(f"# {k}: {v}")
    print(f"# {out['command']}")
    for r in out["results"]:
        each = ", ".join(f"{x['records']} {x['cpu_ms_per_call_second']}" for x in r["runs"])
        print(f"{r['calls']} calls, server CPU ms per call-second, in run order: {each}")
        print(
            f"  median on {r['median_on']:.3f}, off {r['median_off']:.3f}: "
            f"{r['delta_percent']:+.2f} % ({'ok' if r['ok'] else 'MISSED'}, target "
            f"<= +{TARGET_RECORDS_CPU_PERCENT:g} %)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
