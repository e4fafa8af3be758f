"""What goes out to Twilio and when: frames, marks, the playhead. Sans-I/O.

A :class:`Pacer` frames each utterance's µ-law (:class:`~hotline.core.framer.Framer`), queues the
frames and the utterance's end mark, and :meth:`Pacer.pump` moves what is due into the
:class:`~hotline.core.twilio.TwilioStream`, keeping the :class:`~hotline.core.playhead.Playhead`
(where Twilio's playback is, by our estimate) up to date.

Pacing. :meth:`~Pacer.pump` keeps at most ``max_ahead_ms`` of audio queued at Twilio ahead of the
playhead estimate (so a ``clear`` drops little and memory stays bounded) and never holds a frame
back when the buffer is empty. It refills in steps of ``refill_ms`` so a call needs a few
wake-ups per second, not fifty. An utterance's first frames go out at once, one 20 ms frame per
message; once ``batch_after_ms`` is queued ahead, frames are joined into messages of up to
``batch_ms`` (Twilio plays media payloads of any size in order), so a second of audio costs about
six messages, not fifty. Every echoed mark corrects the estimate.

Marks. One mark after each utterance's last frame (``u<id>-end``) and, every
``mark_every_frames`` frames, an accounting mark (``u<id>-f<n>``). A ``clear`` makes Twilio echo
every pending mark at once, so on a cut the pending marks are forgotten first and any echo of an
unknown name is ignored. An utterance that hangs up after it arms a safety deadline when its end
mark goes out (``mark_grace`` seconds after it should have finished playing).

Holding (``pause`` barge-in). :meth:`Pacer.hold` stops the line with a ``clear`` and puts what the
caller had not heard yet (:class:`~hotline.core.hold.SentLog`) back at the head of the queue, its
end marks renamed; nothing is sent until :meth:`Pacer.resume`, which plays it on from there.
"""

from __future__ import annotations

from collections import deque

from hotline.core.actions import Action, Underrun
from hotline.core.framer import Framer
from hotline.core.hold import SentLog, replay_items
from hotline.core.latency import first_frame
from hotline.core.playhead import Playhead
from hotline.core.twilio import TwilioStream
from hotline.core.ulaw import BYTES_PER_MS, FRAME_BYTES
from hotline.core.utterances import Utterance

__all__ = ["Mark", "Pacer"]


class Mark:
    """A mark sent after byte ``pos`` of the stream (``final``: an utterance's end mark)."""

    __slots__ = ("final", "pos", "utt")

    def __init__(self, utt: Utterance, pos: int, final: bool) -> None:
        self.utt = utt
        self.pos = pos
        self.final = final


# An outbound queue entry: a µ-law frame, or (str) the name of the utterance's end mark.
_OutItem = tuple[Utterance, bytes | str]


class Pacer:
    """The outbound side of one Twilio stream (see the module docstring).

    Raises:
        ValueError: a nonsensical pacing parameter.
    """

    def __init__(
        self,
        twilio: TwilioStream,
        actions: list[Action],
        *,
        frame_bytes: int = FRAME_BYTES,
        max_ahead_ms: int = 1000,
        refill_ms: int = 500,
        batch_ms: int = 200,
        batch_after_ms: int = 200,
        mark_every_frames: int = 0,
        mark_grace: float = 2.0,
    ) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        if max_ahead_ms * BYTES_PER_MS < frame_bytes:
            raise ValueError("max_ahead_ms must hold at least one frame")
        if not 0 <= refill_ms <= max_ahead_ms:
            raise ValueError("refill_ms must be between 0 and max_ahead_ms")
        if mark_every_frames < 0:
            raise ValueError("mark_every_frames must be >= 0")
        if batch_ms < 0 or batch_after_ms < 0:
            raise ValueError("batch_ms and batch_after_ms must be >= 0")
        self.twilio = twilio
        self._actions = actions
        self._framer = Framer(frame_bytes)
        self._max_ahead = max_ahead_ms * BYTES_PER_MS
        self._low_water = self._max_ahead - refill_ms * BYTES_PER_MS
        self._batch_bytes = max(batch_ms * BYTES_PER_MS, frame_bytes)
        self._batch_after = max(batch_after_ms * BYTES_PER_MS, 1)
        self._mark_every = mark_every_frames
        self.mark_grace = mark_grace
        self.playhead = Playhead()
        self._frame_bytes = frame_bytes
        #: What went out lately (a held line is sent again from the playhead).
        self._log = SentLog(2 * self._max_ahead + self._batch_bytes)
        #: The line is held: nothing is sent until :meth:`resume`.
        self.held = False
        self.holds = 0
        self._resumed = False  # the gap of a held line is no underrun
        self._out: deque[_OutItem] = deque()
        self._marks: dict[str, Mark] = {}
        self.n_out = 0  # messages queued in the TwilioStream since the last data_to_send()
        #: When to hang up if the goodbye's end mark never echoes (None: not armed).
        self.hangup_deadline: float | None = None

    # ------------------------------------------------------------------ in

    def push(self, utt: Utterance, ulaw: bytes) -> None:
        """More µ-law of ``utt`` (any size): queue the whole frames."""
        out = self._out
        for frame in self._framer.push(ulaw):
            out.append((utt, frame))

    def end(self, utt: Utterance) -> None:
        """``utt``'s audio is complete: queue its padded last frame and its end mark."""
        last = self._framer.end()
        if last:
            self._out.append((utt, last))
        self._out.append((utt, f"u{utt.id}-end"))

    def echo(self, name: str, now: float) -> Mark | None:
        """Twilio echoed mark ``name`` at ``now`` (None: unknown, or a late echo after a clear)."""
        mark = self._marks.pop(name, None)
        if mark is not None:
            self.playhead.echo(mark.pos, now)
        return mark

    def cut(self, now: float, *, may_clear: bool) -> int:
        """Cut what plays and waits: ``clear`` (if ``may_clear`` and Twilio may still hold
        audio), forget the marks and frames. Returns the µ-law bytes dropped (queued at Twilio
        by our estimate + unsent frames)."""
        ahead = self.playhead.ahead(now)
        dropped = ahead + sum(len(item) for _, item in self._out if type(item) is bytes)
        # Clear only if Twilio may still hold audio: unplayed by our estimate, or a mark of ours
        # has not echoed yet.
        if may_clear and (ahead > 0 or self._marks) and self.twilio.stream_sid is not None:
            self.twilio.send_clear()
            self.n_out += 1
        self.stop()
        self.playhead.clear(now)
        return dropped

    def discard(self, utts: set[int], *, rendering: bool) -> None:
        """Forget the frames and end marks of utterances ``utts`` (speculative replies, never
        sent); ``rendering``: one of them was rendering, so the framer's partial frame is its."""
        self._out = deque(item for item in self._out if item[0].id not in utts)
        if rendering:
            self._framer.clear()

    def stop(self) -> None:
        """Forget everything queued (the call ended, or a cut)."""
        self._marks.clear()
        self._out.clear()
        self._framer.clear()
        self._log.clear()
        self.held = False
        self.hangup_deadline = None

    def hold(self, now: float) -> int:
        """Hold the line: ``clear`` Twilio's buffer and queue again, first, what the caller had
        not heard by ``now`` (its end marks renamed). Nothing is sent until :meth:`resume`.
        Returns the µ-law bytes held back (a no-op returning 0 if already held)."""
        if self.held:
            return 0
        head = self.playhead
        unheard = self._log.unheard(head.played(now))
        ends = [(m.utt, m.pos) for m in self._marks.values() if m.final]
        self.holds += 1
        items = replay_items(unheard, ends, self._frame_bytes, self.holds)
        if self.twilio.stream_sid is not None and (head.ahead(now) > 0 or self._marks):
            self.twilio.send_clear()
            self.n_out += 1
        self._marks.clear()
        self._log.clear()
        self._out.extendleft(reversed(items))
        head.clear(now)
        self.held = True
        return sum(len(d) for _u, _p, d in unheard)

    def resume(self) -> bool:
        """Play a held line on (from the first byte the caller had not heard). Returns whether
        it was held."""
        if not self.held:
            return False
        self.held = False
        self._resumed = True
        return True

    def arm_hangup(self, now: float) -> None:
        """Hang up ``mark_grace`` after what was sent should have played, echo or not."""
        self.hangup_deadline = max(now, self.playhead.drained_at()) + self.mark_grace

    # ------------------------------------------------------------------ state

    def unsent(self) -> Utterance | None:
        """The first utterance with frames or an end mark not sent yet."""
        return self._out[0][0] if self._out else None

    def end_mark_out(self, utt: Utterance) -> bool:
        """``utt``'s end mark was sent and has not echoed."""
        return any(m.final and m.utt is utt for m in self._marks.values())

    def ahead(self, now: float) -> int:
        """µ-law bytes queued at Twilio and not yet played, by our estimate."""
        return self.playhead.ahead(now)

    def speaking(self, now: float) -> bool:
        """Frames wait to be sent (a speculative reply's do not count), or Twilio is playing
        (or may be: see below)."""
        if (self._out and not self._out[0][0].prepared) or self.playhead.ahead(now) > 0:
            return True
        # Our estimate says Twilio's buffer is empty, but an end mark has not echoed yet:
        # believe the mark for a short while (the echo may be on its way).
        if any(m.final for m in self._marks.values()):
            return now < self.playhead.drained_at() + self.mark_grace
        return False

    # ------------------------------------------------------------------ out

    def pump(self, now: float) -> None:
        """Move the frames and marks that are due into the Twilio stream."""
        if self.held:
            return
        out = self._out
        twilio = self.twilio
        head = self.playhead
        max_ahead = self._max_ahead
        played = head.played(now)
        # Refill in steps: once above the low-water mark, wait until the queue drains to it.
        refilling = head.sent_pos - played <= self._low_water
        batch_after = self._batch_after
        while out:
            utt, item = out[0]
            if utt.prepared:
                break  # a speculative reply: nothing of it goes out until it is confirmed
            if type(item) is str:
                out.popleft()
                self._send_mark(item, utt, True, now)
                continue
            assert isinstance(item, bytes)
            ahead = head.sent_pos - played
            # An utterance's first frame goes as soon as it fits under the cap, refill step or
            # not (what the caller waits for); the rest follow in refill steps.
            if ahead > 0 and ((not refilling and utt.frames_sent) or ahead + len(item) > max_ahead):
                break
            out.popleft()
            frames = 1
            if ahead >= batch_after:
                # Well ahead of the playhead: one larger message of this utterance's next
                # frames (never past the ahead cap, an end mark or an accounting mark).
                item, frames = self._gather(utt, item, max_ahead - ahead)
            elif ahead <= 0:
                # Twilio's buffer is empty: playback (re)starts with this frame.
                if utt.frames_sent and not self._resumed:
                    gap = now - head.drained_at()
                    if gap >= 0.001:
                        self._actions.append(Underrun(utt.id, gap * 1000.0))
                self._resumed = False
                head.restart(now)
                played = head.sent_pos
            twilio.send_media(item)
            self._log.sent(utt, head.sent_pos, item)
            head.sent(utt.id, len(item))
            if not utt.frames_sent:
                times, utt.latency = utt.latency, None
                self._actions += first_frame(
                    utt.id,
                    utt.source,
                    utt.queued_at,
                    utt.tts_started_at,
                    utt.first_audio_at,
                    times,
                    self.n_out,
                    now,
                )
            self.n_out += 1
            utt.frames_sent += frames
            if self._mark_every and utt.frames_sent % self._mark_every == 0:
                self._send_mark(f"u{utt.id}-f{utt.frames_sent}", utt, False, now)

    def _gather(self, utt: Utterance, first: bytes, room: int) -> tuple[bytes, int]:
        """``first`` and the next frames of ``utt`` waiting in the queue, as one message of at
        most ``min(batch_bytes, room)`` bytes; returns it and the number of frames in it."""
        out = self._out
        limit = min(self._batch_bytes, room)
        size = len(first)
        frames = 1
        if self._mark_every:
            # stop on the accounting mark's frame, as frame-by-frame sending would
            limit_frames = self._mark_every - utt.frames_sent % self._mark_every
        else:
            limit_frames = 1 << 30
        parts: list[bytes] | None = None
        while out and frames < limit_frames:
            nutt, nxt = out[0]
            if nutt is not utt or type(nxt) is str or size + len(nxt) > limit:
                break
            assert isinstance(nxt, bytes)
            out.popleft()
            if parts is None:
                parts = [first]
            parts.append(nxt)
            size += len(nxt)
            frames += 1
        return (first if parts is None else b"".join(parts)), frames

    def _send_mark(self, name: str, utt: Utterance, final: bool, now: float) -> None:
        self.twilio.send_mark(name)
        self.n_out += 1
        self._marks[name] = Mark(utt, self.playhead.sent_pos, final)
        if final and utt.hangup_after:
            self.arm_hangup(now)

    def next_due(self, now: float) -> float | None:
        """When :meth:`pump` has frames or marks to move next (``None``: nothing queued)."""
        if not self._out or not self.twilio.stream_sid or self.held:
            return None
        utt, item = self._out[0]
        if utt.prepared:
            return None  # confirming it wakes the sender
        ahead = self.playhead.ahead(now)
        if type(item) is str or ahead <= self._low_water:
            return now
        if not utt.frames_sent and ahead + len(item) <= self._max_ahead:
            return now  # an utterance's first frame: at once
        wait_bytes = ahead - max(self._low_water, 0)
        return now + max(wait_bytes, 0) / (BYTES_PER_MS * 1000)

    def data_to_send(self) -> list[str]:
        """Return and forget the Twilio text frames to send, in order."""
        self.n_out = 0
        return self.twilio.data_to_send()
