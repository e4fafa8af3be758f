"""What scenario tests cost: scenario calls per minute on this machine, and how many run at once
before their own timing suffers.

    python -m benchmarks.bench_scenarios [--scenario scenarios/tour_dates.toml] [--jobs 1 2 4 6] [--json]

One offline hotline is spawned (``hotline test --spawn-server``'s: the local voice, the local
ear); for each ``jobs`` level the scenario is run ``jobs`` times at once. A row: wall time,
scenario calls per minute (calls / wall), pass rate, the spoken turns' latency (end of the
caller's speech -> first reply audio, caller side) median and worst, and the CPU seconds this
process spent (the caller side: its 20 ms clocks and its Whisper or grammar ear). Timing
suffers when the latency rises over the 1-job row's or calls start failing their budgets.

Not a pytest-benchmark timing: each level is a real-time call of ~35 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from hotline.sim.scenario.ear import make_ear
from hotline.sim.scenario.model import load_scenario
from hotline.sim.scenario.runner import Line, ear_vocabulary, run_all
from hotline.sim.scenario.serve import spawn_line

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "tour_dates.toml"))
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4, 6])
    parser.add_argument("--ear", default="auto", choices=("auto", "whisper", "grammar"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sc = load_scenario(args.scenario)
    ear = make_ear(args.ear, ear_vocabulary([sc]))
    rows: list[dict[str, Any]] = []
    with spawn_line() as spawned:
        line = Line(spawned.url, spawned.auth_token, spawned.admin_token)
        for jobs in args.jobs:
            cpu0, t0 = _cpu(), time.monotonic()
            results = asyncio.run(run_all([sc], line, ear, repeat=jobs, jobs=jobs))
            wall = time.monotonic() - t0
            lat = [
                s.latency_ms
                for r in results
                for s in r.steps
                if s.latency_ms is not None and s.step.startswith("say")
            ]
            rows.append(
                {
                    "jobs": jobs,
                    "wall_s": round(wall, 1),
                    "calls_per_min": round(jobs / wall * 60, 2),
                    "passed": sum(r.passed for r in results),
                    "calls": len(results),
                    "latency_p50_ms": round(statistics.median(lat)) if lat else None,
                    "latency_max_ms": round(max(lat)) if lat else None,
                    "caller_cpu_s": round(_cpu() - cpu0, 1),
                    "ear": ear.name,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"scenario {sc.name!r} ({Path(args.scenario).name}), caller's ear: {ear.name}")
    print("jobs  wall s  calls/min  passed  latency p50  latency max  caller CPU s")
    for r in rows:
        print(
            f"{r['jobs']:>4}  {r['wall_s']:>6}  {r['calls_per_min']:>9}  "
            f"{r['passed']}/{r['calls']:<4}  {r['latency_p50_ms']!s:>8} ms  "
            f"{r['latency_max_ms']!s:>8} ms  {r['caller_cpu_s']:>12}"
        )


if __name__ == "__main__":
    main()
