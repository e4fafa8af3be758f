"""A pytest plugin so a deployer's own suite runs their scenarios.

In the suite's top-level ``conftest.py``::

    pytest_plugins = ["hotline.sim.scenario.pytest_plugin"]

then in a test::

    def test_tour(hotline_scenario):
        hotline_scenario("scenarios/tour_dates.toml")            # fails with what went wrong

    @pytest.mark.parametrize("path", sorted(Path("scenarios").glob("*.toml")))
    def test_line(hotline_scenario, path):
        hotline_scenario(path, repeat=3, min_pass_rate=2 / 3)

The line under test: ``--hotline-url URL`` (with ``--hotline-auth-token`` / $TWILIO_AUTH_TOKEN
and ``--hotline-admin-token`` / $HOTLINE_ADMIN_TOKEN), else a hotline the session spawns
offline (the local voice and ear), once for the whole session. ``--hotline-ear`` picks the
caller's ear.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotline.sim.scenario.runner import Line, ScenarioResult

__all__ = ["hotline_line", "hotline_scenario", "pytest_addoption"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hotline", "hotline scenarios")
    group.addoption("--hotline-url", default=None, help="a running hotline (default: spawn one)")
    group.addoption("--hotline-auth-token", default=None, help="default: $TWILIO_AUTH_TOKEN")
    group.addoption("--hotline-admin-token", default=None, help="default: $HOTLINE_ADMIN_TOKEN")
    group.addoption("--hotline-ear", default="auto", choices=("auto", "whisper", "grammar"))
    group.addoption(
        "--hotline-server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the spawned hotline (repeatable), e.g. HOTLINE_SCRIPT=script.toml",
    )


@pytest.fixture(scope="session")
def hotline_line(request: pytest.FixtureRequest) -> Iterator[Line]:
    """The line under test: ``--hotline-url``, else an offline hotline spawned for the session."""
    url = request.config.getoption("--hotline-url")
    if url:
        token = request.config.getoption("--hotline-auth-token") or os.environ.get(
            "TWILIO_AUTH_TOKEN"
        )
        admin = request.config.getoption("--hotline-admin-token") or os.environ.get(
            "HOTLINE_ADMIN_TOKEN"
        )
        yield Line(url, token or None, admin or None)
        return
    from hotline.sim.scenario.serve import parse_env, spawn_line

    env = parse_env(request.config.getoption("--hotline-server-env"))
    try:
        with spawn_line(env) as spawned:
            yield Line(spawned.url, spawned.auth_token, spawned.admin_token)
    finally:
        from hotline.ear.recognizer import cleanup_model_dir

        cleanup_model_dir()  # the grammar ear's model copy (harmless if none was made)


@pytest.fixture(scope="session")
def hotline_scenario(
    request: pytest.FixtureRequest, hotline_line: Line
) -> Callable[..., list[ScenarioResult]]:
    """``hotline_scenario(path, repeat=1, min_pass_rate=1.0)``: run a scenario file against the
    line; fails the test (with every failed check) below the pass rate; returns the results."""
    from hotline.sim.scenario.ear import make_ear
    from hotline.sim.scenario.model import load_scenario
    from hotline.sim.scenario.report import table
    from hotline.sim.scenario.runner import ear_vocabulary, run_all

    kind = request.config.getoption("--hotline-ear")

    def run(
        path: str | Path, *, repeat: int = 1, min_pass_rate: float = 1.0
    ) -> list[ScenarioResult]:
        scenario = load_scenario(path)
        ear = make_ear(kind, ear_vocabulary([scenario]))
        results = asyncio.run(run_all([scenario], hotline_line, ear, repeat=repeat))
        rate = sum(r.passed for r in results) / len(results)
        if rate < min_pass_rate:
            pytest.fail(
                f"scenario {scenario.name}: passed {rate:.0%} of {len(results)} call(s), "
                f"needs {min_pass_rate:.0%}\n{table(results)}",
                pytrace=False,
            )
        return results

    return run
