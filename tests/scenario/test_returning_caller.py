"""A returning caller and the call's record, over the real path: the shipped scenario through
``hotline test --spawn-server`` (an earlier call, the records listing it, the returning greeting
heard, the record and its summary read back), a line that does not know its callers again
caught, and a line without records or without the admin token refused with a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.sim.scenario.ear import make_ear
from hotline.sim.scenario.model import ScenarioError, load_scenario
from hotline.sim.scenario.runner import Line, run_scenario
from tests.support.aio import arun

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "returning_caller.toml"


def hotline_test(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", "test", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_the_returning_caller_scenario_passes(tmp_path: Path) -> None:
    out = hotline_test(str(SCENARIO), "--spawn-server", "-v", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    (call,) = json.loads((tmp_path / "r.json").read_text())["calls"]
    judged = {c["what"]: c for c in call["checks"]}
    assert (
        judged["returning_greeting (heard)"]["ok"] and judged["returning_greeting (server)"]["ok"]
    )
    for what in ("record outcome 'twilio stop'", "record topic 'tour'", "record summary 'tour'"):
        assert judged[what]["ok"] is True, judged[what]
    assert "Answered: tour" in call["summary"]


@pytest.mark.slow
def test_a_line_that_does_not_know_its_callers_again_is_caught(tmp_path: Path) -> None:
    # No caller memory: the records keep the earlier call, but the line greets the caller as new.
    out = hotline_test(
        str(SCENARIO),
        "--spawn-server",
        "--server-env",
        "HOTLINE_MEMORY_CALLS=0",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert out.returncode == 1, out.stdout + out.stderr
    (call,) = json.loads((tmp_path / "r.json").read_text())["calls"]
    bad = {c["what"]: c["detail"] for c in call["checks"] if c["ok"] is False}
    assert set(bad) == {"returning_greeting (heard)", "returning_greeting (server)"}, bad
    assert "you've reached" in bad["returning_greeting (server)"]


def test_a_line_with_records_off_is_a_clear_error() -> None:
    out = hotline_test(
        str(SCENARIO), "--spawn-server", "--server-env", "HOTLINE_DATABASE_URL=off", timeout=90
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "returning_caller.toml: the line keeps no call records" in out.stderr
    assert "HOTLINE_DATABASE_URL=off" in out.stderr
    assert "Traceback" not in out.stderr


def test_without_the_admin_token_it_is_a_clear_error_before_any_call() -> None:
    sc = load_scenario(SCENARIO)
    line = Line("http://127.0.0.1:9", auth_token="x", admin_token=None)  # nothing listens there
    with pytest.raises(
        ScenarioError, match=r"called_before needs the line's call records.*--admin-token"
    ):
        arun(lambda: run_scenario(sc, line, make_ear("grammar", [])), 10)
