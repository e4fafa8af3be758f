"""TTS audio to µ-law for one utterance at a time, and the clean-recording rule. Sans-I/O.

A :class:`Renderer` owns the converter (a new :class:`hotline.codec.Transcoder` per utterance,
flushed at its end, reset on a cut): :meth:`Renderer.begin` an utterance, :meth:`~Renderer.feed`
its audio, :meth:`~Renderer.finish` it. Any exception from the converter (a
:class:`~hotline.errors.CodecError` for bad audio, but also e.g. ``MemoryError``) fails that
utterance only: the converter is reset (or replaced) and :attr:`Renderer.failures` counts it.

Recording. With ``record_max`` > 0 the µ-law of each recorded utterance is kept; it is *clean*
(:attr:`Renderer.recording`, fit for the phrase cache) when the TTS ended with ``isFinal``, nothing
failed, no undecodable audio was skipped and it is not longer than ``record_max``. The
:class:`~hotline.core.call.Call` reports it as :class:`~hotline.core.actions.UtteranceRecorded`;
the cache warm-up renders its lines through a :class:`Renderer` of its own, so both follow one
rule.

:class:`Voice` puts the current utterance's audio (TTS events, or ready-made µ-law) into the
:class:`~hotline.core.pacer.Pacer` through the renderer, places its alignment on the utterance's
:class:`~hotline.core.heard.HeardText` and reports how the utterance's rendering ended.

First slice. An utterance's first TTS message can be large (a second of MP3 takes a while to
convert): :func:`first_slice` cuts it so that only the first :data:`FIRST_SLICE` bytes are
converted before the first frames go out; the rest is held until the shell has sent them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hotline.core.actions import (
    Action,
    AudioSkipped,
    CancelTTS,
    UtteranceOutcome,
    UtteranceRecorded,
)
from hotline.core.events import Alignment, TTSAudio, TTSEvent, TTSFailure, TTSFinal
from hotline.core.pacer import Pacer
from hotline.core.ulaw import BYTES_PER_MS
from hotline.core.utterances import Utterance, Utterances
from hotline.errors import CodecError, assert_never

__all__ = [
    "FIRST_SLICE",
    "NO_CHARS",
    "Converter",
    "ConverterStats",
    "Renderer",
    "Voice",
    "converter_detail",
    "first_slice",
]

#: Bytes of an utterance's first TTS audio message converted before its first frames go out.
FIRST_SLICE = 2048
#: The alignment of a held tail: it has no characters of its own (the head carried them).
NO_CHARS = Alignment((), (), ())


class ConverterStats(Protocol):
    """The converter statistics :class:`Renderer` reads."""

    @property
    def skipped_bytes(self) -> int: ...


class Converter(Protocol):
    """What :class:`Renderer` needs from :class:`hotline.codec.Transcoder`: TTS audio in, µ-law
    out. ``feed`` and ``flush`` may raise anything; only that utterance fails."""

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def reset(self) -> None: ...

    @property
    def stats(self) -> ConverterStats: ...


def _default_converter(output_format: str) -> Converter:
    from hotline.codec import Transcoder

    return Transcoder(output_format)


def first_slice(event: TTSAudio, size: int) -> tuple[TTSAudio, bytes]:
    """Cut an utterance's first audio message: the part to convert now (its first ``size``
    bytes, with the message's alignment) and the rest to convert once the first frames are out
    (``b""``: none; ``size`` 0: never cut)."""
    data = event.data
    if not size or len(data) <= size:
        return event, b""
    return TTSAudio(data[:size], event.alignment, None, event.context_id), data[size:]


def converter_detail(exc: BaseException) -> str:
    """An utterance's failure detail for a converter exception."""
    if isinstance(exc, CodecError):
        return f"codec: {exc}"
    return f"codec: {type(exc).__name__}: {exc}" if str(exc) else f"codec: {type(exc).__name__}"


class Renderer:
    """TTS audio -> µ-law for one utterance at a time (see the module docstring).

    Args:
        output_format: the ElevenLabs ``output_format`` the audio arrives in.
        converter_factory: builds the converter (default :class:`hotline.codec.Transcoder`).
        record_max: record utterances up to this many µ-law bytes (0: record nothing).

    Raises:
        ValueError: ``record_max`` below 0.
        CodecError: ``output_format`` is not supported by the converter.
    """

    __slots__ = (
        "_begun",
        "_converter",
        "_new_converter",
        "_parts",
        "_recorded_bytes",
        "_skipped_before",
        "failure",
        "failures",
        "record_max",
        "recording",
    )

    def __init__(
        self,
        output_format: str,
        converter_factory: Callable[[str], Converter] | None = None,
        *,
        record_max: int = 0,
    ) -> None:
        if record_max < 0:
            raise ValueError("record_max_bytes must be >= 0")
        factory = converter_factory if converter_factory is not None else _default_converter
        self._new_converter = lambda: factory(output_format)
        self._converter = self._new_converter()  # fails early on a bad format
        self._begun = False
        self.record_max = record_max
        #: Utterances failed by an exception from the converter.
        self.failures = 0
        #: Why the utterance failed (the first reason), ``None`` while it has not.
        self.failure: str | None = None
        self._parts: list[bytes] | None = None
        self._recorded_bytes = 0
        self._skipped_before = 0
        #: The last finished utterance's µ-law, if it was clean (see the module docstring).
        self.recording: bytes | None = None

    def begin(self, *, record: bool = True) -> None:
        """A new utterance: one converter per utterance, so no decoder or resampler state
        crosses utterances (the first uses the one built with the renderer)."""
        if self._begun:
            self._converter = self._new_converter()
        self._begun = True
        self.failure = None
        self.recording = None
        self._skipped_before = self._skipped()
        self._parts = [] if record and self.record_max else None
        self._recorded_bytes = 0

    def feed(self, data: bytes) -> bytes | None:
        """Convert a piece of the utterance's audio. Returns ``None`` if the converter failed
        (:attr:`failure` says why; the converter was reset)."""
        try:
            ulaw = self._converter.feed(data)
        except Exception as exc:  # any converter failure fails this utterance only
            self._failed(exc)
            return None
        self._record(ulaw)
        return ulaw

    def finish(self, failure: str | None, *, flush: bool = True) -> tuple[bytes, int]:
        """The utterance's audio is complete (``failure``: its TTS ended without ``isFinal``, or
        failed). Returns the converter's tail (``flush``) and the undecodable bytes skipped;
        :attr:`recording` is set if the utterance was clean."""
        if self.failure is None:
            self.failure = failure
        tail = b""
        if flush:
            try:
                tail = self._converter.flush()
            except Exception as exc:  # any converter failure fails this utterance only
                self._failed(exc)
        self._record(tail)
        skipped = self._skipped() - self._skipped_before
        parts, self._parts = self._parts, None
        if self.failure is None and not skipped and parts:
            self.recording = b"".join(parts)
        return tail, skipped

    def forget(self) -> None:
        """Record nothing of this utterance (it is replayed from a recording)."""
        self._parts = None

    def reset(self) -> None:
        """A cut: drop what the converter holds (replace it if it cannot reset)."""
        self._parts = None
        try:
            self._converter.reset()
        except Exception:
            self._converter = self._new_converter()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failure is None:
            self.failure = converter_detail(exc)
        self.reset()

    def _record(self, ulaw: bytes) -> None:
        parts = self._parts
        if parts is None or not ulaw:
            return
        self._recorded_bytes += len(ulaw)
        if self._recorded_bytes > self.record_max:
            self._parts = None  # would not fit the cache: abandoned
            return
        parts.append(ulaw)

    def _skipped(self) -> int:
        try:
            return int(self._converter.stats.skipped_bytes)
        except Exception:  # a broken converter's statistics are no reason to fail the call
            return 0


class Voice:
    """The current utterance's audio, from TTS events or ready-made µ-law into the pacer.

    Each method returns (or, for those without a result, means) that the utterance's audio is
    complete: it moved from ``utts.current`` to ``utts.playing`` and the caller starts the next.
    """

    __slots__ = ("_actions", "_first_slice", "_pacer", "_utts", "held", "renderer")

    def __init__(
        self,
        renderer: Renderer,
        pacer: Pacer,
        utts: Utterances,
        actions: list[Action],
        first_slice_bytes: int = 0,
    ) -> None:
        self.renderer = renderer
        self._pacer = pacer
        self._utts = utts
        self._actions = actions
        self._first_slice = first_slice_bytes
        self.held = b""  # the rest of the current utterance's first audio message

    def receive(self, utt: Utterance, event: TTSEvent, now: float) -> bool:
        """One TTS event of ``utt`` (the current utterance). Returns True if its audio is
        complete."""
        if isinstance(event, TTSAudio) and utt.first_audio_at is None:
            utt.first_audio_at = now
            event, self.held = first_slice(event, self._first_slice)
        elif self.release(utt):
            return True  # the converter failed on the held audio: the utterance is over
        if isinstance(event, TTSAudio):
            return self._audio(utt, event.data, event.alignment or event.normalized_alignment)
        if isinstance(event, TTSFinal):
            self._finish(utt, None)
        elif isinstance(event, TTSFailure):
            self._actions.append(CancelTTS(utt.id))
            self._finish(utt, f"{event.error}: {event.message}")
        else:
            assert_never(event)
        return True

    def release(self, utt: Utterance) -> bool:
        """Convert the held rest of ``utt``'s first audio message. Returns True if that ended
        the utterance (the converter failed)."""
        held, self.held = self.held, b""
        # The head carried the message's alignment; the rest has no characters of its own.
        return bool(held) and self._audio(utt, held, NO_CHARS)

    def failed(self, utt: Utterance, detail: str) -> None:
        """``utt``'s TTS ended without ``isFinal``: what arrived still plays."""
        if not self.release(utt):
            self._finish(utt, detail)

    def ready(self, utt: Utterance, ulaw: bytes, now: float) -> None:
        """Ready-made µ-law (a recording, a play_ulaw) is ``utt``'s whole audio."""
        self.renderer.forget()
        utt.first_audio_at = now
        utt.heard.add_chunk(None, 0.0, len(ulaw) / BYTES_PER_MS)
        utt.ulaw_bytes += len(ulaw)
        self._pacer.push(utt, ulaw)
        self._rendered(utt, None)

    def cut(self) -> None:
        """The current utterance was cut: drop the held audio and what the converter holds."""
        self.held = b""
        self.renderer.reset()

    def _audio(self, utt: Utterance, data: bytes, alignment: Alignment | None) -> bool:
        ulaw = self.renderer.feed(data)
        if ulaw is None:  # the converter failed: this utterance ends, the next one starts
            self.held = b""
            self._actions.append(CancelTTS(utt.id))
            self._finish(utt, None, flush=False)
            return True
        n = len(ulaw)
        utt.heard.add_chunk(alignment, utt.ulaw_bytes / BYTES_PER_MS, n / BYTES_PER_MS)
        if n:
            utt.ulaw_bytes += n
            self._pacer.push(utt, ulaw)
        return False

    def _finish(self, utt: Utterance, failure: str | None, *, flush: bool = True) -> None:
        render = self.renderer
        tail, skipped = render.finish(failure, flush=flush)
        if tail:
            utt.ulaw_bytes += len(tail)
            self._pacer.push(utt, tail)
        if skipped > 0:
            self._actions.append(AudioSkipped(utt.id, skipped))
        if render.recording is not None:
            self._actions.append(UtteranceRecorded(utt.id, utt.text, render.recording))
            render.recording = None
        self._rendered(utt, render.failure)

    def _rendered(self, utt: Utterance, failure: str | None) -> None:
        self._pacer.end(utt)
        self._utts.current = None
        self._utts.playing.append(utt)
        if failure is not None:
            self._utts.report(utt, UtteranceOutcome.FAILED, failure)
