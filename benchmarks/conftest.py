"""pytest-benchmark setup for ``benchmarks/``.

- Collects ``bench_*.py`` (only here: ``pytest tests`` never sees them; ``testpaths`` is tests/).
- The report header names every library version a figure depends on.
- After the run, a table of throughput ratios (hotline against each rival, measured in this same
  run) is printed, since pytest-benchmark alone shows only times.

Run: ``make bench`` or ``pytest benchmarks --benchmark-only``; ``--benchmark-disable`` runs each
benchmark once as a plain test (quick smoke run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks import common


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Time in CPU seconds (benchmarks.common.cpu_time) unless --benchmark-timer names another
    # timer than the default or HOTLINE_BENCH_WALL=1 asks for wall-clock time.
    from pytest_benchmark.timers import default_timer
    from pytest_benchmark.utils import NameWrapper

    option = getattr(config.option, "benchmark_timer", None)
    if option == str(NameWrapper(default_timer)) and os.environ.get("HOTLINE_BENCH_WALL") != "1":
        config.option.benchmark_timer = "benchmarks.common.cpu_time"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_report_header() -> list[str]:
    return [f"{name}: {version}" for name, version in common.versions().items()]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "benchmarks", None):
        return
    rows = []
    for bench in session.benchmarks:
        info = bench.extra_info or {}
        stats = getattr(bench, "stats", None)
        if stats is None or not info.get("audio_seconds"):
            continue
        rows.append(
            common.Row(
                group=bench.group or "",
                key=info.get("key", bench.name),
                label=info.get("label", bench.name),
                seconds=float(stats.min),
                audio_seconds=float(info["audio_seconds"]),
                chunks=int(info.get("chunks", 0)),
                samples=int(info.get("samples", 0)),
            )
        )
    if not rows:
        return
    timer_name = str(getattr(session, "options", {}).get("timer", "?"))
    terminalreporter.write_sep("-", f"hotline ratios (best round, timer {timer_name})")
    for line in common.format_rows(rows):
        terminalreporter.write_line(line)
