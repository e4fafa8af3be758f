"""The messages Twilio sends on a Media Stream (shared/docs/protocols.md §1), as JSON text.

All numbers are JSON strings, as Twilio sends them. One :class:`TwilioMessages` per stream
numbers the messages (``sequenceNumber``) and the inbound media chunks.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

__all__ = ["CONNECTED", "TwilioMessages"]

CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
_MEDIA_FMT = (
    '{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}",'
    '"timestamp":"{ts}","payload":"{payload}"}},"streamSid":"{sid}"}}'
)


def b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode("ascii")


@dataclass
class TwilioMessages:
    """Twilio's side of one stream: ``start``, ``media``, ``dtmf``, ``mark``, ``stop``."""

    stream_sid: str
    call_sid: str
    account_sid: str
    seq: int = 0
    chunk: int = 0  # inbound media chunks sent

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    def start(self, custom_parameters: dict[str, str], stream_sid: str | None = None) -> str:
        sid = stream_sid or self.stream_sid
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": self.next_seq(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": custom_parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": sid,
            }
        )

    def media(self, payload_b64: str) -> str:
        """The next 20 ms inbound frame (payload already base64; its timestamp follows the chunk)."""
        self.chunk += 1
        return _MEDIA_FMT.format(
            seq=self.next_seq(),
            chunk=self.chunk,
            ts=(self.chunk - 1) * 20,
            payload=payload_b64,
            sid=self.stream_sid,
        )

    def media_at(self, payload_b64: str, chunk: int, timestamp_ms: int) -> str:
        """A media message with an explicit chunk/timestamp (faults: out-of-band frames)."""
        return _MEDIA_FMT.format(
            seq=self.next_seq(),
            chunk=chunk,
            ts=timestamp_ms,
            payload=payload_b64,
            sid=self.stream_sid,
        )

    def dtmf(self, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self.next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self.next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self.next_seq(),
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                "streamSid": self.stream_sid,
            }
        )
