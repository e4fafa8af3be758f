"""The capacity ramp's search, against a stand-in run whose capacity is known, and once for
real (tiny) so the pinning and the report hold on a spawned server."""

from __future__ import annotations

import os
from typing import Any

import pytest

from hotline.sim.load.calls import LoadOptions
from hotline.sim.load.capacity import capacity_summary, find_capacity
from tests.support.aio import arun


def fake_result(calls: int, capacity: int) -> dict[str, Any]:
    over = max(0, calls - capacity)
    return {
        "underrun": {"calls_over_20ms": over, "max_ms": 40.0 if over else 0.0},
        "errors": {"total": 0},
        "wall_s": 10.0,
        "server": {"cpu_ms_per_call_second": 2.0, "cpu_s": calls * 0.02},
        "load_generator": {"cpu_s": 1.0},
    }


@pytest.mark.parametrize("capacity", [1, 37, 100, 333])
def test_the_ramp_finds_the_largest_n_that_holds_to_its_resolution(capacity: int) -> None:
    asked: list[int] = []

    async def run(opts: LoadOptions) -> dict[str, Any]:
        assert opts.spawn_server and opts.server_cpus and len(opts.server_cpus) == 1
        asked.append(opts.calls)
        return fake_result(opts.calls, capacity)

    result = arun(lambda: find_capacity(LoadOptions(calls=10), step=5, run=run))
    good, bad = result["largest_calls_held"], result["first_calls_failed"]
    assert good <= capacity < bad and bad - good <= 5, (good, bad, asked)
    assert asked[:2] == [10, 20] or capacity < 10
    assert not result["generator_limited"]
    assert f"largest N that holds (0 underruns > 20 ms, 0 errors): {good}" in capacity_summary(
        result
    )


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_real_ramp_on_a_pinned_server() -> None:
    opts = LoadOptions(calls=2, seconds=2.0, say=False)
    before = os.sched_getaffinity(0)
    result = arun(lambda: find_capacity(opts, step=2, limit=4), timeout=120)
    assert result["server_cpus"] == [min(os.sched_getaffinity(0))]
    assert [r["calls"] for r in result["rows"]][:1] == [2]
    assert result["largest_calls_held"] in (2, 4) or result["rows"][0]["holds"] is False
    for row in result["rows"]:
        assert row["server_cpu_ms_per_call_second"] is not None
    assert os.sched_getaffinity(0) == before  # the generator side's pinning was undone
