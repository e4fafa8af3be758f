"""The caller's Twilio-side faults (issue 5): messages a broken or hostile Twilio peer could
send, and a second stream for a call that already has one. The flags are in
:class:`hotline.sim.options.CallOptions`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from hotline.core.ulaw import SILENCE_FRAME
from hotline.sim.call_report import CallReport
from hotline.sim.messages import TwilioMessages
from hotline.sim.options import CallOptions, new_sid
from hotline.sim.webhook import connect_url, sign

__all__ = ["duplicate_stream", "send_faults"]


async def send_faults(
    send: Callable[[str | bytes], Awaitable[None]],
    msgs: TwilioMessages,
    opts: CallOptions,
    report: CallReport,
    tick: int,
) -> None:
    """Misbehave as the fault flags ask, at this 20 ms tick of the call's clock."""
    every = 25  # 0.5 s
    if opts.unknown_events and tick % every == 3:
        await send(
            json.dumps(
                {
                    "event": "hotline-unknown",
                    "sequenceNumber": msgs.next_seq(),
                    "streamSid": msgs.stream_sid,
                    "unknown": {"x": "1"},
                }
            )
        )
    if opts.malformed_json and tick % every == 7:
        await send('{"event":"media","streamSid":"' + msgs.stream_sid + '","media":{"payload":')
    if opts.binary_frames and tick % every == 11:
        await send(SILENCE_FRAME)
    if opts.huge_message and tick == 10:
        big = "A" * (1 << 20)
        await send(msgs.media_at(big, msgs.chunk + 1, msgs.chunk * 20))
    if opts.dtmf_storm and tick == 25:
        keys = "0123456789*#"
        for i in range(opts.dtmf_storm):
            await send(msgs.dtmf(keys[i % len(keys)]))
            report.dtmf_sent += 1


async def duplicate_stream(
    opts: CallOptions, report: CallReport, msgs: TwilioMessages, params: dict[str, str]
) -> None:
    """Open a second stream for the same call (same signed URL, same parameters)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    assert report.stream_url is not None
    url = opts.ws_url or connect_url(report.stream_url, opts.url)
    headers = {}
    if opts.auth_token:
        headers["X-Twilio-Signature"] = sign(opts.auth_token, report.stream_url, {})
    await asyncio.sleep(0.3)
    try:
        async with connect(
            url,
            additional_headers=headers,
            compression=None,
            ping_interval=None,
            open_timeout=5,
        ) as ws2:
            sid2 = new_sid("MZ")
            await ws2.send(
                json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            )
            await ws2.send(msgs.start(params, stream_sid=sid2))

            async def drain() -> None:
                with contextlib.suppress(ConnectionClosed):  # any close code: reported below
                    async for _ in ws2:
                        pass

            try:
                await asyncio.wait_for(drain(), 3.0)
                report.duplicate_result = f"closed by server (code {ws2.close_code})"
            except asyncio.TimeoutError:
                report.duplicate_result = "still open after 3 s"
    except InvalidStatus as exc:
        report.duplicate_result = f"upgrade refused (HTTP {exc.response.status_code})"
    except (ConnectionClosed, OSError) as exc:
        report.duplicate_result = f"failed: {type(exc).__name__}"
