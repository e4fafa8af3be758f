"""``hotline load``: the command line of the load generator."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from hotline.sim.load.calls import LoadOptions, run_load
from hotline.sim.load.report import summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (default 10)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="each call's length in seconds (default 10)"
    )
    parser.add_argument("--url", default=None, help="a running hotline server's base URL")
    parser.add_argument(
        "--auth-token", default=None, help="Twilio auth token to sign with ($TWILIO_AUTH_TOKEN)"
    )
    parser.add_argument(
        "--admin-token", default=None, help="admin bearer token for /calls ($HOTLINE_ADMIN_TOKEN)"
    )
    parser.add_argument(
        "--spawn-server",
        action="store_true",
        help="start hotline serve (and the local voice) as child processes on free ports",
    )
    parser.add_argument(
        "--embedded-voice",
        action="store_true",
        help="with --spawn-server: use the server's in-process local voice (its CPU then counts)",
    )
    parser.add_argument(
        "--first-chunk-delay",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="with --spawn-server: the local voice's first-chunk delay (default 0.25)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --spawn-server: set this in the server's environment (repeatable), e.g. "
        "ELEVENLABS_TRANSPORT=single or HOTLINE_CACHE_BYTES=0",
    )
    parser.add_argument("--server-pid", type=int, default=None, help="a local server's pid")
    parser.add_argument(
        "--ramp", type=float, default=None, metavar="SECONDS", help="spread call starts"
    )
    parser.add_argument(
        "--sequential",
        type=int,
        default=0,
        metavar="N",
        help="soak: N short calls one after another (--seconds each; try 0.6)",
    )
    parser.add_argument(
        "--lead-ms",
        type=float,
        default=LoadOptions.lead_ms,
        help="post the next say when this much of the current line is left to play (default 400)",
    )
    parser.add_argument(
        "--no-say", action="store_true", help="callers hear only the greeting (no say requests)"
    )
    parser.add_argument(
        "--converse",
        type=int,
        default=0,
        metavar="N",
        help="conversing calls: each asks N questions aloud, each after the previous reply, "
        "and hangs up; reports voice to voice (caller side, the server's per-stage split and "
        "hotline's own share). See hotline.sim.load.converse",
    )
    parser.add_argument(
        "--ear",
        choices=("grammar", "whisper"),
        default="grammar",
        help="with --converse --spawn-server: the spawned local ear's recogniser",
    )
    parser.add_argument(
        "--find-capacity",
        action="store_true",
        help="with --spawn-server: the server pinned to one core, raise N from --calls (doubling, "
        "then bisecting) until a call underruns; report the largest N that holds",
    )
    parser.add_argument(
        "--capacity-step",
        type=int,
        default=25,
        metavar="N",
        help="--find-capacity's resolution (default 25 calls)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's default loop, not uvloop"
    )


def env_pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--server-env wants NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def options_from_args(args: argparse.Namespace) -> LoadOptions:
    return LoadOptions(
        url=args.url,
        calls=args.calls,
        seconds=args.seconds,
        auth_token=args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN") or None,
        admin_token=args.admin_token or os.environ.get("HOTLINE_ADMIN_TOKEN") or None,
        spawn_server=args.spawn_server,
        embedded_voice=args.embedded_voice,
        first_chunk_delay=args.first_chunk_delay,
        server_pid=args.server_pid,
        ramp_s=args.ramp,
        sequential=args.sequential,
        say=not args.no_say,
        lead_ms=args.lead_ms,
        server_env=env_pairs(args.server_env),
    )


def run_async(coro: Any, *, use_uvloop: bool = True) -> Any:
    """``asyncio.run`` on uvloop when available (the simulator's per-frame cost halves)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            if sys.version_info >= (3, 11):
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    return runner.run(coro)
            return uvloop.run(coro)
    return asyncio.run(coro)


def _run_converse(args: argparse.Namespace, opts: LoadOptions) -> int:
    from hotline.sim.load.converse import ConverseOptions, converse_summary, run_converse

    copts = ConverseOptions(
        calls=opts.calls,
        questions=args.converse,
        url=None if opts.spawn_server else opts.url,
        auth_token=opts.auth_token,
        ramp_s=opts.ramp_s,
        server_env=opts.server_env,
        first_chunk_delay=opts.first_chunk_delay,
        ear_engine=args.ear,
    )
    try:
        result = run_async(run_converse(copts), use_uvloop=not args.no_uvloop)
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"hotline load: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else converse_summary(result))
    return 0 if result["errors"]["total"] == 0 and result["answered"] == result["questions"] else 1


def _run_capacity(args: argparse.Namespace, opts: LoadOptions) -> int:
    from hotline.sim.load.capacity import capacity_summary, find_capacity, row_line

    if not opts.spawn_server:
        print("hotline load: --find-capacity needs --spawn-server", file=sys.stderr)
        return 2
    if not hasattr(os, "sched_setaffinity"):
        print("hotline load: --find-capacity pins CPUs: Linux only", file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("hotline load: --find-capacity needs two CPUs (server | generator)", file=sys.stderr)
        return 2

    def progress(row: dict[str, Any]) -> None:
        if not args.json:
            print(row_line(row), flush=True)

    try:
        result = run_async(
            find_capacity(opts, step=max(1, args.capacity_step), on_row=progress),
            use_uvloop=not args.no_uvloop,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"hotline load: {exc}", file=sys.stderr)
        return 1
    # the rows were printed as they came
    print(json.dumps(result, indent=2) if args.json else capacity_summary(result, rows=False))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"hotline load: {exc}", file=sys.stderr)
        return 2
    if not opts.spawn_server and not opts.url:
        print("hotline load: give --url URL or --spawn-server", file=sys.stderr)
        return 2
    if opts.calls < 1 and not opts.sequential:
        print("hotline load: --calls must be >= 1", file=sys.stderr)
        return 2
    if opts.say and not opts.spawn_server and not opts.admin_token and not opts.sequential:
        print(
            "hotline load: no admin token (--admin-token or $HOTLINE_ADMIN_TOKEN): callers will "
            "hear only the greeting",
            file=sys.stderr,
        )
    if args.converse:
        return _run_converse(args, opts)
    if getattr(args, "find_capacity", False):
        return _run_capacity(args, opts)
    try:
        result = run_async(run_load(opts), use_uvloop=not args.no_uvloop)
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"hotline load: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary(result))
    return 0 if result["errors"]["total"] == 0 else 1
