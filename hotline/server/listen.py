"""One call's ears: its speech-to-text stream and its end-of-turn judge, glued to the Call.

The session owns the :class:`~hotline.core.call.Call`; a :class:`Listener` owns what hears the
caller (what answers them is the :class:`~hotline.server.brain_runner.BrainRunner`'s). It only
feeds the Call (then ``host.fed()``: the session drains the Call's actions once, when this
wake-up is over); the Call keeps the transcript and decides what a turn is.

* **speech-to-text** (``HOTLINE_STT``): one stream per call, opened at ``start``, fed the
  caller's µ-law the session drains from :meth:`Call.audio_to_recognise` (never blocking: the
  stream buffers a bounded amount while it connects), its transcripts handed to
  :meth:`Call.transcript_partial` / :meth:`Call.transcript_final` (and partials to the brain
  when a relay app asked for them: ``[relay] partialPrompts``). A stream that cannot open or
  drops is logged once and counted; the Call is told (:meth:`Call.stt_down`: barge-in falls back
  to speech onset) and the call goes on, DTMF included. A ``language`` message reopens it in
  the new language (:meth:`Listener.hear_in`).
* **the end-of-turn judge** (:class:`~hotline.core.turns.JudgeTurn`): a blocking
  ``judge(ulaw) -> probability`` run in one worker thread per process (never on the event loop),
  its answer fed back with :meth:`Call.turn_verdict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from hotline.core.call import Call
from hotline.core.listening import QuietGate
from hotline.core.turns import JudgeTurn, TurnConfig
from hotline.server.settings import BrainKind

if TYPE_CHECKING:
    from hotline.core.script import CallScript
    from hotline.server.hub import Hub
    from hotline.server.settings import ListenSettings

__all__ = ["Judge", "Listener", "ListenerHost", "recognises", "turn_config"]

#: An end-of-turn judge: the turn's last <= 8 s of 8 kHz µ-law -> P(the turn is complete).
#: Blocking and thread-safe (``hotline.turn.smart_turn.SmartTurn.complete_probability``).
Judge = Callable[[bytes], float]

log = logging.getLogger("hotline.call")
clock = time.perf_counter


def turn_config(
    listen: ListenSettings,
    script: CallScript,
    *,
    judge: bool,
    speculate: bool = True,
    min_confidence: float = 0.0,
) -> TurnConfig:
    """The calls' turn-taking settings: each from the environment if set, else the call
    script's ``[turns]``, else :class:`TurnConfig`'s default. ``judge``: an end-of-turn model
    is loaded; ``speculate=False`` (the relay brain) turns speculation off whatever is set;
    ``min_confidence``: the default for the recogniser in use (its ratings' own scale).

    Raises:
        ConfigError: the combination is invalid (e.g. a pause longer than the fallback).
    """
    values: dict[str, Any] = {"min_confidence": min_confidence, **script.turns}
    env_values = {
        "silence_ms": listen.turn_silence_ms,
        "pause_ms": listen.turn_pause_ms,
        "fallback_ms": listen.turn_fallback_ms,
        "settle_ms": listen.turn_settle_ms,
        "threshold": listen.turn_threshold,
        "min_confidence": listen.turn_min_confidence,
        "speculate": listen.turn_speculate,
        "barge_in": listen.barge_in,
        "guard_ms": listen.barge_in_guard_ms,
        "resume_ms": listen.barge_in_resume_ms,
        "backchannels": listen.backchannels,
        "stop_phrases": listen.stop_phrases,
        "filler_ms": listen.filler_ms,
    }
    values.update({k: v for k, v in env_values.items() if v is not None})
    for key in ("backchannels", "stop_phrases"):
        if key in values:
            values[key] = tuple(p.strip().lower() for p in values[key] if p.strip())
    if not speculate:
        values["speculate"] = False
    # What callers are expected to say: words that stop partway into a phrase are unfinished.
    phrases = tuple(dict.fromkeys([*script.caller_phrases(), *script.keyterms()]))
    return TurnConfig(judge=judge, phrases=phrases, **values)


_judge_pool: ThreadPoolExecutor | None = None


def _judge_executor() -> ThreadPoolExecutor:
    """One worker thread per process for the end-of-turn judge (the model is one session)."""
    global _judge_pool
    if _judge_pool is None:
        _judge_pool = ThreadPoolExecutor(1, thread_name_prefix="hotline-judge")
    return _judge_pool


def recognises(hub: Hub) -> bool:
    """Calls keep the caller's audio for a recogniser (``HOTLINE_STT`` is not ``off``)."""
    from hotline.server.stt_client import SttProvider

    return hub.settings.listen.stt is not SttProvider.OFF


def quiet_gate(hub: Hub) -> QuietGate | None:
    """What of the line's silence the recogniser hears (``HOTLINE_STT_SEND_SILENCE``).

    Deepgram and the local ear get the caller's audio around sound only (Deepgram is kept open
    by ``KeepAlive`` meanwhile, as its docs ask); cloud Scribe gets every frame: its realtime
    API has an ``insufficient_audio_activity`` error and says nothing of what triggers it."""
    from hotline.server.stt_client import SttProvider

    listen = hub.settings.listen
    if listen.stt_send_silence or listen.stt in (SttProvider.ELEVENLABS, SttProvider.OFF):
        return None
    return QuietGate()


class ListenerHost(Protocol):
    """What a :class:`Listener` needs from the call's session."""

    @property
    def call(self) -> Call: ...

    @property
    def hub(self) -> Hub: ...

    @property
    def label(self) -> str: ...

    def fed(self) -> None:
        """The Call was fed: its actions are drained once this wake-up is over."""


class Listener:
    """One call's speech-to-text stream and end-of-turn judge (see the module docstring)."""

    def __init__(self, host: ListenerHost, judge: Judge | None = None) -> None:
        self.host = host
        self.judge = judge
        self.stt: Any = None
        self._judging: set[asyncio.Future[float]] = set()
        self._close_tasks: set[asyncio.Task[None]] = set()
        self._logged: set[str] = set()
        self._closed = False
        relay = host.hub.script.relay
        is_relay = host.hub.settings.listen.brain is BrainKind.RELAY
        #: The recogniser's language (a relay app's ``[relay]`` table, then its ``language``
        #: messages); None: the provider's default.
        self.transcription_language = relay.transcription_language if is_relay else None
        #: Unfinalised speech goes to the brain (``[relay] partialPrompts``): :meth:`partials_to`.
        self._wants_partials = is_relay and relay.partial_prompts
        self._partials: Callable[[str], None] | None = None
        self._stt_url: str | None = None

    def partials_to(self, brain: Callable[[str], None]) -> None:
        """Where unfinalised transcripts go, if the relay app asked for them."""
        self._partials = brain if self._wants_partials else None

    # ------------------------------------------------------------------ life

    async def aclose(self) -> None:
        """The call is over: the judge's pending answers are dropped, the stream closes."""
        if self._closed:
            return
        self._closed = True
        for fut in self._judging:
            fut.cancel()
        if self._close_tasks:
            await asyncio.gather(*self._close_tasks, return_exceptions=True)
        stt, self.stt = self.stt, None
        if stt is not None:
            with contextlib.suppress(Exception):
                await stt.aclose()
            metrics = self.host.hub.metrics
            metrics.stt_audio_dropped.inc(stt.stats.audio_bytes_dropped)
            metrics.stt_audio_held_back.inc(self.host.call.audio_held_back)

    # ------------------------------------------------------------------ from the Call

    def hear(self, audio: list[bytes]) -> None:
        """The caller's µ-law payloads, for the recogniser (never blocks)."""
        stt = self.stt
        if stt is not None:
            for ulaw in audio:
                stt.feed(ulaw)

    def open_stt(self, url: str | None) -> None:
        """Open the call's speech-to-text stream (``HOTLINE_STT``; ``url``: the embedded ear's)."""
        from hotline.server.stt_client import SttConfig, SttProvider, SttStream

        hub = self.host.hub
        self._stt_url = url
        listen = hub.settings.listen
        provider = listen.stt
        assert provider is not None  # the Settings resolve HOTLINE_STT's default
        if provider is SttProvider.OFF:
            return
        key = listen.deepgram_api_key if provider is SttProvider.DEEPGRAM else None
        if provider is SttProvider.ELEVENLABS:
            key = hub.settings.elevenlabs_api_key
        keyterms = hub.script.keyterms()
        if provider is SttProvider.LOCAL:
            # The local ear's grammar is a loop over the key terms: every sound is forced into
            # one, so single intent words alone turn a caller's sentence into noise words
            # ("what are the tour dates" -> "bye"). The script's example sentences (whole
            # phrases callers say) come first.
            keyterms = tuple(dict.fromkeys([*hub.script.caller_phrases(), *keyterms]))
        config = SttConfig(
            provider=provider,
            url=(url if provider is SttProvider.LOCAL else listen.stt_url) or "",
            api_key=key or "",
            keyterms=keyterms[:100],
            # The recogniser's own end of utterance: with endpointing in two steps a backstop
            # only (the pause commits first).
            silence_ms=min(max(listen.turn_silence_ms or 600, 300), 3000),
            # The local ear rates each final (words[].logprob): the script's ending intents
            # need confident words.
            include_timestamps=provider is SttProvider.LOCAL,
            # "multi" (any language): the provider's detection, as without a language
            language=""
            if self.transcription_language in (None, "multi")
            else self.transcription_language,
        )
        self.stt = SttStream(config, self._stt_event)
        self.stt.start()

    # ------------------------------------------------------------------ the end-of-turn judge

    def judge_turn(self, ask: JudgeTurn) -> None:
        """Run the judge on the turn's audio in the judge's thread; feed the answer back."""
        judge = self.judge
        call = self.host.call
        if judge is None or self._closed:
            call.turn_verdict(ask.seq, None, clock())
            return
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(_judge_executor(), judge, ask.audio)
        self._judging.add(fut)

        def done(f: asyncio.Future[float]) -> None:
            self._judging.discard(f)
            if f.cancelled() or self._closed:
                return
            exc = f.exception()
            if exc is not None:
                self._log_once("judge", "end-of-turn model failed (%s)", type(exc).__name__)
                probability: float | None = None
            else:
                probability = float(f.result())
            call.turn_verdict(ask.seq, probability, clock())
            self.host.fed()

        fut.add_done_callback(done)

    async def _stt_event(self, ev: Any) -> None:
        from hotline.core.stt import SttCommitted, SttFailure, SttPartial, SttSessionStarted

        call = self.host.call
        now = clock()
        if isinstance(ev, SttSessionStarted):
            call.stt_up()
        elif isinstance(ev, SttPartial):
            call.transcript_partial(ev.text, now)
            if self._partials is not None and ev.text.strip():
                self._partials(ev.text)
            self.host.hub.console_turns.hearing(self.host.label, ev.text)
        elif isinstance(ev, SttCommitted):
            self.host.hub.console_turns.hearing(self.host.label, "")
            turns = call.turns
            late = turns.late_finals if turns is not None else 0
            call.transcript_final(ev.text, now, ev.confidence)
            if turns is not None and turns.late_finals > late:
                # Never the words: its length only. It belonged to a turn already answered.
                log.info(
                    "call %s: a final of %d chars came after its turn had ended: dropped",
                    self.host.label,
                    len(ev.text),
                )
        elif isinstance(ev, SttFailure):
            # The stream is down (a refused or dropped stream too, though the client will
            # reconnect); a rejected message is not.
            if ev.fatal:
                self.host.hub.metrics.stt_failures.labels(ev.kind[:32]).inc()
                self._log_once(
                    f"stt:{ev.kind}", "speech-to-text failed (%s); the call goes on", ev.kind
                )
                call.stt_down(now)  # barge-in on speech onset until session_started again
        self.host.fed()

    def commit_speech(self) -> None:
        stt = self.stt
        if stt is not None:
            stt.commit()

    def hear_in(self, language: str) -> None:
        """A ``language`` message's ``transcriptionLanguage``: the recogniser reopens in it (its
        providers take a language when a stream opens)."""
        if language == self.transcription_language or self._closed:
            return
        self.transcription_language = language
        old = self.stt
        if old is not None:
            self.open_stt(self._stt_url)
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._close_tasks.add(task)
            task.add_done_callback(self._close_tasks.discard)
        log.info("call %s: recognition language now %s", self.host.label, language)

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind in self._logged or len(self._logged) > 32:
            return
        self._logged.add(kind)
        log.warning("call %s: " + message, self.host.label, *args)
