"""Cut a µ-law byte stream into fixed-size frames (default 160 B = 20 ms at 8 kHz).

The TTS side delivers audio in arbitrary sizes; Twilio is fed whole frames so that bytes sent
map exactly to playback time (8 bytes = 1 ms) and marks fall on frame boundaries::

    framer = Framer()
    for chunk in transcoded_chunks:       # any sizes, including 0
        for frame in framer.push(chunk):  # only complete frames
            twilio.send_media(frame)
    tail = framer.end()                   # end of utterance: the partial frame padded with 0xFF
    if tail is not None:
        twilio.send_media(tail)
    framer.clear()                        # barge-in: drop the partial frame instead

Guarantees: the frames returned by all ``push`` calls plus ``end()`` concatenate to exactly
the input followed by 0xFF padding (less than one frame, only at ``end``), whatever the push
sizes; an exact multiple of the frame size leaves nothing pending and ``end()`` returns None.
0xFF is µ-law for PCM 0 (silence), so padding never clicks.
"""

from __future__ import annotations

from hotline.core.ulaw import FRAME_BYTES, SILENCE
from hotline.errors import CodecError

__all__ = ["Framer"]


class Framer:
    """µ-law -> fixed frames, carrying the remainder between pushes.

    Args:
        frame_bytes: frame size in bytes (= samples at 8 kHz); 160 is 20 ms.

    Raises:
        CodecError: *frame_bytes* is not a positive integer.
    """

    __slots__ = ("_buf", "frame_bytes")

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        if isinstance(frame_bytes, bool) or not isinstance(frame_bytes, int) or frame_bytes <= 0:
            raise CodecError(f"frame_bytes must be a positive integer, got {frame_bytes!r}")
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back (always fewer than ``frame_bytes``)."""
        return len(self._buf)

    def push(self, ulaw: bytes | bytearray | memoryview) -> list[bytes]:
        """Add audio; return every frame completed by it (possibly none).

        The returned frames are new ``bytes`` objects; *ulaw* may be reused by the caller.
        """
        size = self.frame_bytes
        buf = self._buf
        if not buf:
            # Fast path: nothing carried, slice the input directly.
            data = memoryview(ulaw).cast("B") if not isinstance(ulaw, bytes) else ulaw
            n = len(data)
            whole = n - n % size
            frames = [bytes(data[i : i + size]) for i in range(0, whole, size)]
            if whole != n:
                buf += data[whole:]
            return frames
        buf += ulaw
        n = len(buf)
        if n < size:
            return []
        whole = n - n % size
        frames = [bytes(buf[i : i + size]) for i in range(0, whole, size)]
        del buf[:whole]
        return frames

    def end(self) -> bytes | None:
        """End of utterance: return the held partial frame padded with 0xFF, or None if nothing
        is held. The framer is empty afterwards and ready for the next utterance."""
        buf = self._buf
        if not buf:
            return None
        frame = bytes(buf) + SILENCE * (self.frame_bytes - len(buf))
        buf.clear()
        return frame

    def clear(self) -> None:
        """Barge-in: drop the held partial frame without sending it."""
        self._buf.clear()
