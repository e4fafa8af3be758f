"""The stand-in's fault modes (issue 5's fault matrix): which one a connection gets, and the
low-level ones (a TCP reset with half a message on the wire)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["FAULT_MODES", "fault_for", "reset_mid_message"]

FAULT_MODES: tuple[str, ...] = (
    "error_1008",  # error JSON then a 1008 close mid-utterance (after some audio)
    "reset_mid_chunk",  # half an audio message on the wire, then a TCP reset
    "corrupt_audio",  # some audio chunks replaced by random bytes of the same length
    "no_final",  # audio, but never isFinal and never a close
    "slow_first_chunk",  # first audio only after VoiceConfig.slow_first_chunk_s (5 s)
    "idle_close",  # inactivity close (input_timeout_exceeded + 1008) after VoiceConfig.idle_close_s
    "refuse_handshake",  # HTTP 401, as for a bad key
)


def fault_for(voice_id: str, query: dict[str, str], default: str | None) -> str | None:
    """The fault a connection asked for: ``hotline_fault=<mode>``, else the voice id
    ``fault-<mode>``, else the server-wide ``default``. Not checked against FAULT_MODES."""
    fault = query.get("hotline_fault")
    if fault is None and voice_id.startswith("fault-"):
        fault = voice_id[len("fault-") :].replace("-", "_")
    return fault if fault is not None else default


def frame_header(length: int) -> bytes:
    """Header of an unmasked, final text frame of ``length`` bytes (server -> client)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return bytes((0x81, 126)) + struct.pack("!H", length)
    return bytes((0x81, 127)) + struct.pack("!Q", length)


def reset_mid_message(transport: asyncio.Transport, payload: str) -> None:
    """Half a text frame of ``payload`` on the wire, then a TCP RST (SO_LINGER 0 + abort)."""
    data = payload.encode()
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        transport.write(frame_header(len(data)) + data[: len(data) // 2])
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
