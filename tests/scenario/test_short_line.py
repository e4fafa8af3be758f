"""``hotline test`` and the pytest plugin over the real path, offline, kept short: a spawned
``hotline serve`` (local voice, local ear) running a two-line script, a scenario that passes,
and one whose expectation the line does not meet, which must fail saying what the caller got.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
greeting = "Hi, this is the test line. Press 1."
invalid_digit = "That key does nothing."
goodbye = "Bye now."
goodbye_digit = "0"
[menu]
1 = "Wren plays Portland in April."
"""

GOOD = """
name = "keys on the short line"
script = "script.toml"
[[step]]
listen = true
expect = { line = "greeting", latency_ms = 3000 }
[[step]]
press = "1"
expect = { line = "menu.1", words = ["Portland"], latency_ms = 2000, no_turn = true }
[[step]]
press = "0"
expect = { line = "goodbye" }
[expect]
outcome = "server_hangup"
judge = "The line names a city."
"""

#: The line says Portland; this scenario wants Seattle and a caller hang-up.
WRONG = """
name = "a wrong expectation"
script = "script.toml"
[[step]]
listen = true
[[step]]
press = "1"
expect = { words = ["Seattle"] }
[[step]]
press = "0"
[expect]
outcome = "caller_hangup"
"""


def scenarios(tmp_path: Path) -> Path:
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "script.toml").write_text(SCRIPT)
    (d / "good.toml").write_text(GOOD)
    (d / "wrong.toml").write_text(WRONG)
    return d


def hotline_test(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", "test", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def llm_judge() -> Iterator[str]:
    """The OpenAI-compatible stand-in as the judge: PASS when the call names Portland."""
    from hotline.loopback import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline.sim.llm_server", "--port", str(port),
         "--reply", "portland=PASS: it names Portland.", "--default", "FAIL: no city in it."],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def test_hotline_test_passes_a_good_scenario_and_fails_a_wrong_one(tmp_path: Path) -> None:
    d = scenarios(tmp_path)
    with llm_judge() as judge_url:
        out = hotline_test(
            str(d / "good.toml"), str(d / "wrong.toml"), "--spawn-server", "--jobs", "2",
            "--server-env", f"HOTLINE_SCRIPT={d / 'script.toml'}", "--judge-url", judge_url,
            "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
        )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["scenarios"] == {
        "keys on the short line": {"passed": 1, "runs": 1},
        "a wrong expectation": {"passed": 0, "runs": 1},
    }
    wrong = next(c for c in report["calls"] if c["name"] == "a wrong expectation")
    failed = {c["what"]: c["detail"] for c in wrong["checks"] if c["ok"] is False}
    # what the caller got instead: heard by the caller's ear, said according to the server
    assert "Portland" in failed["words 'Seattle' (server)"]
    assert "words 'Seattle' (heard)" in failed
    assert failed["outcome caller_hangup"] == "server_hangup"
    good = next(c for c in report["calls"] if c["name"] == "keys on the short line")
    assert all(c["ok"] is not False for c in good["checks"])
    judged = [c for c in good["checks"] if c["what"] == "judge"]
    assert judged == [{"step": None, "what": "judge", "ok": True, "detail": "it names Portland"}]
    assert [s["latency_ms"] is not None for s in good["steps"]] == [True, True, True]
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    assert "FAIL a wrong expectation" in out.stdout and "Seattle" in out.stdout


def test_a_scenario_that_cannot_run_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[step]]\npress = 'x'\n")
    out = hotline_test(str(tmp_path / "bad.toml"), "--url", "http://127.0.0.1:9")
    assert out.returncode == 2 and "step[0].press" in out.stderr
    out = hotline_test(str(tmp_path / "none.toml"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_an_unreachable_line_fails_the_scenario_not_the_tool(tmp_path: Path) -> None:
    d = scenarios(tmp_path)
    from hotline.loopback import free_port

    out = hotline_test(
        str(d / "good.toml"), "--url", f"http://127.0.0.1:{free_port()}", "--ear", "grammar"
    )
    assert out.returncode == 1, out.stderr
    assert "call ran: webhook POST" in out.stdout


PLUGIN_TEST = """
from pathlib import Path

def test_good(hotline_scenario):
    hotline_scenario(Path(__file__).parent / "scenarios" / "good.toml")

def test_wrong(hotline_scenario):
    hotline_scenario(Path(__file__).parent / "scenarios" / "wrong.toml")
"""


@pytest.mark.slow  # a second spawned server and call, ~15 s
def test_the_pytest_plugin_runs_a_deployers_scenarios(tmp_path: Path) -> None:
    d = scenarios(tmp_path)
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["hotline.sim.scenario.pytest_plugin"]\n'
    )
    (tmp_path / "test_line.py").write_text(PLUGIN_TEST)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", "/dev/null", "--hotline-server-env", f"HOTLINE_SCRIPT={d / 'script.toml'}",
         str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed, 1 passed" in out.stdout, out.stdout
    assert "scenario a wrong expectation: passed 0% of 1 call(s)" in out.stdout
