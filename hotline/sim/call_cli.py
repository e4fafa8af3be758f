"""``hotline call``: place one simulated Twilio call against a running server and report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from hotline.sim.call_report import report_json
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="hotline server base URL")
    parser.add_argument(
        "--auth-token",
        default=None,
        help="Twilio auth token to sign with (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--digits", default="", help="DTMF keys to press, one after each finished line"
    )
    parser.add_argument(
        "--digit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="press the first key at this time instead",
    )
    parser.add_argument(
        "--barge-in-at",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start talking at this time",
    )
    parser.add_argument(
        "--hangup-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="hang up (stop) at this time",
    )
    parser.add_argument(
        "--barge-in-after-answer",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start talking this long after the answer to the first key began playing",
    )
    parser.add_argument(
        "--hangup-after-barge-in",
        type=float,
        default=None,
        metavar="SECONDS",
        help="hang up this long after starting to talk",
    )
    talk = parser.add_argument_group("a conversation")
    talk.add_argument(
        "--speak",
        action="append",
        default=[],
        metavar="TEXT",
        help="say this aloud (eSpeak NG, real-time 20 ms frames) once the line has ended and "
        "silence followed; repeatable: each question after the previous reply was heard. "
        "Without --digits or barge-in options the caller hangs up after the last reply",
    )
    talk.add_argument(
        "--speak-gap",
        type=float,
        default=0.7,
        metavar="SECONDS",
        help="silence after a line's audio ends before the caller speaks (default 0.7)",
    )
    talk.add_argument(
        "--reply-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="no reply this long after a question: ask the next one (default 15)",
    )
    talk.add_argument(
        "--no-server-split",
        action="store_true",
        help="do not read the server's voice-to-voice split from /metrics around each question",
    )
    talk.add_argument(
        "--admin-token",
        default=None,
        help="read the call's transcript afterwards: what the server heard of each question and "
        "the line it said (default: $HOTLINE_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--report-json", default=None, metavar="PATH", help="also write the report as JSON"
    )
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--out", default=None, metavar="WAV", help="write what the caller heard")
    parser.add_argument("--from", dest="from_number", default="+15555550123")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead")
    parser.add_argument(
        "--follow-action",
        action="store_true",
        help="as Twilio does: when the stream closes without a hang-up, POST the "
        "<Connect action> URL and play what it answers (<Hangup/> or a new stream)",
    )
    faults = parser.add_argument_group("Twilio-side faults")
    for flag in (
        "drop-without-stop",
        "stop-before-media",
        "duplicate-connection",
        "unknown-events",
        "malformed-json",
        "binary-frames",
        "huge-message",
        "never-echo-marks",
        "bad-signature",
    ):
        faults.add_argument(f"--{flag}", action="store_true")
    faults.add_argument("--dtmf-storm", type=int, default=0, metavar="N")
    faults.add_argument("--media-speedup", type=float, default=1.0, metavar="X")


def run(args: argparse.Namespace) -> int:
    token = args.auth_token if args.auth_token is not None else os.environ.get("TWILIO_AUTH_TOKEN")
    admin = (
        args.admin_token if args.admin_token is not None else os.environ.get("HOTLINE_ADMIN_TOKEN")
    )
    speak = tuple(t for t in args.speak if t.strip())
    more = bool(
        args.digits
        or args.barge_in_at is not None
        or args.barge_in_after_answer is not None
        or args.hangup_after is not None
    )
    opts = CallOptions(
        url=args.url,
        auth_token=token or None,
        digits=args.digits,
        digit_after_s=args.digit_after,
        barge_in_at=args.barge_in_at,
        hangup_after_s=args.hangup_after,
        barge_in_after_answer_s=args.barge_in_after_answer,
        hangup_after_barge_in_s=args.hangup_after_barge_in,
        max_seconds=args.max_seconds,
        out=args.out,
        from_number=args.from_number,
        drop_without_stop=args.drop_without_stop,
        stop_before_media=args.stop_before_media,
        duplicate_connection=args.duplicate_connection,
        unknown_events=args.unknown_events,
        malformed_json=args.malformed_json,
        binary_frames=args.binary_frames,
        huge_message=args.huge_message,
        never_echo_marks=args.never_echo_marks,
        bad_signature=args.bad_signature,
        dtmf_storm=args.dtmf_storm,
        media_speedup=args.media_speedup,
        follow_action=args.follow_action,
        speak=speak,
        speak_gap_s=args.speak_gap,
        reply_timeout_s=args.reply_timeout,
        hangup_after_replies=bool(speak) and not more,
        server_split=bool(speak) and not args.no_server_split,
        admin_token=admin or None,
    )
    report = asyncio.run(place_call(opts))
    if args.report_json:
        with open(args.report_json, "w", encoding="utf-8") as f:
            json.dump(report_json(report), f, indent=2)
    if args.json:
        print(json.dumps(report_json(report), indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 1
