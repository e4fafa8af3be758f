"""What one simulated call does (:class:`CallOptions`, its fault flags included) and how it is
steered while it runs (:class:`CallControl`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from hotline.sim.call_report import CallReport

__all__ = ["CallControl", "CallOptions", "new_sid"]


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class CallControl:
    """Steer a running call from outside (tests, the load generator): press keys, hang up.

    Pass one in ``CallOptions.control``; calls take effect on the next 20 ms tick.
    """

    def __init__(self) -> None:
        self._digits: list[str] = []
        self._hangup = False

    def press(self, digits: str) -> None:
        self._digits.extend(digits)

    def hang_up(self) -> None:
        self._hangup = True


@dataclass
class CallOptions:
    """One simulated call. Defaults place a plain call and wait for the server to hang up.

    Fault flags (issue 5) make the caller misbehave the way a broken or hostile Twilio peer
    could; each one is described next to it.
    """

    url: str = (
        "http://127.0.0.1:8000"  # the hotline server's base URL; the WS URL comes from its TwiML
    )
    auth_token: str | None = None  # TWILIO_AUTH_TOKEN used to sign the webhook and the upgrade
    voice_path: str = "/voice"
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    stream_sid: str = field(default_factory=lambda: new_sid("MZ"))
    from_number: str = "+15555550123"
    to_number: str = "+15555550100"
    digits: str = ""  # DTMF keys to press
    digit_after_s: float | None = (
        None  # None: each key after the next mark echo (the greeting/line finished)
    )
    digit_gap_s: float = 4.0  # with digit_after_s: seconds between keys
    barge_in_at: float | None = None  # seconds after `start`: the caller starts talking
    barge_in_text: str | None = None  # what the caller says (default: a short question)
    barge_in_after_answer_s: float | None = (
        None  # talk this long after the answer to the first key began playing
    )
    hangup_after_barge_in_s: float | None = None  # hang up this long after starting to talk
    hangup_after_s: float | None = None  # caller sends `stop` and closes at this time
    max_seconds: float = 30.0  # bound on the whole call (then `stop`, ended_by="timeout")
    out: str | None = None  # WAV of what the caller heard
    realtime: bool = True  # False: the clock runs 10x faster (quick functional checks only)
    keep_audio: bool = True  # keep `heard` (disable for big load runs)
    ws_url: str | None = (
        None  # connect here instead of the TwiML url (the TwiML url is still signed)
    )
    extra_form: dict[str, str] = field(default_factory=dict)  # more webhook form fields
    on_started: Callable[[CallReport], object] | None = None  # called right after `start` is sent
    control: CallControl | None = None  # press keys / hang up from outside while the call runs
    http_timeout: float = 10.0
    # Follow <Connect action> the way Twilio does when the stream closes without the call
    # being hung up (the server closed it, or its replica died): POST it (signed, with the
    # call's standard parameters) and play what it answers (<Hangup/>, or a new stream).
    # Off by default: the fault options below then describe one stream's life.
    follow_action: bool = False
    max_streams: int = 5  # bound on streams per call (a resume loop ends here)
    # One clock task for every call of this event loop (the load generator: hundreds of calls
    # cost one timer wake-up per 20 ms, not one each). Only for plain calls: no keys, no barge-in,
    # no control, no faults (those take the per-call clock regardless).
    shared_clock: bool = False
    # -- Twilio-side faults --------------------------------------------------------------------
    bad_signature: bool = False  # sign with a wrong token (expect 403 / refused upgrade)
    drop_without_stop: bool = False  # end by dropping the TCP connection: no `stop`, no close frame
    stop_before_media: bool = False  # `connected`, `start`, then `stop` at once
    duplicate_connection: bool = False  # a second stream for the same CallSid while the first runs
    unknown_events: bool = False  # an unknown event every 0.5 s
    malformed_json: bool = False  # a truncated JSON text every 0.5 s
    binary_frames: bool = False  # a binary frame every 0.5 s
    huge_message: bool = False  # one 1 MB text message 0.2 s in
    never_echo_marks: bool = False  # marks are never echoed (not even on clear)
    dtmf_storm: int = 0  # this many DTMF messages in one burst 0.5 s in
    media_speedup: float = 1.0  # inbound media this many times faster than real time
    # -- a conversation ------------------------------------------------------------------------
    speak: tuple[str, ...] = ()  # questions spoken in turn, each after the last line was heard
    speak_gap_s: float = 0.7  # silence after the line's audio ends before the caller speaks
    reply_timeout_s: float = 15.0  # no reply audio this long after a question: ask the next
    hangup_after_replies: bool = False  # hang up once the last reply was heard (and a gap)
    server_split: bool = False  # read the server's per-turn split from /metrics deltas
    admin_token: str | None = None  # read the call's transcript afterwards (what was heard)

    def plain(self) -> bool:
        """No keys, barge-in, control or faults: a call the shared clock can run."""
        return not (
            self.digits
            or self.control is not None
            or self.barge_in_at is not None
            or self.barge_in_after_answer_s is not None
            or self.hangup_after_barge_in_s is not None
            or self.unknown_events
            or self.malformed_json
            or self.binary_frames
            or self.huge_message
            or self.dtmf_storm
            or self.media_speedup != 1.0
            or self.duplicate_connection
        )
