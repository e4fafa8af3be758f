"""A suite passes when every scenario passes its share of runs (``--min-pass-rate``)."""

from __future__ import annotations

import json

from hotline.sim.scenario.checks import Check
from hotline.sim.scenario.report import dumps, suite_passed
from hotline.sim.scenario.runner import ScenarioResult


def result(name: str, run: int, ok: bool) -> ScenarioResult:
    return ScenarioResult(name, None, run, f"CA{run}", [Check(1, "line", ok)])


def test_every_run_must_pass_by_default() -> None:
    runs = [result("tour", 1, True), result("tour", 2, False)]
    assert not suite_passed(runs)
    assert suite_passed(runs, 0.5)
    assert not suite_passed(runs, 0.51)


def test_each_scenario_is_judged_on_its_own_runs() -> None:
    runs = [
        result("tour", 1, True),
        result("tour", 2, True),
        result("keys", 1, False),
        result("keys", 2, False),
    ]
    # half of all calls passed, but one scenario never did
    assert not suite_passed(runs, 0.5)
    report = json.loads(dumps(runs, 0.5))
    assert report["passed"] is False and report["min_pass_rate"] == 0.5
    assert report["scenarios"] == {
        "tour": {"passed": 2, "runs": 2},
        "keys": {"passed": 0, "runs": 2},
    }
