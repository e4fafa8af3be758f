"""The caller simulator: Twilio's side of one call (``hotline call``).

It does what Twilio does for a ``<Connect><Stream>`` call (shared/docs/protocols.md §1):
a signed voice-webhook POST, the TwiML parsed, a signed WebSocket upgrade to the ``<Stream>``
url, ``connected`` then ``start`` (with the ``<Parameter>`` values in ``customParameters``),
inbound media every 20 ms (silence, or eSpeak speech for barge-in and for spoken questions:
``speak``, each asked once the previous line has ended and silence followed), ``dtmf`` presses, and
``stop`` at the end; all numbers are JSON strings. Outbound audio is played by a simulated
8 kHz playback clock: marks are echoed only once the audio queued before them has played
(at once if nothing is queued), ``clear`` drops the buffer and echoes every pending mark.
Outbound messages are checked as strictly as Twilio checks them (31950/31951).

One call costs two asyncio tasks (a stream's 20 ms clock and its receiver) and no
per-frame work beyond a string format and, while audio plays, one small C call.

The package, by job: ``options`` (what a call does, its fault flags, :class:`CallControl`),
``stream`` (one connected stream: its clock and receiver), ``conversation`` (the questions it
asks aloud, the barge-in), ``faults`` (Twilio-side misbehaviour), ``clock`` (the frame clock
shared by a load run's plain calls), this module (the webhook, the streams one after another,
``<Connect action>``: :func:`place_call`); ``webhook``, ``messages``, ``playback``, ``speech``
and ``call_report`` are their parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hotline.sim.call_report import CallReport
from hotline.sim.conversation import read_transcript
from hotline.sim.errors import CallError
from hotline.sim.options import CallOptions, new_sid
from hotline.sim.stream import MediaStream
from hotline.sim.webhook import (
    connect_action,
    connect_url,
    is_hangup,
    parse_twiml,
    post_action,
    post_webhook,
    sign,
)

__all__ = ["place_call"]


async def _stream(
    opts: CallOptions,
    report: CallReport,
    stream_url: str,
    params: dict[str, str],
    *,
    ws_url: str | None,
    stream_sid: str | None,
    max_seconds: float,
) -> MediaStream:
    """One media stream of the call: the signed upgrade, then the call until it ends.

    Raises:
        CallError: the upgrade failed.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    headers: dict[str, str] = {}
    if opts.auth_token:
        token = opts.auth_token + "x" if opts.bad_signature else opts.auth_token
        headers["X-Twilio-Signature"] = sign(token, stream_url, {})
    url = ws_url or connect_url(stream_url, opts.url)
    report.close_code = None
    try:
        async with connect(
            url,
            additional_headers=headers,
            user_agent_header="Twilio.TmeWs/1.0",
            compression=None,
            ping_interval=None,
            open_timeout=opts.http_timeout,
            max_size=None,
            close_timeout=2,
        ) as ws:
            call = MediaStream(ws, opts, report, params, stream_sid, max_seconds)
            call.heard = bytearray(report.heard)  # the earpiece goes on across streams
            try:
                await call.run()
            finally:
                report.close_code = ws.close_code
        if report.close_code is None:  # we closed it after `stop`
            report.close_code = ws.close_code
    except InvalidStatus as exc:
        raise CallError(f"WebSocket upgrade refused: HTTP {exc.response.status_code}") from None
    except (InvalidHandshake, OSError, asyncio.TimeoutError) as exc:
        raise CallError(f"WebSocket to {url} failed: {type(exc).__name__}: {exc}") from None
    if report.close_code is None and opts.drop_without_stop:
        report.close_code = 1006
    return call


async def place_call(options: CallOptions) -> CallReport:
    """Place one simulated call and report what the caller lived through. Never raises for
    server misbehaviour: failures land in ``report.errors`` with ``ended_by="error"``."""
    opts = options
    report = CallReport(call_sid=opts.call_sid)
    t_begin = time.monotonic()
    for text in opts.speak:  # the questions, synthesized before the clock starts
        from hotline.sim.speech import caller_speech_end

        with contextlib.suppress(Exception):  # reported when the question is due
            await asyncio.to_thread(caller_speech_end, text)
    if (
        opts.barge_in_at is not None or opts.barge_in_after_answer_s is not None
    ):  # synthesize the caller's words before the clock starts
        from hotline.sim.speech import DEFAULT_CALLER_TEXT, caller_speech_payloads

        with contextlib.suppress(Exception):  # reported when the barge-in starts
            await asyncio.to_thread(
                caller_speech_payloads, opts.barge_in_text or DEFAULT_CALLER_TEXT
            )
    try:
        twiml = await post_webhook(opts, report)
        stream_url, params = parse_twiml(twiml)
        report.stream_url = stream_url
        report.custom_parameters = dict(params)
        t_first: float | None = None  # loop time of the first stream's start
        while True:
            first = not report.streams
            left = opts.max_seconds
            if t_first is not None:
                left -= asyncio.get_running_loop().time() - t_first
            call = await _stream(
                opts,
                report,
                stream_url,
                params,
                ws_url=opts.ws_url if first else None,
                stream_sid=None if first else new_sid("MZ"),
                max_seconds=max(left, 0.0),
            )
            if t_first is None:
                t_first = call.t0
            origin = t_first
            ended_at = asyncio.get_running_loop().time()
            first_audio = call.first_media_at
            report.streams.append(
                {
                    "stream_sid": call.sid,
                    "started_ms": (call.t0 - origin) * 1000.0,
                    "first_audio_ms": None
                    if first_audio is None
                    else (first_audio - origin) * 1000.0,
                    "ended_ms": (ended_at - origin) * 1000.0,
                    "ended_by": report.ended_by,
                    "close_code": report.close_code,
                }
            )
            action = connect_action(twiml)
            if (
                not opts.follow_action
                or action is None
                or report.ended_by != "server_hangup"
                or len(report.streams) >= opts.max_streams
            ):
                break
            status, twiml = await post_action(opts, action)
            if status is None:
                report.actions.append("unreachable")
                break
            if status != 200:
                report.actions.append(f"http {status}")
                report.errors.append(f"<Connect action> POST answered HTTP {status}")
                break
            if is_hangup(twiml):
                report.actions.append("hangup")
                break
            try:
                stream_url, params = parse_twiml(twiml)
            except CallError:
                report.actions.append("other")
                break
            report.actions.append("stream")
    except CallError as exc:
        report.errors.append(str(exc))
        report.ended_by = "error"
    if len(report.streams) > 1:  # the whole call, over every stream
        report.duration_ms = report.streams[-1]["ended_ms"]
    if not report.duration_ms:
        report.duration_ms = (time.monotonic() - t_begin) * 1000.0
    if opts.admin_token and report.turns:
        await read_transcript(opts, report)
    if opts.out:
        from hotline.sim.wav import write_ulaw_wav

        write_ulaw_wav(opts.out, report.heard)
        report.out = opts.out
    return report
