"""``hotline load --find-capacity``: the largest number of concurrent calls one core holds.

The server is pinned to one CPU (``os.sched_setaffinity``); the local voice, the ear and this
generator run on the others. N starts at ``--calls``, doubles while the run holds, then is
bisected between the last N that held and the first that did not, to ``--capacity-step``.
A run *holds* when no call had an underrun over 20 ms and nothing failed. Each run is a fresh
server (``--spawn-server``). The generator side's own CPU is printed beside each row: where it
is near a whole core, the generator (not the server) was the limit and the figure is a lower
bound (said in the result).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable
from typing import Any

from hotline.sim.load.calls import LoadOptions, run_load

__all__ = ["capacity_summary", "find_capacity"]

#: The generator side (this process + voice + ear) above this share of its cores: saturated.
_SATURATED = 0.9


def _holds(result: dict[str, Any]) -> bool:
    return result["underrun"]["calls_over_20ms"] == 0 and result["errors"]["total"] == 0


def _row(n: int, result: dict[str, Any], helper_cores: int) -> dict[str, Any]:
    server = result["server"]
    wall = result["wall_s"] or 1.0
    helper_cpu = result["load_generator"]["cpu_s"] + sum(
        server.get(k, {}).get("cpu_s", 0.0) for k in ("voice_process", "ear_process")
    )
    return {
        "calls": n,
        "holds": _holds(result),
        "underruns_over_20ms": result["underrun"]["calls_over_20ms"],
        "underrun_max_ms": result["underrun"]["max_ms"],
        "errors": result["errors"]["total"],
        "server_cpu_ms_per_call_second": server.get("cpu_ms_per_call_second"),
        "server_core": round(server["cpu_s"] / wall, 3) if server.get("cpu_s") else None,
        "bridge_p99_ms": (server.get("bridge_overhead") or {}).get("p99_ms"),
        "generator_side_cores": round(helper_cpu / wall, 3),
        "generator_saturated": helper_cpu / wall > _SATURATED * helper_cores,
    }


async def find_capacity(
    opts: LoadOptions,
    *,
    step: int = 25,
    limit: int = 2000,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    run: Callable[[LoadOptions], Awaitable[dict[str, Any]]] = run_load,
) -> dict[str, Any]:
    """Ramp N (see the module docstring); the server on the first CPU this process may use."""
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = frozenset(cpus[:1])
    helper_cores = max(len(cpus) - 1, 1)
    rows: list[dict[str, Any]] = []

    async def trial(n: int) -> bool:
        result = await run(
            dataclasses.replace(opts, calls=n, spawn_server=True, server_cpus=server_cpu)
        )
        row = _row(n, result, helper_cores)
        rows.append(row)
        if on_row is not None:
            on_row(row)
        return bool(row["holds"])

    good, bad = 0, None
    n = max(1, opts.calls)
    while n <= limit:
        if await trial(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad is not None:
        while bad - good > step:
            mid = (good + bad) // 2
            if await trial(mid):
                good = mid
            else:
                bad = mid
    held = [r for r in rows if r["holds"] and r["calls"] == good]
    return {
        "largest_calls_held": good,
        "first_calls_failed": bad,
        "resolution": step,
        "seconds_per_call": opts.seconds,
        "server_cpus": sorted(server_cpu),
        "generator_limited": bool(held and held[0]["generator_saturated"])
        or any(r["generator_saturated"] for r in rows if r["calls"] == bad),
        "rows": rows,
    }


def row_line(row: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = "{:.2f}") -> str:
        return "-" if v is None else fmt.format(v)

    return (
        f"{row['calls']:>6}  {'holds' if row['holds'] else 'FAILS':<5}  "
        f"{row['underruns_over_20ms']:>4} (max {f(row['underrun_max_ms'], '{:.0f}')} ms)  "
        f"cpu/cs {f(row['server_cpu_ms_per_call_second'])} ms  server core "
        f"{f(row['server_core'])}  bridge p99 {f(row['bridge_p99_ms'], '{:.1f}')} ms  "
        f"generator side {f(row['generator_side_cores'])} cores"
        + ("  (saturated)" if row["generator_saturated"] else "")
    )


def capacity_summary(result: dict[str, Any], *, rows: bool = True) -> str:
    lines = [
        f"hotline load --find-capacity: server pinned to CPU {result['server_cpus']}, "
        f"{result['seconds_per_call']:g} s calls",
        *(row_line(r) for r in (result["rows"] if rows else ())),
        f"largest N that holds (0 underruns > 20 ms, 0 errors): {result['largest_calls_held']}"
        + (
            f" (first failure at {result['first_calls_failed']}, resolution {result['resolution']})"
            if result["first_calls_failed"] is not None
            else " (the limit was reached before any failure)"
        ),
    ]
    if result["generator_limited"]:
        lines.append(
            "  the generator side was saturated near the limit: the server may hold more "
            "(a lower bound)"
        )
    return "\n".join(lines)
