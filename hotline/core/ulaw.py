"""G.711 µ-law at 8 kHz as Twilio carries it: the sizes and the silence every layer agrees on."""

from __future__ import annotations

__all__ = ["BYTES_PER_MS", "FRAME_BYTES", "SILENCE", "SILENCE_FRAME"]

#: One byte per sample at 8 kHz: 8 bytes per millisecond.
BYTES_PER_MS = 8
#: One Twilio media frame: 20 ms.
FRAME_BYTES = 20 * BYTES_PER_MS
#: µ-law's code for PCM 0 (Twilio's silence): padding with it never clicks.
SILENCE = b"\xff"
#: One frame of silence.
SILENCE_FRAME = SILENCE * FRAME_BYTES
