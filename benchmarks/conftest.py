"""pytest-benchmark setup for ``benchmarks/``.

- Collects ``bench_*.py`` (only here: ``pytest tests`` never sees them; ``testpaths`` is tests/).
- The report header names every library version a figure depends on.
- After the run, a table of throughput ratios (hotline against each rival, measured in this same
  run) is printed, since pytest-benchmark alone shows only times.

Run: ``make bench`` or ``pytest benchmarks --benchmark-only``; ``--benchmark-disable`` runs each
benchmark once as a plain test (quick smoke run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import common


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
    timer = getattr(session, "timer", None)
    timer_name = getattr(timer, "__name__", str(timer))
    terminalreporter.write_sep("-", f"hotline ratios (best round, timer {timer_name})")
    for line in common.format_rows(rows):
        terminalreporter.write_line(line)
