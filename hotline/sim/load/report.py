"""The load report: what the callers measured, joined with the server's metrics and process figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from hotline.sim.call_report import CallReport
from hotline.sim.load.consts import (
    _COUNTERS,
    _HISTOGRAMS,
    HIST_BRIDGE,
    HIST_CONVERSION,
    HIST_TTFA,
    HIST_TTS_FIRST,
    UNDERRUN_LIMIT_MS,
)
from hotline.sim.load.metrics import (
    Scrape,
    _counter_diff,
    _hist_summary,
    _pct,
)
from hotline.sim.load.proc import ProcSample


class RunOptions(Protocol):
    """What the report reads of the run's options (:class:`hotline.sim.load.calls.LoadOptions`)."""

    @property
    def sequential(self) -> int: ...
    @property
    def seconds(self) -> float: ...


class SayFeeder(Protocol):
    """What the report reads of the say feeder."""

    @property
    def says(self) -> int: ...
    @property
    def say_errors(self) -> Counter[str]: ...


@dataclass(frozen=True)
class RunFigures:
    """Everything one run measured, handed to :func:`build_report` as one value."""

    opts: RunOptions
    reports: list[CallReport]  # one per simulated call
    feeder: SayFeeder | None  # the say feeder (concurrent runs with --say)
    soak: dict[str, Any] | None  # the soak trace (sequential runs)
    before: Scrape | None  # /metrics before the run
    after: Scrape | None  # ... and after it
    proc_before: ProcSample | None  # the server process before the run
    proc_after: ProcSample | None
    voice_before: ProcSample | None  # the separate local voice process
    voice_after: ProcSample | None
    wall: float  # seconds the run took
    cpu_self: float  # CPU seconds of this (the load generator's) process
    remaining: int | None  # calls still listed in /calls after the run
    healthy: bool  # /health answered after the run
    ear_before: ProcSample | None = None  # the separate local ear (the STT stand-in)
    ear_after: ProcSample | None = None


def build_report(run: RunFigures) -> dict[str, Any]:
    """The load report (a JSON-able dict; :func:`summary` renders it)."""
    opts, reports, feeder, soak = run.opts, run.reports, run.feeder, run.soak
    before, after, wall, cpu_self = run.before, run.after, run.wall, run.cpu_self
    pb, pa, vb, va = run.proc_before, run.proc_after, run.voice_before, run.voice_after
    remaining, healthy = run.remaining, run.healthy
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
    eb, ea = run.ear_before, run.ear_after
    if eb is not None and ea is not None:
        server["ear_process"] = {
            "cpu_s": round(ea.cpu_s - eb.cpu_s, 3),
            "rss_mb_after": round(ea.rss_bytes / 2**20, 2),
        }
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
            "cpu_ms_per_call_second": round(cpu_self * 1000.0 / call_s, 3) if call_s else None,
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
    if "ear_process" in s:
        lines.append(f"  ear (STT) process CPU {_fmt(s['ear_process']['cpu_s'], ' s')}")
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
        f"  load generator CPU    {_fmt(lg['cpu_s'], ' s')} ({_fmt(lg['cpu_fraction_of_one_core'])} of one core, "
        f"{_fmt(lg.get('cpu_ms_per_call_second'), ' ms')} per call-second)"
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
