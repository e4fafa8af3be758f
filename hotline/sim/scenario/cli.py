"""``hotline test [SCENARIO...]``: run scenario files against a line and report.

Against a running hotline (``--url``, signing like Twilio with ``--auth-token`` or
$TWILIO_AUTH_TOKEN; the server's transcript with ``--admin-token`` or $HOTLINE_ADMIN_TOKEN), or
one it spawns offline (``--spawn-server``: the local voice and the local ear). Exit code 0 when
every scenario call passed, 1 when one failed, 2 when a scenario cannot be run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenarios",
        nargs="*",
        default=["scenarios"],
        metavar="SCENARIO",
        help="scenario files or directories of *.toml (default: scenarios/)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", default=None, help="a running hotline's base URL")
    target.add_argument(
        "--spawn-server",
        action="store_true",
        help="start a hotline of its own on 127.0.0.1 (local voice, local ear) for the run",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the spawned server (repeatable), e.g. HOTLINE_SCRIPT=my.toml",
    )
    parser.add_argument("--auth-token", default=None, help="default: $TWILIO_AUTH_TOKEN")
    parser.add_argument("--admin-token", default=None, help="default: $HOTLINE_ADMIN_TOKEN")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run each N times")
    parser.add_argument(
        "--min-pass-rate",
        type=float,
        default=1.0,
        metavar="R",
        help="a scenario passes when at least this share of its runs pass (default 1: all)",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="calls at once")
    parser.add_argument(
        "--ear",
        choices=("auto", "whisper", "grammar"),
        default="auto",
        help="the caller's ear (default: whisper when installed, else grammar)",
    )
    parser.add_argument("--junit", default=None, metavar="PATH", help="write JUnit XML")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the JSON report")
    parser.add_argument("--verbose", "-v", action="store_true", help="show every check")
    judge = parser.add_argument_group("the LLM judge (optional; OpenAI-compatible)")
    judge.add_argument("--judge-url", default=None, help="e.g. https://api.openai.com/v1")
    judge.add_argument("--judge-model", default="gpt-4o-mini")
    judge.add_argument(
        "--judge-key", default=None, help="API key (default: $HOTLINE_JUDGE_API_KEY)"
    )


@contextlib.contextmanager
def _line(args: argparse.Namespace) -> Iterator[object]:
    from hotline.sim.scenario.runner import Line

    if args.spawn_server:
        from hotline.sim.scenario.serve import parse_env, spawn_line

        with spawn_line(parse_env(args.server_env)) as spawned:
            yield Line(spawned.url, spawned.auth_token, spawned.admin_token)
        return
    token = args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN")
    admin = args.admin_token or os.environ.get("HOTLINE_ADMIN_TOKEN")
    yield Line(args.url or "http://127.0.0.1:8000", token or None, admin or None)


def run(args: argparse.Namespace) -> int:
    from hotline.sim.scenario.ear import make_ear
    from hotline.sim.scenario.judge import JudgeConfig
    from hotline.sim.scenario.model import ScenarioError, load_scenario
    from hotline.sim.scenario.report import dumps, junit_xml, suite_passed, table
    from hotline.sim.scenario.runner import collect, ear_vocabulary, run_all

    if args.repeat < 1 or args.jobs < 1:
        print("hotline test: --repeat and --jobs must be at least 1", file=sys.stderr)
        return 2
    if not 0 < args.min_pass_rate <= 1:
        print("hotline test: --min-pass-rate must be above 0 and at most 1", file=sys.stderr)
        return 2
    try:
        scenarios = [load_scenario(p) for p in collect(args.scenarios)]
        ear = make_ear(args.ear, ear_vocabulary(scenarios))
    except (ScenarioError, ValueError) as exc:
        print(f"hotline test: {exc}", file=sys.stderr)
        return 2
    judge = None
    if args.judge_url:
        key = args.judge_key or os.environ.get("HOTLINE_JUDGE_API_KEY")
        judge = JudgeConfig(args.judge_url, args.judge_model, key or None)

    def progress(res: object) -> None:
        from hotline.sim.scenario.runner import ScenarioResult

        assert isinstance(res, ScenarioResult)
        mark = "pass" if res.passed else "FAIL"
        print(f"{mark}  {res.name} (run {res.run}, {res.seconds:.1f} s)", file=sys.stderr)

    try:
        with _line(args) as line:
            results = asyncio.run(
                run_all(
                    scenarios,
                    line,  # type: ignore[arg-type]
                    ear,
                    repeat=args.repeat,
                    jobs=args.jobs,
                    judge_config=judge,
                    on_result=progress,
                )
            )
    except (ScenarioError, ValueError, RuntimeError) as exc:
        print(f"hotline test: {exc}", file=sys.stderr)
        return 2
    finally:
        from hotline.ear.recognizer import cleanup_model_dir

        cleanup_model_dir()  # the grammar ear's model copy (harmless if none was made)
    print(table(results, verbose=args.verbose))
    if args.junit:
        Path(args.junit).write_text(junit_xml(results), "utf-8")
    if args.json:
        Path(args.json).write_text(dumps(results, args.min_pass_rate), "utf-8")
    return 0 if suite_passed(results, args.min_pass_rate) else 1
