"""Shared by the benchmarks: library versions, CPU-time measurement, the ratio table."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass


def versions() -> dict[str, str]:
    """Every version a benchmark figure depends on."""
    out: dict[str, str] = {"python": f"{platform.python_version()} ({platform.machine()})"}
    out["cpu"] = _cpu_model()
    try:
        import hotline
        from hotline.codec import mpg123_version

        out["hotline"] = hotline.__version__
        out["libmpg123"] = mpg123_version()
    except ImportError as exc:
        out["hotline.codec"] = f"not importable: {exc}"
    from importlib import metadata

    for name in ("Cython", "av", "soxr", "numpy", "lameenc", "pydub", "pytest-benchmark"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        import soxr

        out["soxr"] += f" (libsoxr {soxr.__libsoxr_version__})"
    except (ImportError, AttributeError):
        pass
    try:
        import av

        lib = av.library_versions.get("libavcodec")
        if lib:
            out["av"] += f" (libavcodec {'.'.join(map(str, lib))})"
    except (ImportError, AttributeError):
        pass
    try:
        first = subprocess.run(
            ["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        out["ffmpeg (pydub)"] = first[0] if first else "?"
    except (OSError, subprocess.SubprocessError):
        out["ffmpeg (pydub)"] = "not found"
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cpu_time() -> float:
    """CPU seconds of this process (all threads) plus its reaped children (pydub's ffmpeg runs).

    The benchmarks' timer: the machine may be shared, and CPU time is what the throughput
    targets are stated in. Children are counted at clock-tick resolution, fine for ~100 ms
    ffmpeg runs and zero for everything else.
    """
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def best_cpu_seconds(fn: Callable[[], object], rounds: int) -> float:
    """Least CPU time (``cpu_time``) of ``rounds`` calls."""
    best = float("inf")
    for _ in range(rounds):
        t0 = cpu_time()
        fn()
        best = min(best, cpu_time() - t0)
    return best


def best_cpu_seconds_interleaved(
    fns: dict[str, Callable[[], object]], rounds: int
) -> dict[str, float]:
    """``best_cpu_seconds`` for several functions, rounds interleaved (A B C A B C ...), so a
    change in machine load between rounds hits every contender alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = cpu_time()
            fn()
            best[key] = min(best[key], cpu_time() - t0)
    return best


@dataclass
class Row:
    """One measured pipeline or kernel: ``seconds`` of CPU to process ``audio_seconds``."""

    group: str
    key: str
    label: str
    seconds: float
    audio_seconds: float
    chunks: int = 0
    samples: int = 0

    @property
    def realtime(self) -> float:
        """Audio seconds processed per CPU second."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["audio_seconds_per_cpu_second"] = self.realtime
        d["us_per_chunk"] = 1e6 * self.seconds / self.chunks if self.chunks else None
        d["ns_per_sample"] = 1e9 * self.seconds / self.samples if self.samples else None
        return d


# The speed targets, for the MP3 pipeline: hotline's throughput over a rival's, same
# stream, same run.
TARGETS: dict[str, float] = {"pyav_soxr": 2.0, "mpg123": 0.75}


def has_targets(group: str) -> bool:
    return group.startswith("mp3_") and group.endswith(" pipeline")


def ratios(rows: Iterable[Row]) -> dict[str, dict[str, float]]:
    """Per group: hotline's throughput divided by each other row's (``>1`` = hotline faster)."""
    out: dict[str, dict[str, float]] = {}
    by_group: dict[str, list[Row]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    for group, members in by_group.items():
        ours = [r for r in members if r.key == "hotline"]
        if not ours:
            continue
        out[group] = {r.key: ours[0].realtime / r.realtime for r in members if r.key != "hotline"}
    return out


def format_rows(rows: list[Row]) -> list[str]:
    """A side-by-side table per group, with hotline's ratio against each rival."""
    lines: list[str] = []
    rel = ratios(rows)
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    for group, members in groups.items():
        lines.append("")
        lines.append(f"[{group}]")
        lines.append(
            f"  {'pipeline':<34} {'x realtime':>11} {'us/chunk':>10} {'ns/sample':>10} "
            f"{'hotline is':>11}"
        )
        for r in sorted(members, key=lambda r: -r.realtime):
            per_chunk = f"{1e6 * r.seconds / r.chunks:10.1f}" if r.chunks else f"{'':>10}"
            per_sample = f"{1e9 * r.seconds / r.samples:10.2f}" if r.samples else f"{'':>10}"
            ratio = rel.get(group, {}).get(r.key)
            ratio_s = f"{ratio:10.2f}x" if ratio is not None else f"{'-':>11}"
            lines.append(f"  {r.label:<34} {r.realtime:11.1f} {per_chunk} {per_sample} {ratio_s}")
        for key, target in TARGETS.items():
            got = rel.get(group, {}).get(key) if has_targets(group) else None
            if got is not None:
                verdict = "ok" if got >= target else "MISSED"
                lines.append(f"  target: hotline / {key} = {got:.2f} (want >= {target}) {verdict}")
    return lines
